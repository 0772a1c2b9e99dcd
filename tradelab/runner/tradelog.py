"""The trade log: one `trade.logged` event per round trip (flat -> open -> flat, or a reversal),
and the trades table read back from the journal (never a second store), with CSV export.

`TradeLog` folds `trade.executed` payloads on the runner's thread; `trades_frame` /
`export_trades_csv` read any journal from any thread (through `JournalReader`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from tradelab.journal import JournalReader
from tradelab.trading.book import without_float_noise

TRADE_COLUMNS = (
    "round_trip_id",
    "position_id",
    "strategy",
    "symbol",
    "direction",
    "quantity",
    "entry_price",
    "exit_price",
    "realized_pnl",
    "fees",
    "net_pnl",
    "opened_ts",
    "closed_ts",
    "entry_trade_id",
    "exit_trade_id",
)


class TradeLog:
    """Round trips from fills; `submit(topic, payload, key=...)` journals each one."""

    def __init__(self, submit: Callable[..., Any]) -> None:
        self._submit = submit
        self._open: dict[str, dict[str, Any]] = {}
        self.logged = 0

    def seed(
        self,
        positions: Mapping[str, Mapping[str, Any]],
        trades: Mapping[str, Mapping[str, Any]] | None = None,
        logged_exits: Mapping[str, Any] | None = None,
    ) -> None:
        """Open round trips after a restart: each open position's fills since it opened
        (`trades`, the store's), folded again without logging, so the round trip closed
        after the restart has its entry time, entry fill and fees. A position whose opening
        is not known is entered at its average, with no time or fill. A position that went
        flat while no trade log ran (a fill the reconciler adopted on start, an expiry settled
        after a crash) and whose last fill closed no logged round trip (`logged_exits`, the
        store's) has that round trip folded and logged now."""
        since: dict[str, int] = {}
        unlogged: dict[str, int] = {}
        logged = logged_exits or {}
        for pid, pos in positions.items():
            if int(pos.get("net_quantity") or 0):
                since[pid] = pos.get("opened_seq") or 0
            elif pos.get("opened_seq") and logged.get(pid) != pos.get("last_trade_id"):
                unlogged[pid] = pos["opened_seq"]
        fills: dict[str, list[Mapping[str, Any]]] = {}
        for trade in (trades or {}).values():
            pid = trade.get("position_id")
            opened = since.get(pid) or unlogged.get(pid)
            if opened and trade["seq"] >= opened:
                fills.setdefault(pid, []).append(trade)
        for pid in unlogged:
            self._fold_from_opening(fills.get(pid, ()), journal=True)
            self._open.pop(pid, None)  # its opening fill was not kept: nothing to log
        for pid in since:
            # Logged before the restart already: folded only.
            self._fold_from_opening(fills.get(pid, ()), journal=False)
            if int(self._open.get(pid, {}).get("net", 0)) != int(positions[pid]["net_quantity"]):
                pos = positions[pid]
                net = int(pos["net_quantity"])
                trip = self._new(pos, net, float(pos["average_price"]), None, None)
                trip["entry_price"] = _MIXED  # the book's average, not a fill's: rounded
                self._open[pid] = trip

    def _fold_from_opening(self, fills: Iterable[Mapping[str, Any]], journal: bool) -> None:
        """Fold a position's fills since it opened. Its opening fill may have reversed it (the
        book keeps no fill before that): then only the remainder past zero opens the trip."""
        ordered = sorted(fills, key=lambda t: t["seq"])
        if ordered:
            first = ordered[0]
            signed = int(first["quantity"]) * (1 if first["side"] == "BUY" else -1)
            after = int(first.get("position_after", signed))
            if after * signed > 0 and abs(after) < abs(signed):  # it crossed zero
                price, fee = float(first["price"]), float(first["fee"])
                trip = self._new(first, after, price, first["ts"], first["trade_id"])
                trip["fees"] = fee * abs(after) / abs(signed)
                self._open[first["position_id"]] = trip
                ordered = ordered[1:]
        for fill in ordered:
            self.on_fill(fill, journal=journal)

    @staticmethod
    def _new(fill: Mapping[str, Any], signed: int, price: float, ts, trade_id) -> dict[str, Any]:
        return {
            "strategy": fill["strategy"],
            "symbol": fill["symbol"],
            "net": signed,
            "direction": 1 if signed > 0 else -1,
            "entry_qty": abs(signed),
            "entry_value": abs(signed) * price,
            "entry_price": price,  # while every entry fill is at one price; else _MIXED
            "exit_qty": 0,
            "exit_value": 0.0,
            "exit_price": None,
            "fees": 0.0,
            "opened_ts": ts,
            "entry_trade_id": trade_id,
        }

    def on_fill(self, fill: Mapping[str, Any], *, journal: bool = True) -> None:
        """Fold one fill; a round trip it closes is journaled as `trade.logged` (`journal`
        False: folded only, as when seeding after a restart)."""
        pid = fill["position_id"]
        signed = int(fill["quantity"]) * (1 if fill["side"] == "BUY" else -1)
        price, fee = float(fill["price"]), float(fill["fee"])
        trip = self._open.get(pid)
        if trip is None:
            trip = self._open[pid] = self._new(fill, signed, price, fill["ts"], fill["trade_id"])
            trip["fees"] += fee
            return
        if (signed > 0) == (trip["direction"] > 0):  # adding to the position
            trip["net"] += signed
            trip["entry_qty"] += abs(signed)
            trip["entry_value"] += abs(signed) * price
            trip["entry_price"] = _one_price(trip["entry_price"], price)
            trip["fees"] += fee
            return
        closing = min(abs(signed), abs(trip["net"]))
        share = closing / abs(signed)
        trip["exit_qty"] += closing
        trip["exit_value"] += closing * price
        trip["exit_price"] = _one_price(trip["exit_price"], price)
        trip["fees"] += fee * share
        trip["net"] += trip["direction"] * -closing
        if trip["net"] == 0:
            if journal:
                self._log(pid, trip, fill)
            del self._open[pid]
            rest = abs(signed) - closing
            if rest:  # a reversal: the remainder opens the next round trip at this price
                opened = self._new(fill, signed // abs(signed) * rest, price, fill["ts"], None)
                opened["entry_trade_id"] = fill["trade_id"]
                opened["fees"] = fee * (1 - share)
                self._open[pid] = opened

    def _log(self, pid: str, trip: Mapping[str, Any], fill: Mapping[str, Any]) -> None:
        entry = trip["entry_value"] / trip["entry_qty"]
        exit_ = trip["exit_value"] / trip["exit_qty"]
        # Realized P&L against the average entry: what the book realizes for the closed units.
        realized = (exit_ - entry) * trip["exit_qty"] * trip["direction"]
        scale = max(trip["entry_value"], trip["exit_value"])
        payload = {
            "round_trip_id": f"{pid}@{fill['trade_id']}",
            "position_id": pid,
            "strategy": trip["strategy"],
            "symbol": trip["symbol"],
            "direction": "LONG" if trip["direction"] > 0 else "SHORT",
            "quantity": trip["exit_qty"],
            "entry_price": _shown_price(trip["entry_price"], entry),
            "exit_price": _shown_price(trip["exit_price"], exit_),
            # Amounts at the scale of what was traded: a break-even trip's noise is 0.0.
            "realized_pnl": without_float_noise(realized, scale),
            "fees": without_float_noise(trip["fees"], scale),
            "net_pnl": without_float_noise(realized - trip["fees"], scale),
            "opened_ts": trip["opened_ts"],
            "closed_ts": fill["ts"],
            "entry_trade_id": trip["entry_trade_id"],
            "exit_trade_id": fill["trade_id"],
        }
        self.logged += 1
        self._submit("trade.logged", payload, key=pid)


def trades_frame(journal_path: str | Path) -> pd.DataFrame:
    """Every logged round trip of a journal, in the order they closed (columns TRADE_COLUMNS)."""
    events = JournalReader(journal_path).events(topic="trade.logged")
    rows = [{name: e.payload.get(name) for name in TRADE_COLUMNS} for e in events]
    frame = pd.DataFrame(rows, columns=list(TRADE_COLUMNS))
    # Nanosecond stamps stay whole numbers beside a missing one (as float they lose digits).
    return frame.astype({"opened_ts": "Int64", "closed_ts": "Int64"})


def export_trades_csv(journal_path: str | Path, csv_path: str | Path) -> int:
    """Write the trades table of a journal as CSV, with `opened_time` and `closed_time` in IST
    beside the ns stamps (as the `trades` view has them); returns how many round trips."""
    frame = trades_frame(journal_path)
    for stamp in ("opened", "closed"):
        ns = pd.to_datetime(frame[f"{stamp}_ts"], unit="ns", utc=True)
        frame[f"{stamp}_time"] = ns.dt.tz_convert("Asia/Kolkata").dt.tz_localize(None)
    frame.to_csv(csv_path, index=False)
    return len(frame)


_MIXED = object()  # a round trip's side filled at more than one price


def _one_price(current: Any, price: float) -> Any:
    return price if current is None or current == price else _MIXED


def _shown_price(one: Any, average: float) -> float:
    """A side's price: its fills' one price as it was (a file's 103.0623707106 stays that), else
    their average without the float noise of the sum."""
    return one if one is not None and one is not _MIXED else without_float_noise(average)
