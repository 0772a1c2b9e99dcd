"""Reducers that apply a reconciliation fix, and the broker's health, to the store.

A `reconciliation.fixed` that adopts the broker's view carries what it adopts: a `trade` (a
missed fill, or the adjusting trade of a position difference, folded by the book's own
`trade_reducer`) and/or an `order` (the broker's state of one order, overwriting the book's).
Fixes are idempotent: a trade whose id the book already has changes nothing, so a fix replayed
after a restart mid-reconciliation duplicates nothing. A position adopted at the broker's cost is
then valued at the symbol's latest mark. Pure functions of (view, event).
  broker.health.<broker>   {state: ok | degraded, reason, ts}  (broker.degraded / recovered,
                           broker.disconnected / reconnected)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tradelab.events import Event
from tradelab.state.paths import path_level
from tradelab.trading.reducers import mark_reducer, trade_reducer, working_index_changes

Change = tuple[str, Any]


def fixed_reducer(view: Any, event: Event) -> Iterable[Change]:
    changes: list[Change] = []
    trade = event.payload.get("trade")
    if trade is not None:
        trade_id = path_level(trade["trade_id"], "trade id")
        if view.get(f"trading.trades.{trade_id}") is None:
            as_trade = Event(event.seq, event.ts, "trade.executed", event.key, trade, True)
            changes.extend(trade_reducer(view, as_trade))
    order = event.payload.get("order")
    if order is not None:
        changes.extend(_adopted_order(view, event, order))
    return changes


def adopted_mark_reducer(view: Any, event: Event) -> Iterable[Change]:
    """An adjusting trade may open a position at the broker's cost, not a market price: value
    the symbol's positions at its latest mark, as the next mark would (after `fixed_reducer`)."""
    trade = event.payload.get("trade")
    mark = view.get(f"market.marks.{trade['symbol']}") if trade is not None else None
    if mark is None:
        return []
    payload = {"symbol": trade["symbol"], "price": mark["price"]}
    return mark_reducer(view, Event(event.seq, event.ts, "mark.updated", event.key, payload, False))


def _adopted_order(view: Any, event: Event, order: dict[str, Any]) -> list[Change]:
    order_id = path_level(order["order_id"], "order id")
    path = f"trading.orders.{order_id}"
    previous = view.get(path)
    record = (
        dict(previous)
        if previous is not None
        else {
            "order_id": order_id,
            "symbol": order["symbol"],
            "side": order["side"],
            "quantity": order["quantity"],
            "order_type": order.get("order_type", "MARKET"),
            "limit_price": order.get("limit_price"),
            "strategy": order.get("strategy", "manual"),
            "submitted_ts": event.ts,
        }
    )
    status = order["status"]
    record.update(
        status=status,
        broker_order_id=order.get("broker_order_id") or record.get("broker_order_id"),
        filled_quantity=order["filled_quantity"],
        remaining_quantity=record["quantity"] - order["filled_quantity"],
        average_price=order.get("average_price", record.get("average_price", 0.0)),
        reason=f"reconciled: {order.get('reason') or 'adopted the broker state'}",
        updated_ts=event.ts,
        last_seq=event.seq,
    )
    was_working = view.get(f"trading.working.{order_id}") is not None
    return [(path, record), *working_index_changes(order_id, record, was_working)]


def degraded_reducer(view: Any, event: Event) -> Iterable[Change]:
    """payload: broker, reason -> broker.health.<broker> = degraded."""
    return [_health(event, "degraded")]


def recovered_reducer(view: Any, event: Event) -> Iterable[Change]:
    """payload: broker, reason (optional) -> broker.health.<broker> = ok."""
    return [_health(event, "ok")]


DISCONNECTED = "the broker disconnected"  # the reason of a disconnect's degraded health


def disconnected_reducer(view: Any, event: Event) -> Iterable[Change]:
    """payload: broker -> broker.health.<broker> = degraded at once (orders are refused while
    it lasts), not at the reconciler's next run."""
    return [_health(event, "degraded", DISCONNECTED)]


def reconnected_reducer(view: Any, event: Event) -> Iterable[Change]:
    """payload: broker -> broker.health.<broker> = ok (a failing call degrades it again)."""
    return [_health(event, "ok", "the broker reconnected")]


def _health(event: Event, state: str, reason: str = "") -> Change:
    name = path_level(event.payload["broker"], "broker name")
    return (
        f"broker.health.{name}",
        {"state": state, "reason": str(event.payload.get("reason", reason)), "ts": event.ts},
    )


def reducers() -> dict[str, list[Callable[[Any, Event], Iterable[Change]]]]:
    return {
        "reconciliation.fixed": [fixed_reducer, adopted_mark_reducer],
        "broker.degraded": [degraded_reducer],
        "broker.recovered": [recovered_reducer],
        "broker.disconnected": [disconnected_reducer],
        "broker.reconnected": [reconnected_reducer],
    }
