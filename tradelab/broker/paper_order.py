"""An order as the paper broker holds it (`PaperOrder`), its reports, and reading both back
from the account file's records.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tradelab.trading.orders import (
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)


@dataclass
class PaperOrder:
    """One order as the broker sees it. `reported_cancelled`: a fault made the broker report it
    cancelled while it keeps working (it may still fill)."""

    request: OrderRequest
    broker_order_id: str
    lot_size: int
    contract: Any
    active_from_ns: int
    status: OrderStatus = OrderStatus.ACCEPTED
    filled: int = 0
    notional: float = 0.0
    last: OrderUpdate | None = None
    reported_cancelled: bool = False

    @property
    def remaining(self) -> int:
        return self.request.quantity - self.filled

    @property
    def average_price(self) -> float:
        return self.notional / self.filled if self.filled else 0.0

    @property
    def report(self) -> OrderUpdate | None:
        """The last update with the order's terms (type, limit), as the broker reports it."""
        if self.last is None:
            return None
        r = self.request
        return replace(self.last, order_type=str(r.order_type), limit_price=r.limit_price)

    def update(self, now: int, *, reason: str = "", fill: Fill | None = None) -> OrderUpdate:
        """The order's state now as an update to report (with the fill that caused it)."""
        r = self.request
        return OrderUpdate(
            self.status,
            r.order_id,
            self.broker_order_id,
            r.symbol,
            r.side,
            r.quantity,
            self.filled,
            self.average_price,
            now,
            r.strategy,
            reason=reason,
            fill=fill,
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "request": self.request.to_payload(),
            "broker_order_id": self.broker_order_id,
            "lot_size": self.lot_size,
            "active_from_ns": self.active_from_ns,
            "status": str(self.status),
            "filled": self.filled,
            "notional": self.notional,
            "last": None if self.last is None else self.last.to_payload(),
            "reported_cancelled": self.reported_cancelled,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], universe: Any) -> PaperOrder:
        r = record["request"]
        request = OrderRequest(
            r["order_id"],
            r["symbol"],
            Side(r["side"]),
            r["quantity"],
            OrderType(r["order_type"]),
            r["limit_price"],
            r["strategy"],
        )
        last = record["last"]
        return cls(
            request,
            record["broker_order_id"],
            record["lot_size"],
            universe.parse(r["symbol"]),
            record["active_from_ns"],
            OrderStatus(record["status"]),
            record["filled"],
            record["notional"],
            None if last is None else update_from_payload(last),
            record.get("reported_cancelled", False),
        )


def rejected_update(request: OrderRequest, reason: str, now: int) -> OrderUpdate:
    """The update of an order the broker refused (it has no broker order id)."""
    return OrderUpdate(
        OrderStatus.REJECTED,
        request.order_id,
        "",
        request.symbol,
        request.side,
        request.quantity if isinstance(request.quantity, int) else 0,
        0,
        0.0,
        now,
        request.strategy,
        reason=reason,
    )


def update_from_payload(p: dict[str, Any]) -> OrderUpdate:
    """The inverse of `OrderUpdate.to_payload` (the fill is not kept: fills have their own table)."""
    return OrderUpdate(
        OrderStatus(p["status"]),
        p["order_id"],
        p["broker_order_id"],
        p["symbol"],
        Side(p["side"]),
        p["quantity"],
        p["filled_quantity"],
        p["average_price"],
        p["ts_broker"],
        p["strategy"],
        reason=p["reason"],
    )


def fill_from_payload(p: dict[str, Any]) -> Fill:
    return Fill(**{**p, "side": Side(p["side"])})
