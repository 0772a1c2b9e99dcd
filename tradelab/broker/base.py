"""The `Broker` protocol: what the execution desk, the reconciler and the contract tests rely on.

Adapters report order lifecycle changes to listeners as `OrderUpdate`s (accepted, partially
filled, filled, cancelled, rejected), each fill attached to the update it caused. Every method
may be called from any thread; an adapter serialises its own state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from tradelab.errors import LifecycleError
from tradelab.trading.orders import Fill, OrderRequest, OrderUpdate

OrderListener = Callable[[OrderUpdate], object]
ConnectionListener = Callable[[bool, int], object]  # (connected, ts ns)


class BrokerUnavailableError(LifecycleError):
    """The broker cannot answer now (disconnected, timed out): a caller may retry later."""


class BrokerDownError(BrokerUnavailableError):
    """The broker has stopped for this session (its own account cannot be saved): it answers
    nothing more until it is started again (a restart)."""


@runtime_checkable
class Broker(Protocol):
    name: str
    # Names the account the fills belong to: fill_seq counts within one account, so a caller
    # keeping a point in the fills (the reconciler) starts over when the account changes.
    account_id: str

    @property
    def is_connected(self) -> bool:
        """True while orders can be sent."""

    def connect(self) -> None:
        """(Re)connect; updates held while disconnected are delivered, in order, afterwards."""

    def disconnect(self) -> None:
        """Drop the connection: new orders and cancels are rejected until `connect`."""

    def add_listener(
        self, on_order: OrderListener, on_connection: ConnectionListener | None = None
    ) -> None:
        """Receive every order update (and connection change) from now on."""

    def submit_order(self, request: OrderRequest) -> OrderUpdate:
        """Send an order; returns its state after acceptance (possibly already filled).

        A refused order raises `OrderRejectedError` after listeners got the rejected update.
        """

    def cancel_order(self, order_id: str, reason: str = "cancelled") -> OrderUpdate:
        """Cancel the unfilled rest of a working order (`reason` in its report);
        `OrderRejectedError` if it is finished."""

    # Reads raise BrokerUnavailableError while the broker cannot answer (e.g. disconnected).
    def open_orders(self) -> list[OrderUpdate]:
        """Working orders (accepted or partially filled), oldest first."""

    def order(self, order_id: str) -> OrderUpdate | None:
        """The latest state of an order this account has seen (any status), or None."""

    def positions(self) -> dict[str, int]:
        """Net quantity in units per symbol, flat symbols omitted."""

    def lot_size(self, symbol: str) -> int:
        """Units in one lot of `symbol` (1 for an instrument traded in units)."""

    def average_prices(self) -> dict[str, float]:
        """Average entry price per held symbol (volume-weighted; reducing keeps it), as the
        broker reports it; a symbol whose cost the broker does not know is omitted."""

    def fills_since(self, fill_seq: int = 0, *, ts: int | None = None) -> list[Fill]:
        """Fills with `fill_seq` greater than the one given (or with `ts` at or after `ts`),
        in fill_seq order; fill_seq and trade ids never repeat within an account."""
