"""What differs between the book (the store) and the broker: a pure comparison.

`BrokerView` is one read of the broker (positions, working orders, fills since a point and the
orders they touch); `find_mismatches` lists every difference as a `Mismatch` whose `expected`
is the book's view and `actual` the broker's. A missed fill also counts toward the position it
explains, so one dropped fill report is one `missed_fill`, not also a quantity mismatch.
Pure functions of values; no threads, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tradelab.trading.orders import Fill, OrderUpdate, Side

MISSING_POSITION = "missing_position"  # the book holds it, the broker does not
UNKNOWN_POSITION = "unknown_position"  # the broker holds it, the book does not
QUANTITY_MISMATCH = "quantity_mismatch"  # both hold it, in different quantities
UNKNOWN_OPEN_ORDER = "unknown_open_order"  # working at the broker, unknown to the book
ORDER_STATE_MISMATCH = "order_state_mismatch"  # status or filled quantity differ
MISSED_FILL = "missed_fill"  # the broker filled it, the book has no such trade
KINDS = (
    MISSING_POSITION,
    UNKNOWN_POSITION,
    QUANTITY_MISMATCH,
    UNKNOWN_OPEN_ORDER,
    ORDER_STATE_MISMATCH,
    MISSED_FILL,
)
_DONE = {"filled", "cancelled", "rejected", "denied"}


@dataclass(frozen=True)
class BrokerView:
    account_id: str
    positions: dict[str, int]
    open_orders: list[OrderUpdate]
    fills: list[Fill]  # since the point, fill_seq order
    orders: dict[str, OrderUpdate | None]  # the broker's state of each order compared
    last_fill_seq: int
    average_prices: dict[str, float] = field(default_factory=dict)  # the broker's cost, if known
    lot_sizes: dict[str, int] = field(default_factory=dict)  # of held symbols, if reported
    fills_gone: int = 0  # fills after the point the broker no longer has: `fills` is then empty


@dataclass(frozen=True)
class Mismatch:
    kind: str
    item: str  # "<kind>:<subject>": one state path level naming this difference
    expected: Any  # the book's view
    actual: Any  # the broker's view
    subject: dict[str, Any] = field(default_factory=dict)  # symbol / order_id / trade_id
    fill_seq: int | None = None  # the broker fill it rests on, if any
    broker_record: dict[str, Any] | None = None  # what adopting the broker's view writes

    def payload(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "item": self.item,
            "expected": self.expected,
            "actual": self.actual,
            **self.subject,
        }


def orders_to_compare(store: Any, fills: list[Fill], *, adopting_fills: bool = False) -> list[str]:
    """The orders whose broker state the comparison needs: the book's working orders and the
    book's orders that the fills since the point touched; `adopting_fills` (missed fills are
    adopted, not a dry run), also the orders of missed fills the book never saw (an expiry's
    settlement a crash kept from the journal), whose records are adopted with them. Sorted."""
    ids = set((store.get("trading.working", None) or {}).keys())
    for f in fills:
        known = store.get(f"trading.orders.{f.order_id}", None) is not None
        missed = store.get(f"trading.trades.{f.trade_id}", None) is None
        if known or (adopting_fills and missed):
            ids.add(f.order_id)
    return sorted(ids)


def book_quantities(store: Any) -> dict[str, int]:
    """Net units per symbol over every strategy's open position."""
    positions = store.get("trading.positions", None) or {}
    quantities: dict[str, int] = {}
    for position in positions.values():
        if position.get("net_quantity"):
            symbol = position["symbol"]
            quantities[symbol] = quantities.get(symbol, 0) + position["net_quantity"]
    return {s: q for s, q in quantities.items() if q}


def find_mismatches(view: BrokerView, store: Any) -> list[Mismatch]:
    """Every difference, in a fixed order: missed fills, positions, open orders, order states."""
    found: list[Mismatch] = []
    pending: dict[str, int] = {}
    for fill in view.fills:
        if store.get(f"trading.trades.{fill.trade_id}", None) is not None:
            continue
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        pending[fill.symbol] = pending.get(fill.symbol, 0) + signed
        found.append(
            Mismatch(
                MISSED_FILL,
                f"{MISSED_FILL}:{fill.trade_id}",
                None,
                {
                    "order_id": fill.order_id,
                    "side": str(fill.side),
                    "quantity": fill.quantity,
                    "price": fill.price,
                },
                {"trade_id": fill.trade_id, "symbol": fill.symbol},
                fill.fill_seq,
                fill.to_payload(),
            )
        )
    book = book_quantities(store)
    for symbol in sorted(set(book) | set(view.positions) | set(pending)):
        expected = book.get(symbol, 0) + pending.get(symbol, 0)
        actual = view.positions.get(symbol, 0)
        if expected == actual:
            continue
        kind = (
            MISSING_POSITION
            if actual == 0
            else UNKNOWN_POSITION
            if expected == 0
            else QUANTITY_MISMATCH
        )
        found.append(Mismatch(kind, f"{kind}:{symbol}", expected, actual, {"symbol": symbol}))
    for update in view.open_orders:
        record = store.get(f"trading.orders.{update.order_id}", None)
        if record is not None and record["status"] in _DONE and update.order_id not in view.orders:
            # Finished in the book, working at the broker (a cancel it reported and did not
            # do, a rejection reported against the wrong order): it can fill at any time.
            found.append(
                Mismatch(
                    ORDER_STATE_MISMATCH,
                    f"{ORDER_STATE_MISMATCH}:{update.order_id}",
                    {"status": record["status"], "filled_quantity": record["filled_quantity"]},
                    _order_state(update),
                    {"order_id": update.order_id, "symbol": record["symbol"]},
                    None,
                    update.to_payload(),
                )
            )
        elif record is None:
            found.append(
                Mismatch(
                    UNKNOWN_OPEN_ORDER,
                    f"{UNKNOWN_OPEN_ORDER}:{update.order_id}",
                    None,
                    _order_state(update),
                    {"order_id": update.order_id, "symbol": update.symbol},
                    broker_record=adoptable(update),
                )
            )
    fill_seq_of = {}
    for fill in view.fills:
        fill_seq_of.setdefault(fill.order_id, fill.fill_seq)
    for order_id, broker in sorted(view.orders.items()):
        record = store.get(f"trading.orders.{order_id}", None)
        if record is None:
            continue
        book_state = {"status": record["status"], "filled_quantity": record["filled_quantity"]}
        broker_state = None if broker is None else _order_state(broker)
        if broker_state == book_state or (broker is None and record["status"] in _DONE):
            continue
        found.append(
            Mismatch(
                ORDER_STATE_MISMATCH,
                f"{ORDER_STATE_MISMATCH}:{order_id}",
                book_state,
                broker_state,
                {"order_id": order_id, "symbol": record["symbol"]},
                fill_seq_of.get(order_id),
                None if broker is None else broker.to_payload(),
            )
        )
    return found


def _order_state(update: OrderUpdate) -> dict[str, Any]:
    return {"status": str(update.status), "filled_quantity": update.filled_quantity}


def adoptable(update: OrderUpdate) -> dict[str, Any]:
    """What adopting an order the book never saw writes: its update and, when the broker
    reports them, its terms (a resting limit is valued at its limit, not the mark)."""
    record = update.to_payload()
    if update.order_type is not None:
        record.update(order_type=update.order_type, limit_price=update.limit_price)
    return record
