"""Fault injection for the paper broker: the ways a real broker misbehaves, on demand.

Tests and demos arm a fault; the broker consults it at the point where a real broker would go
wrong. Faults: drop fill reports, fill an order after reporting it cancelled, hold a position
(or place an order) from outside tradelab, reject every order for a while (clock time), fail
reads transiently; a disconnect is `PaperBroker.disconnect()`. Thread model: armed from any thread, read under
the broker's lock.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

from tradelab.errors import InvalidInputError, LifecycleError
from tradelab.market.clock import NS_PER_S
from tradelab.trading.orders import OrderRequest, OrderUpdate, check_price

if TYPE_CHECKING:
    from tradelab.broker.paper import PaperBroker


class PaperFaults:
    def __init__(self, broker: PaperBroker) -> None:
        self._broker = broker
        self.fill_reports_to_drop = 0
        self.cancels_to_fill = 0
        # None: nothing armed (0 is a time like any other: a backtest of 1962 runs before it).
        self.reject_until_ns: int | None = None
        self.reads_to_fail = 0
        self.silent = False  # reports are not sent while an outside order is placed
        self.dropped_reports = 0  # how many fill reports were dropped (a test reads it)

    def drop_fill_reports(self, count: int = 1) -> None:
        """The next `count` fills happen in the account but their reports are never sent."""
        self.fill_reports_to_drop = _count(count)

    def fill_after_cancel(self, count: int = 1) -> None:
        """The next `count` cancels are reported as done, but the orders keep working and fill
        on later quotes (the race a real exchange loses now and then)."""
        self.cancels_to_fill = _count(count)

    def reject_orders_for(self, seconds: float) -> None:
        """Every order is rejected until the broker's clock has moved `seconds` on."""
        if not _is_number(seconds) or not math.isfinite(seconds) or seconds < 0:
            raise InvalidInputError(f"seconds {seconds!r} must be a finite number >= 0")
        self.reject_until_ns = self._broker.clock.now_ns() + int(seconds * NS_PER_S)

    def fail_reads(self, count: int = 1) -> None:
        """The next `count` reads (positions, open orders, an order, fills) raise
        BrokerUnavailableError, as a flaky connection would."""
        self.reads_to_fail = _count(count)

    def place_outside_order(self, request: OrderRequest) -> OrderUpdate:
        """Send an order as if from another terminal: the account takes it, but its acceptance
        (and any fill it gets at once) is reported to no listener."""
        if not isinstance(request, OrderRequest):
            raise InvalidInputError(
                f"request must be an OrderRequest (tradelab.trading.orders), got "
                f"{type(request).__name__} {_shown(request)}"
            )
        self._check_open("place_outside_order")
        with self._broker._lock:  # no other caller's reports are silenced meanwhile
            self.silent = True
            try:
                return self._broker.submit_order(request)
            finally:
                self.silent = False

    def hold_outside_position(self, symbol: str, quantity: int, price: float) -> None:
        """Put a position in the account as if opened elsewhere (another terminal): no order,
        no fill, no report; cash pays for it. `quantity` is signed units in whole lots (short
        < 0), `price` the positive premium paid per unit."""
        self._check_open("hold_outside_position")
        broker = self._broker
        contract = broker.universe.parse(symbol)
        signed = _signed_lots(quantity, broker.universe.lot_size(contract), symbol)
        price = check_price(price, "price", symbol)
        with broker._lock:
            broker._check_up()  # a down broker's account takes nothing more
            # Margin of a short held outside: on the strike, or (no strike) on its price.
            broker.account.strikes[symbol] = contract.strike or price
            broker.account.move(symbol, signed, price, 0.0)
            broker._save_then_report()

    def _check_open(self, what: str) -> None:
        # A closed broker's account file is closed too: nothing can be put in it any more.
        if self._broker.account.closed:
            raise LifecycleError(
                f"{what}: broker {self._broker.name!r} is closed (its session stopped); "
                "faults are injected into a broker whose session is running"
            )

    def clear(self) -> None:
        self.fill_reports_to_drop = self.cancels_to_fill = self.reads_to_fail = 0
        self.reject_until_ns = None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _count(count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidInputError(f"count {count!r} must be a whole number >= 0")
    return count


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _signed_lots(quantity: Any, lot_size: int, symbol: str) -> int:
    """`quantity` as signed whole units, a non-zero multiple of the lot size."""
    if not _is_number(quantity):
        raise InvalidInputError(f"quantity {quantity!r} for {symbol} is not a number")
    if not math.isfinite(quantity) or quantity != int(quantity):
        raise InvalidInputError(f"quantity {quantity!r} for {symbol} is not a whole number")
    if quantity == 0:
        raise InvalidInputError(
            f"quantity 0 for {symbol} must not be 0 (signed units: > 0 long, < 0 short)"
        )
    if int(quantity) % lot_size:
        raise InvalidInputError(
            f"quantity {int(quantity)} is not a multiple of lot size {lot_size} for {symbol}"
        )
    return int(quantity)
