"""What the paper broker answers when asked (`PaperReads`, a part of `PaperBroker`): its open
orders, an order, positions, costs and fills, each under the broker's lock and refused while it
is disconnected, down, or told by a fault not to answer (BrokerUnavailableError)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tradelab.broker.base import BrokerUnavailableError
from tradelab.trading.orders import Fill, OrderUpdate


class PaperReads:
    """The read half of `PaperBroker`: it uses the broker's lock, account, faults and state."""

    _lock: Any
    account: Any
    faults: Any
    universe: Any
    name: str
    _connected: bool
    _check_up: Callable[[], None]  # raises BrokerDownError once a save failed

    def _readable(self, what: str) -> None:
        self._check_up()
        if not self._connected:
            raise BrokerUnavailableError(
                f"broker {self.name!r} is disconnected; connect() before asking for {what}"
            )
        if self.faults.reads_to_fail:
            self.faults.reads_to_fail -= 1
            raise BrokerUnavailableError(f"broker {self.name!r} did not answer for {what}")

    def open_orders(self) -> list[OrderUpdate]:
        with self._lock:
            self._readable("open orders")
            return [o.report for o in self.account.working.values() if not o.reported_cancelled]

    def order(self, order_id: str) -> OrderUpdate | None:
        with self._lock:
            self._readable(f"order {order_id!r}")
            order = self.account.orders.get(order_id)
            return None if order is None else order.report

    def positions(self) -> dict[str, int]:
        with self._lock:
            self._readable("positions")
            return dict(self.account.positions)

    def lot_size(self, symbol: str) -> int:
        return self.universe.lot_size(symbol)

    def average_prices(self) -> dict[str, float]:
        with self._lock:
            self._readable("average prices")
            return dict(self.account.average_prices)

    def fills_since(self, fill_seq: int = 0, *, ts: int | None = None) -> list[Fill]:
        with self._lock:
            self._readable("fills")
            if ts is not None:
                return [f for f in self.account.fills if f.ts >= ts]
            return self.account.fills_from(fill_seq)

    def first_fill_seq(self) -> int:
        """The fill_seq of the oldest fill this broker still has (its history is bounded)."""
        with self._lock:
            self._readable("fills")
            return self.account.fill_base + 1
