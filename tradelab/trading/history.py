"""How far back the live book reaches: the last N sessions' finished orders and fills.

The journal keeps every event for good, and the trades table, analytics and `state_at` read it
there; the live state is what a session works with, so it must not grow with every day a journal
has ever traded. Policy: when a Lab opens a new session it journals `trading.history_trimmed`
(`keep_sessions`: LabConfig.book_history_sessions), whose reducer notes the seq that session
opened at (the last N) and, once N are noted, removes what finished before the oldest of them
opened:
  - an order that is finished (filled, cancelled, rejected, denied) and last changed before it;
  - a fill before it, unless the book still needs it: a fill of a position open since it
    opened (the trade log's seed after a restart), a position's last fill (its close's record),
    or a fill past the reconciler's fill point (gone, the next run would find it "missed" at
    the broker and book it again).
Working orders, positions, P&L and everything else stay. What went is counted in
`trading.history` (`trimmed_orders`, `trimmed_fills`; `tradelab_book_history_trimmed_total`).
Seqs, not times: the same journal trims the same way however fast it was played.
The event also names the contracts that expired before the session (`expired_symbols`, the
Lab's reading of the calendar, journaled so a replay trims alike): their bars and marks go,
and their positions once flat with their last round trip logged (`trimmed_contracts`), so
quoting a new weekly expiry's strikes every week does not grow the state for good.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tradelab.events import Event
from tradelab.state import DELETE
from tradelab.trading.orders import FINISHED_STATUSES

Change = tuple[str, Any]
TOPIC = "trading.history_trimmed"


def history_trimmed_reducer(view: Any, event: Event) -> Iterable[Change]:
    keep = int(event.payload["keep_sessions"])
    history = dict(view.get("trading.history") or {})
    opens = [*history.get("session_opens", ()), event.seq][-keep:]
    history["session_opens"] = opens
    changes: list[Change] = []
    if len(opens) == keep:  # the oldest kept session's open: what finished before it goes
        trading = view.get("trading") or {}
        reconciled = int((view.get("reconciliation.last_run") or {}).get("fill_point") or 0)
        changes = _trimmed(trading, before_seq=opens[0], reconciled=reconciled)
        orders = sum(1 for path, _ in changes if path.startswith("trading.orders."))
        history["trimmed_orders"] = history.get("trimmed_orders", 0) + orders
        history["trimmed_fills"] = history.get("trimmed_fills", 0) + len(changes) - orders
    expired = _expired_contracts(view, event.payload.get("expired_symbols") or ())
    if expired:
        changes.extend(expired)
        history["trimmed_contracts"] = history.get("trimmed_contracts", 0) + len(
            {path.split(".")[2] for path, _ in expired if path.startswith("market.")}
        )
    return [*changes, ("trading.history", history)]


def _expired_contracts(view: Any, symbols: Iterable[str]) -> list[Change]:
    symbols = set(symbols)
    changes: list[Change] = []
    for symbol in sorted(symbols):
        for where in ("market.bars", "market.marks"):
            if view.get(f"{where}.{symbol}") is not None:
                changes.append((f"{where}.{symbol}", DELETE))
    logged = view.get("trading.logged_exits") or {}
    for pid, position in (view.get("trading.positions") or {}).items():
        if (
            position.get("symbol") in symbols
            and not position.get("net_quantity")
            and logged.get(pid) == position.get("last_trade_id")
        ):
            changes.append((f"trading.positions.{pid}", DELETE))
            if pid in logged:
                changes.append((f"trading.logged_exits.{pid}", DELETE))
    return changes


def _trimmed(trading: dict[str, Any], before_seq: int, reconciled: int) -> list[Change]:
    positions = trading.get("positions") or {}
    last_fills = {p.get("last_trade_id") for p in positions.values()}
    open_since = {
        pid: p.get("opened_seq") or 0 for pid, p in positions.items() if p.get("net_quantity")
    }
    changes: list[Change] = []
    for order_id, order in (trading.get("orders") or {}).items():
        if order.get("status") in FINISHED_STATUSES and (order.get("last_seq") or 0) < before_seq:
            changes.append((f"trading.orders.{order_id}", DELETE))
    for trade_id, trade in (trading.get("trades") or {}).items():
        seq = trade.get("seq") or 0
        if seq >= before_seq or trade_id in last_fills:
            continue
        if (trade.get("fill_seq") or 0) > reconciled:
            continue  # the reconciler has not covered it: gone, it would look missed
        opened = open_since.get(trade.get("position_id"))
        if opened is not None and seq >= opened:
            continue  # part of a position still open
        changes.append((f"trading.trades.{trade_id}", DELETE))
    return changes


def reducers() -> dict[str, list[Callable[[Any, Event], Iterable[Change]]]]:
    return {TOPIC: [history_trimmed_reducer]}
