"""The book folded from a journal's fills: realized P&L per fill, positions over time, round trips.

Average-cost P&L is a fold (each fill's result depends on every fill before it in its position),
so it is computed here with the book's own arithmetic (`trading.book.apply_fill`) and the trade
log's own round-trip rules (`runner.tradelog.TradeLog`), not re-derived in SQL: analytics and the
live store never disagree on a fill's P&L. Pure functions over decoded rows; no threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from tradelab.runner.tradelog import TRADE_COLUMNS, TradeLog
from tradelab.trading.book import apply_fill, empty_position

# Column -> pandas dtype of each folded frame (typed even when empty, so DuckDB sees the types).
FILL_BOOK = {
    "seq": "int64",
    "realized_pnl": "float64",
    "position_after": "int64",
    "average_price_after": "float64",
    "position_realized_pnl": "float64",
    "position_fees": "float64",
}
POSITIONS = {
    "seq": "int64",
    "exchange_ts": "int64",
    "position_id": "object",
    "strategy": "object",
    "symbol": "object",
    "lot_size": "int64",
    "net_quantity": "int64",
    "lots": "float64",
    "average_price": "float64",
    "realized_pnl": "float64",
    "fees": "float64",
    "trades": "int64",
    "status": "object",
}
_TRADE_TYPES = {
    "quantity": "int64",
    "entry_price": "float64",
    "exit_price": "float64",
    "realized_pnl": "float64",
    "fees": "float64",
    "net_pnl": "float64",
    "opened_ts": "Int64",
    "closed_ts": "Int64",
}
ROUND_TRIPS = {"seq": "int64"} | {name: _TRADE_TYPES.get(name, "object") for name in TRADE_COLUMNS}


def typed_frame(rows: list[dict[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    """`rows` as a frame with exactly `columns`, each of its declared dtype."""
    frame = pd.DataFrame(rows, columns=list(columns))
    return frame.astype(dict(columns))


def fold_fills(
    fills: Iterable[tuple[int, int, Mapping[str, Any]]],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(fill book, positions over time, round trips) from (seq, journal ts, payload) of each
    `trade.executed` event in seq order. A fill's exchange time is its payload's `ts` (the
    journal's `ts` when it has none)."""
    positions: dict[str, dict[str, Any]] = {}
    book_rows: list[dict[str, Any]] = []
    position_rows: list[dict[str, Any]] = []
    trips: list[dict[str, Any]] = []
    closing_seq = [0]

    def logged(topic: str, payload: dict[str, Any], key: str = "") -> None:
        trips.append({"seq": closing_seq[0], **payload})

    trade_log = TradeLog(logged)
    for seq, ts, fill in fills:
        pid = fill["position_id"]
        before = positions.get(pid) or empty_position(
            fill["strategy"], fill["symbol"], fill["lot_size"]
        )
        signed = int(fill["quantity"]) * (1 if fill["side"] == "BUY" else -1)
        after, realized = apply_fill(before, signed, float(fill["price"]), float(fill["fee"]))
        positions[pid] = after
        exchange_ts = int(fill.get("ts") or ts)
        book_rows.append(
            {
                "seq": seq,
                "realized_pnl": realized,
                "position_after": after["net_quantity"],
                "average_price_after": after["average_price"],
                "position_realized_pnl": after["realized_pnl"],
                "position_fees": after["fees"],
            }
        )
        position_rows.append(
            {"seq": seq, "exchange_ts": exchange_ts}
            | {name: after[name] for name in POSITIONS if name in after}
        )
        closing_seq[0] = seq
        trade_log.on_fill({**fill, "ts": exchange_ts})
    return (
        typed_frame(book_rows, FILL_BOOK),
        typed_frame(position_rows, POSITIONS),
        typed_frame(trips, ROUND_TRIPS),
    )
