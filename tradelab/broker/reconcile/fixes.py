"""What adopting the broker's view of one difference writes: the `reconciliation.fixed` payloads.

A missed fill is adopted as the broker's trade (with its order, when the book never saw it); an
order's state as the broker's; a position difference as adjusting trades (an unknown position at
the broker's average cost, else at the mark) whose ids are deterministic, so a fix found again
after a restart mid-reconciliation applies once. Pure functions of (mismatch, broker view,
store); no threads.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tradelab.broker.reconcile import diff as d
from tradelab.broker.reconcile.diff import BrokerView, Mismatch
from tradelab.trading.book import position_id

BY = "reconciler"  # who halts on a difference, and the strategy of positions only it booked


def fixes_for(m: Mismatch, view: BrokerView, store: Any, now_ns: int) -> list[dict[str, Any]]:
    """The `reconciliation.fixed` payloads that adopt the broker's view of `m`; an adjusting
    trade (the broker does not say when its position changed) is timed `now_ns`, the
    session's market time."""
    base = {"kind": m.kind, "item": m.item, "expected": m.expected, "actual": m.actual}
    if m.kind == d.MISSED_FILL:
        trade = dict(m.broker_record)
        trade["position_id"] = position_id(trade["strategy"], trade["symbol"])
        fix = {**base, "action": "adopted the broker's fill", "trade": trade}
        order = view.orders.get(trade["order_id"])
        unknown = store.get(f"trading.orders.{trade['order_id']}", None) is None
        # An order the book never saw, done at the broker: its record too. One still working
        # is an unknown open order: its own policy decides whether the book takes it.
        if order is not None and unknown and order.status.is_terminal:
            fix["order"] = d.adoptable(order)
        return [fix]
    if m.kind in (d.UNKNOWN_OPEN_ORDER, d.ORDER_STATE_MISMATCH):
        order = m.broker_record
        if order is None:  # the broker does not know the order: it is not working there
            record = store.get(f"trading.orders.{m.subject['order_id']}")
            order = {
                "order_id": record["order_id"],
                "status": "cancelled",
                "filled_quantity": record["filled_quantity"],
                "reason": "not known to the broker",
            }
        return [{**base, "action": "adopted the broker's order state", "order": order}]
    return [
        {**base, "action": "adjusted the book to the broker's position", "trade": trade}
        for trade in adjusting_trades(m, view, store, now_ns)
    ]


def adjusting_trades(
    m: Mismatch, view: BrokerView, store: Any, now_ns: int
) -> list[dict[str, Any]]:
    """Trades that move the book's positions in `m.subject['symbol']` to the broker's.

    Ids are a digest of the difference, the broker's fill point and the book's positions in
    the symbol (each one's last trade): the same difference found again over the same book (a
    restart mid-run) yields the same ids, so the fix applies once; a difference that comes back
    after the book moved (the broker held 75, then 0, then 75 again) yields new ones.
    """
    symbol = m.subject["symbol"]
    positions = store.get("trading.positions", None) or {}
    in_symbol = sorted(
        (p for p in positions.values() if p["symbol"] == symbol), key=lambda p: p["position_id"]
    )
    book = [(p["position_id"], p["net_quantity"], p.get("last_trade_id", "")) for p in in_symbol]
    held = [p for p in in_symbol if p["net_quantity"]]
    mark = (store.get(f"market.marks.{symbol}", None) or {}).get("price")
    moves: list[tuple[str, int, float, int]] = []  # strategy, signed units, price, lot
    if m.kind == d.MISSING_POSITION:  # the broker holds none: every position is closed
        for p in held:
            price = mark if mark is not None else p["average_price"]
            moves.append((p["strategy"], -p["net_quantity"], price, p["lot_size"]))
    else:
        # What the broker holds beyond the book is no strategy's doing: it goes to the
        # reconciler's own position, and each strategy keeps the position it traded.
        price = mark if mark is not None else (held[0] if held else {}).get("average_price", 0.0)
        cost = view.average_prices.get(symbol)
        if m.kind == d.UNKNOWN_POSITION and cost:
            # The whole position is the difference: its cost is the broker's average, so the
            # book's P&L agrees with the broker's cash. (Of part of a position it is not.)
            price = cost
        # One contract, one lot size: the book's, else the broker's (else units).
        lot = in_symbol[0]["lot_size"] if in_symbol else view.lot_sizes.get(symbol, 1)
        moves.append((BY, m.actual - m.expected, price, lot))
    trades = []
    for i, (strategy, signed, price, lot) in enumerate(moves):
        seen = f"{view.account_id}|{view.last_fill_seq}|{m.item}|{m.expected}|{m.actual}|{book}"
        trade_id = f"RC-{hashlib.sha256(f'{seen}|{i}'.encode()).hexdigest()[:16]}"
        trades.append(
            {
                "fill_seq": 0,
                "trade_id": trade_id,
                "order_id": trade_id,
                "broker_order_id": "",
                "symbol": symbol,
                "side": "BUY" if signed > 0 else "SELL",
                "quantity": abs(signed),
                "price": float(price or 0.0),
                "fee": 0.0,
                "ts": now_ns,
                "strategy": strategy,
                "lot_size": lot,
                "position_id": position_id(strategy, symbol),
            }
        )
    return trades
