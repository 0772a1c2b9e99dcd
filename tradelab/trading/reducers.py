"""Reducers of the trading book: orders, trades, positions and P&L from journaled events.

Pure functions of (StateView, Event) -> [(dot_path, value)], so a replay of the journal rebuilds
the book exactly. State written:
  trading.orders.<order_id>          order record and lifecycle status
  trading.trades.<trade_id>          each fill, with the P&L it realized
  trading.positions.<position_id>    "<strategy>:<symbol>" net qty (units), average, P&L, fees
  pnl.realized / unrealized / fees / net, pnl.by_strategy.<strategy>, pnl.daily
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tradelab.events import Event
from tradelab.trading.book import apply_fill, empty_position, remark, totals

Change = tuple[str, Any]
ORDER_TOPICS = (
    "order.submitted",
    "order.accepted",
    "order.partially_filled",
    "order.filled",
    "order.cancelled",
    "order.rejected",
)
_TERMINAL = {"filled", "cancelled", "rejected"}
_ORDER_FIELDS = (
    "broker_order_id",
    "filled_quantity",
    "remaining_quantity",
    "average_price",
    "reason",
)


def order_reducer(view: Any, event: Event) -> Iterable[Change]:
    """Keep one record per order; a later report of a finished order does not reopen it."""
    payload = event.payload
    order_id = payload["order_id"]
    path = f"trading.orders.{order_id}"
    status = event.topic.split(".", 1)[1]
    previous = view.get(path)
    if previous is None:
        record: dict[str, Any] = {
            "order_id": order_id,
            "symbol": payload.get("symbol"),
            "side": payload.get("side"),
            "quantity": payload.get("quantity"),
            "order_type": payload.get("order_type", "MARKET"),
            "limit_price": payload.get("limit_price"),
            "strategy": payload.get("strategy", "manual"),
            "broker_order_id": None,
            "filled_quantity": 0,
            "remaining_quantity": payload.get("quantity"),
            "average_price": 0.0,
            "reason": "",
            "submitted_ts": event.ts,
        }
    else:
        record = dict(previous)
        if record.get("status") in _TERMINAL and status not in _TERMINAL:
            return []
    for name in _ORDER_FIELDS:
        if name in payload and payload[name] is not None:
            record[name] = payload[name]
    record["status"] = status
    record["updated_ts"] = event.ts
    record["last_seq"] = event.seq
    return [(path, record)]


def _daily(view: Any) -> dict[str, Any]:
    daily = view.get("pnl.daily")
    if daily is None:
        return {
            "session_date": None,
            "realized": 0.0,
            "fees": 0.0,
            "unrealized_at_open": 0.0,
            "net": 0.0,
        }
    return dict(daily)


def _pnl_changes(positions: dict[str, Any], daily: dict[str, Any]) -> list[Change]:
    book = totals(positions)
    # Daily P&L is the change in marked-to-market value since the session reset:
    # today's realized + (unrealized now - unrealized at the reset) - today's fees.
    daily["net"] = (
        daily["realized"] + book["unrealized"] - daily["unrealized_at_open"] - daily["fees"]
    )
    return [
        ("pnl.realized", book["realized"]),
        ("pnl.unrealized", book["unrealized"]),
        ("pnl.fees", book["fees"]),
        ("pnl.net", book["net"]),
        ("pnl.by_strategy", book["by_strategy"]),
        ("pnl.daily", daily),
    ]


def trade_reducer(view: Any, event: Event) -> Iterable[Change]:
    """A fill moves its position, realizes P&L on any closed units and charges its fee."""
    p = event.payload
    positions = dict(view.get("trading.positions") or {})
    pid = p["position_id"]
    position = positions.get(pid) or empty_position(p["strategy"], p["symbol"], p["lot_size"])
    signed = p["quantity"] if p["side"] == "BUY" else -p["quantity"]
    updated, realized = apply_fill(position, signed, float(p["price"]), float(p["fee"]))
    updated["last_trade_id"] = p["trade_id"]
    updated["updated_ts"] = event.ts
    if position["net_quantity"] == 0:
        updated["opened_ts"] = event.ts
    positions[pid] = updated
    daily = _daily(view)
    daily["realized"] += realized
    daily["fees"] += float(p["fee"])
    trade = dict(p)
    trade["realized_pnl"] = realized
    trade["seq"] = event.seq
    trade["position_after"] = updated["net_quantity"]
    return [
        (f"trading.trades.{p['trade_id']}", trade),
        (f"trading.positions.{pid}", updated),
        *_pnl_changes(positions, daily),
    ]


def mark_reducer(view: Any, event: Event) -> Iterable[Change]:
    """Re-value the open positions in the marked symbol (other symbols are untouched)."""
    symbol = event.payload["symbol"]
    current = view.get("trading.positions") or {}
    touched = {
        pid: remark(pos, float(event.payload["price"]))
        for pid, pos in current.items()
        if pos["symbol"] == symbol and pos["net_quantity"] != 0
    }
    if not touched:
        return []
    positions = {**current, **touched}
    changes: list[Change] = [(f"trading.positions.{pid}", pos) for pid, pos in touched.items()]
    changes.extend(_pnl_changes(positions, _daily(view)))
    return changes


def position_closed_reducer(view: Any, event: Event) -> Iterable[Change]:
    pid = event.payload["position_id"]
    position = view.get(f"trading.positions.{pid}")
    if position is None:
        return []
    closed = dict(position)
    closed["status"] = "closed"
    closed["closed_ts"] = event.ts
    closed["closed_by_trade_id"] = event.payload.get("trade_id")
    return [(f"trading.positions.{pid}", closed)]


def session_reset_reducer(view: Any, event: Event) -> Iterable[Change]:
    """Start a new trading day: today's P&L counts from the book's value at this instant."""
    daily = {
        "session_date": event.payload.get("session_date"),
        "realized": 0.0,
        "fees": 0.0,
        "unrealized_at_open": float(view.get("pnl.unrealized", 0.0)),
        "net": 0.0,
        "reset_ts": event.ts,
    }
    return [("pnl.daily", daily)]


def reducers() -> dict[str, list[Callable[[Any, Event], Iterable[Change]]]]:
    out: dict[str, list[Callable[[Any, Event], Iterable[Change]]]] = {
        topic: [order_reducer] for topic in ORDER_TOPICS
    }
    out["trade.executed"] = [trade_reducer]
    out["mark.updated"] = [mark_reducer]
    out["position.closed"] = [position_closed_reducer]
    out["pnl.session_reset"] = [session_reset_reducer]
    return out
