"""PaperBroker: a simulated NSE options broker that fills against the latest feed quotes.

Market orders fill at the touch (ask to buy, bid to sell) plus configurable slippage; limit
orders fill when the quote crosses them; an order larger than the quoted size fills partially
and the rest works on later quotes. Latency delays fills in feed (clock) time, not wall time.
Disconnect policy: orders and cancels sent while disconnected are **rejected**; orders already
working keep filling at the simulated exchange, and their updates are held and delivered in
order on `connect()` (as a real broker's order stream catches up after a reconnect); reads
(positions, orders, fills) raise BrokerUnavailableError while disconnected.
Account: cash, positions, orders and fills live in a `PaperAccount`, saved to its own file
(`account_path`) after every change, so a restarted broker holds what it held. Saved first,
reported after: an update (an acceptance, a fill) reaches listeners only once the file holds
it. A save that fails (disk full) takes the broker **down** for good (`failure` says why): what
it changed in that call is never reported (an order it was taking is rejected instead), and
from then on orders and cancels are rejected, reads and quotes raise `BrokerDownError`; a
restart resumes from the file, which holds every fill that was reported. An option held past
its expiry's close is settled in cash when `settle_expired` is called (settlement.py). Faults
for tests and demos are armed on `broker.faults` (see faults.py).
Thread model: every public method takes one lock for the book-keeping; listeners are called
after it is released, on the calling thread, with the updates that call caused, in order
(`CallerOutbox`): a listener that blocks (a critical engine submit) never holds the broker, and
no caller runs another caller's listeners.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tradelab.broker.account import PaperAccount
from tradelab.broker.account_file import AccountFileError
from tradelab.broker.base import (
    BrokerDownError,
    ConnectionListener,
    OrderListener,
)
from tradelab.broker.faults import PaperFaults
from tradelab.broker.paper_order import PaperOrder, rejected_update
from tradelab.broker.paper_pricing import PaperBrokerConfig, checked_terms, fill_terms
from tradelab.broker.paper_reads import PaperReads
from tradelab.broker.settlement import settle_expired
from tradelab.errors import InvalidInputError, InvalidOrderError, OrderRejectedError
from tradelab.market.clock import MarketHours, WallClock
from tradelab.market.instruments import OptionUniverse
from tradelab.market.ticks import Tick
from tradelab.trading.orders import (
    Fill,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
)
from tradelab.trading.outbox import CallerOutbox

log = logging.getLogger(__name__)


class PaperBroker(PaperReads):
    """A `Broker` that simulates execution against quotes pushed in with `on_quote`."""

    def __init__(
        self,
        config: PaperBrokerConfig | None = None,
        *,
        universe: OptionUniverse | None = None,
        clock: Any = None,
        hours: MarketHours | None = None,
        name: str = "paper",
        id_prefix: str | None = None,
        account_path: str | Path | None = None,
    ) -> None:
        self.config = config or PaperBrokerConfig()
        self.universe = universe or OptionUniverse()
        self.clock = clock or WallClock()
        self.hours = hours or MarketHours()
        self.name = name
        self._lock = threading.RLock()
        self._connected = True
        self._order_listeners: list[OrderListener] = []
        self._connection_listeners: list[ConnectionListener] = []
        self._held: list[OrderUpdate] = []
        self._unsaved: list[OrderUpdate] = []  # reported once the account file holds them
        self.failure: str | None = None  # why the broker is down (its account cannot be saved)
        self._outbox = CallerOutbox()
        self._quotes: dict[str, list[float]] = {}  # symbol -> [bid, ask, bid_left, ask_left]
        self.account = PaperAccount(
            self.config.capital,
            universe=self.universe,
            short_margin_rate=self.config.short_margin_rate,
            path=account_path,
            id_prefix=id_prefix,
            history_fills=self.config.history_fills,
            history_orders=self.config.history_orders,
        )
        self.faults = PaperFaults(self)

    @property
    def id_prefix(self) -> str:
        return self.account.id_prefix

    @property
    def account_id(self) -> str:
        return self.account.id_prefix

    @property
    def cash(self) -> float:
        return self.account.cash

    def close(self) -> None:
        """Close the account file (the broker is not used afterwards). Every change was saved
        as it was made; if that failed, `failure` says so and closing does not raise."""
        with self._lock:
            if self.failure is None:
                with contextlib.suppress(BrokerDownError):  # `failure` says why
                    self._save_then_report()
            # A down broker's file may not close cleanly: SQLite recovers it on the next open.
            with contextlib.suppress(AccountFileError):
                self.account.close()

    # -- connection -------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._connected and self.failure is None

    def add_listener(
        self, on_order: OrderListener, on_connection: ConnectionListener | None = None
    ) -> None:
        with self._lock:
            self._order_listeners.append(on_order)
            if on_connection is not None:
                self._connection_listeners.append(on_connection)

    def disconnect(self) -> None:
        with self._lock:
            if self._connected:
                self._connected = False
                self._connection_changed(False)
        self._outbox.drain()

    def connect(self) -> None:
        with self._lock:
            if not self._connected:
                self._connected = True
                self._connection_changed(True)
                held, self._held = self._held, []
                for update in held:
                    self._deliver(update)
        self._outbox.drain()

    def _connection_changed(self, connected: bool) -> None:
        now = self.clock.now_ns()
        for listener in self._connection_listeners:
            self._outbox.put(lambda listener=listener: listener(connected, now))

    def _notify(self, update: OrderUpdate) -> None:
        self._unsaved.append(update)

    def _save_then_report(self) -> None:
        """Save the account, then queue the updates it now holds for the listeners; if the
        save fails, the broker goes down and those updates are never reported."""
        updates, self._unsaved = self._unsaved, []
        try:
            self.account.save()
        except AccountFileError as exc:
            self.failure = (
                f"broker {self.name!r} is down: {exc}; it takes no orders and reports nothing "
                "more (a restart resumes from the file, which holds every fill it reported)"
            )
            log.error("%s", self.failure)
            raise BrokerDownError(self.failure) from exc
        for update in updates:
            self._report(update)

    def _check_up(self) -> None:
        if self.failure is not None:
            raise BrokerDownError(self.failure)

    def _report(self, update: OrderUpdate) -> None:
        if self.faults.silent:
            return
        if update.fill is not None and self.faults.fill_reports_to_drop:
            self.faults.fill_reports_to_drop -= 1
            self.faults.dropped_reports += 1
            return
        if self._connected:
            self._deliver(update)
        else:
            self._held.append(update)

    def _deliver(self, update: OrderUpdate) -> None:
        for listener in self._order_listeners:
            self._outbox.put(lambda listener=listener: listener(update))

    # -- orders -----------------------------------------------------------------------------
    def submit_order(self, request: OrderRequest) -> OrderUpdate:
        try:
            return self._submit_locked(request)
        finally:
            self._outbox.drain()

    def _submit_locked(self, request: OrderRequest) -> OrderUpdate:
        with self._lock:
            now = self.clock.now_ns()
            try:
                contract, lot = self._check(request, now)
            except (InvalidInputError, OrderRejectedError) as exc:
                # A reused id is told to its caller only: a report under that id would finish
                # the live order that holds it.
                if request.order_id not in self.account.orders:
                    self._reject(request, str(exc), now)
                if isinstance(exc, InvalidInputError):
                    raise InvalidOrderError(str(exc)) from exc
                raise OrderRejectedError(str(exc)) from exc
            account = self.account
            order = PaperOrder(
                request,
                account.new_broker_order_id(),
                lot,
                contract,
                now + self.config.latency_ms * 1_000_000,
            )
            account.add_order(order)
            self._emit(order, OrderStatus.ACCEPTED, now)
            if order.active_from_ns <= now:
                self._match(order, now)
            try:
                self._save_then_report()
            except BrokerDownError as exc:  # not in the file: for the account, never taken
                self._reject(request, str(exc), now)
                raise OrderRejectedError(str(exc)) from exc
            return order.last

    def cancel_order(self, order_id: str, reason: str = "cancelled") -> OrderUpdate:
        try:
            return self._cancel_locked(order_id, reason)
        finally:
            self._outbox.drain()

    def _cancel_locked(self, order_id: str, reason: str) -> OrderUpdate:
        with self._lock:
            order = self.account.orders.get(order_id)
            if order is None:
                raise InvalidInputError(f"order {order_id!r} is not known to broker {self.name!r}")
            if self.failure is not None:
                raise OrderRejectedError(f"cannot cancel order {order_id!r}: {self.failure}")
            if not self._connected:
                raise OrderRejectedError(
                    f"cannot cancel order {order_id!r}: broker {self.name!r} is disconnected"
                )
            if order.status.is_terminal or order.reported_cancelled:
                status = OrderStatus.CANCELLED if order.reported_cancelled else order.status
                raise OrderRejectedError(
                    f"cannot cancel order {order_id!r}: it is already {status}"
                )
            if self.faults.cancels_to_fill:
                self.faults.cancels_to_fill -= 1
                order.reported_cancelled = True  # stays in `working`: later quotes fill it
            update = self._emit(order, OrderStatus.CANCELLED, self.clock.now_ns(), reason=reason)
            if order.reported_cancelled:
                order.status = (
                    OrderStatus.PARTIALLY_FILLED if order.filled else OrderStatus.ACCEPTED
                )
            try:
                self._save_then_report()
            except BrokerDownError as exc:
                raise OrderRejectedError(f"cannot cancel order {order_id!r}: {exc}") from exc
            return update

    # -- market data ------------------------------------------------------------------------
    def on_quote(self, tick: Tick) -> None:
        """Take a new quote (sizes replenish) and fill the working orders it allows."""
        with self._lock:
            self._check_up()
            self._quotes[tick.symbol] = [tick.bid, tick.ask, tick.bid_size, tick.ask_size]
            now = self.clock.now_ns()
            for order in list(self.account.working.values()):
                if order.request.symbol == tick.symbol and order.active_from_ns <= now:
                    self._match(order, now)
            self._save_then_report()
        self._outbox.drain()

    def poll(self) -> None:
        """Fill what the latency kept back once the clock has moved past it."""
        with self._lock:
            self._check_up()
            now = self.clock.now_ns()
            for order in list(self.account.working.values()):
                if order.active_from_ns <= now:
                    self._match(order, now)
            self._save_then_report()
        self._outbox.drain()

    # -- internals --------------------------------------------------------------------------
    def _check(self, request: OrderRequest, now: int) -> tuple[Any, int]:
        if self.failure is not None:
            raise OrderRejectedError(f"order {request.order_id!r} not sent: {self.failure}")
        if not self._connected:
            raise OrderRejectedError(
                f"broker {self.name!r} is disconnected; order {request.order_id!r} not sent"
            )
        rejecting_until = self.faults.reject_until_ns
        if rejecting_until is not None and now < rejecting_until:
            raise OrderRejectedError(
                f"broker {self.name!r} rejects every order for now (injected fault)"
            )
        if request.order_id in self.account.orders:
            raise InvalidInputError(f"order id {request.order_id!r} was already used")
        return checked_terms(
            request, now, self.universe, self.hours, self.config, self.account, self._quotes
        )

    def _reject(self, request: OrderRequest, reason: str, now: int) -> None:
        # A rejection answers the caller directly, so it is delivered even while disconnected.
        self._deliver(rejected_update(request, reason, now))

    def _emit(
        self,
        order: PaperOrder,
        status: OrderStatus,
        now: int,
        *,
        reason: str = "",
        fill: Fill | None = None,
    ) -> OrderUpdate:
        order.status = status
        update = order.last = order.update(now, reason=reason, fill=fill)
        self.account.touch(order)
        self._notify(update)
        return update

    def _match(self, order: PaperOrder, now: int) -> None:
        if self.config.enforce_market_hours and not self.hours.is_open(now):
            return  # a replay's bars after the close: day orders are cancelled, never filled
        quote = self._quotes.get(order.request.symbol)
        terms = None if quote is None else fill_terms(order, quote, self.config)
        if terms is None:
            return
        size, price, fee = terms
        fill = self.account.record_fill(order, size, price, fee, now)
        status = OrderStatus.FILLED if order.remaining == 0 else OrderStatus.PARTIALLY_FILLED
        if order.reported_cancelled and status is OrderStatus.FILLED:
            order.reported_cancelled = False  # done at last: leaves `working` in _emit
        self._emit(order, status, now, fill=fill)

    # -- expiry -----------------------------------------------------------------------------
    def settle_expired(
        self,
        index_prices: Mapping[str, float] | None = None,
        held_by: Mapping[str, Mapping[str, int]] | None = None,
    ) -> list[OrderUpdate]:
        """Settle the held options whose expiry closed by now, reported like fills: at the
        index's quote here, else `index_prices`; split per strategy by `held_by` (settlement.py)."""
        try:
            with self._lock:
                self._check_up()
                now = self.clock.now_ns()
                booked = settle_expired(
                    self.account, self.universe, self._quotes, index_prices, now, held_by
                )
                updates = [
                    self._emit(order, OrderStatus.FILLED, fill.ts, reason=reason, fill=fill)
                    for order, fill, reason in booked
                ]
                self._save_then_report()
                return updates
        finally:
            self._outbox.drain()

    def set_quote(self, symbol: str, bid: float, ask: float, size: int = 10_000) -> None:
        """Put a quote in by hand (tests and notebooks); same as a feed tick at the clock's now."""
        self.on_quote(Tick(symbol, self.clock.now_ns(), bid, ask, (bid + ask) / 2, size, size))
