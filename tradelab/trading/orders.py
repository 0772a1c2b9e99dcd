"""Order and fill records shared by brokers, the execution desk and the book.

Quantities are in **units** (contracts), as NSE quotes them: 1 lot of a 75-lot option is
quantity 75, and premium P&L is price difference x quantity. Records are immutable values.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tradelab.errors import InvalidInputError
from tradelab.state.paths import check_path_level, is_path_level

STRATEGY_NAME = re.compile(r"[A-Za-z0-9_\-]{1,64}")


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


# The statuses an order record in the book never leaves (`denied`: the risk gate refused it
# before any broker saw it, so it has no OrderStatus).
FINISHED_STATUSES = frozenset({"filled", "cancelled", "rejected", "denied"})


class OrderStatus(StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a strategy asks for. `order_id` is ours (client side); the broker adds its own id."""

    order_id: str
    symbol: str
    side: Side
    quantity: int
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    strategy: str = "manual"

    def __post_init__(self) -> None:
        # The ids become state path levels (trading.orders.<order_id>, positions by strategy
        # and symbol): a request carrying a bad one never reaches a broker.
        check_path_level(self.order_id, "order id")
        check_path_level(self.symbol, "symbol")
        check_path_level(self.strategy, "strategy name")
        # "BUY" as text, as a notebook writes it: the broker compares with `is Side.BUY`, so a
        # plain str read as not-BUY and a BUY limit filled as a market SELL.
        if type(self.side) is not Side:
            object.__setattr__(self, "side", coerce_side(self.side))
        if type(self.order_type) is not OrderType:
            object.__setattr__(self, "order_type", coerce_order_type(self.order_type))

    def to_payload(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "symbol": self.symbol,
            "side": str(self.side),
            "quantity": self.quantity,
            "order_type": str(self.order_type),
            "limit_price": self.limit_price,
            "strategy": self.strategy,
        }


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution. `fill_seq` is the broker's monotonic fill counter (1, 2, ...)."""

    fill_seq: int
    trade_id: str
    order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    quantity: int
    price: float
    fee: float
    ts: int
    strategy: str
    lot_size: int

    def to_payload(self) -> dict[str, Any]:
        # Written out (in field order: the journal's JSON keeps it) rather than
        # dataclasses.asdict, whose recursive deep copy cost ~50 us a fill for plain scalars.
        return {
            "fill_seq": self.fill_seq,
            "trade_id": self.trade_id,
            "order_id": self.order_id,
            "broker_order_id": self.broker_order_id,
            "symbol": self.symbol,
            "side": str(self.side),
            "quantity": self.quantity,
            "price": self.price,
            "fee": self.fee,
            "ts": self.ts,
            "strategy": self.strategy,
            "lot_size": self.lot_size,
        }


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A broker's report of an order's new state (and the fill that caused it, if any)."""

    status: OrderStatus
    order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    quantity: int
    filled_quantity: int
    average_price: float
    ts: int
    strategy: str
    reason: str = ""
    fill: Fill | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The order's terms, when the broker reports them (a reconciler adopting an order it never
    # placed books them); not part of the order.* events' payloads.
    order_type: str | None = None
    limit_price: float | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "broker_order_id": self.broker_order_id,
            "symbol": self.symbol,
            "side": str(self.side),
            "quantity": self.quantity,
            "filled_quantity": self.filled_quantity,
            "remaining_quantity": self.quantity - self.filled_quantity,
            "average_price": self.average_price,
            "status": str(self.status),
            "reason": self.reason,
            "strategy": self.strategy,
            "ts_broker": self.ts,
            **({"fill": self.fill.to_payload()} if self.fill is not None else {}),
        }


def coerce_side(side: Any) -> Side:
    try:
        return Side(str(side).upper())
    except ValueError:
        raise InvalidInputError(f"side {side!r} is not 'BUY' or 'SELL'") from None


def coerce_order_type(order_type: Any) -> OrderType:
    try:
        return OrderType(str(order_type).upper())
    except ValueError:
        raise InvalidInputError(f"order type {order_type!r} is not 'MARKET' or 'LIMIT'") from None


def check_quantity(quantity: Any, lot_size: int, symbol: str) -> int:
    """A positive whole quantity that is a multiple of the contract's lot size; any real number
    type (numpy's included) that holds a whole value is taken."""
    if isinstance(quantity, bool) or not isinstance(quantity, numbers.Real):
        raise InvalidInputError(f"quantity {quantity!r} for {symbol} is not a number")
    if not math.isfinite(quantity) or quantity != int(quantity):
        raise InvalidInputError(f"quantity {quantity!r} for {symbol} is not a whole number")
    if quantity <= 0:
        raise InvalidInputError(f"quantity {quantity!r} for {symbol} must be positive")
    if quantity >= 2**63:  # a journal's integers are 64-bit: no order, fill or position holds it
        raise InvalidInputError(f"quantity {int(quantity)} for {symbol} is over 2**63 - 1 units")
    if int(quantity) % lot_size:
        raise InvalidInputError(
            f"quantity {int(quantity)} is not a multiple of lot size {lot_size} for {symbol}"
        )
    return int(quantity)


def check_price(price: Any, what: str, symbol: str) -> float:
    if isinstance(price, bool) or not isinstance(price, numbers.Real) or not math.isfinite(price):
        raise InvalidInputError(f"{what} {price!r} for {symbol} is not a finite number")
    if price <= 0:
        raise InvalidInputError(f"{what} {price!r} for {symbol} must be positive")
    return float(price)


def check_strategy(strategy: Any) -> str:
    """A strategy name: a state path level (`check_path_level`) that is also at most 64 long and
    holds no ':' (position ids join it to the symbol with ':'); a str subclass (numpy.str_) as
    the plain str it reads as."""
    if isinstance(strategy, str) and type(strategy) is not str:
        strategy = str.__str__(strategy)
    if not is_path_level(strategy) or not STRATEGY_NAME.fullmatch(strategy):
        raise InvalidInputError(
            f"strategy name {strategy!r} must be 1-64 ASCII letters, digits, '_' or '-'"
        )
    return strategy
