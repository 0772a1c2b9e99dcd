"""PaperBroker: a simulated NSE options broker that fills against the latest feed quotes.

Market orders fill at the touch (ask to buy, bid to sell) plus configurable slippage; limit
orders fill when the quote crosses them; an order larger than the quoted size fills partially
and the rest works on later quotes. Latency delays fills in feed (clock) time, not wall time.
Disconnect policy: orders and cancels sent while disconnected are **rejected**; orders already
working keep filling at the simulated exchange, and their updates are held and delivered in
order on `connect()` (as a real broker's order stream catches up after a reconnect).
Thread model: every public method takes one lock for the book-keeping; listeners are called
after it is released, on the calling thread, with the updates that call caused, in order
(`CallerOutbox`): a listener that blocks (a critical engine submit) never holds the broker, and
no caller runs another caller's listeners.
"""

from __future__ import annotations

import math
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import param

from tradelab.broker.base import ConnectionListener, OrderListener
from tradelab.errors import InvalidInputError, LifecycleError, OrderRejectedError
from tradelab.market.clock import NS_PER_S, MarketHours, WallClock
from tradelab.market.instruments import IST, TICK_SIZE, OptionContract, OptionUniverse
from tradelab.market.ticks import Tick
from tradelab.trading.orders import (
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    check_price,
    check_quantity,
)
from tradelab.trading.outbox import CallerOutbox


class PaperBrokerConfig(param.Parameterized):
    """Costs, frictions and limits of the paper broker."""

    slippage_ticks = param.Integer(
        default=0, bounds=(0, 1000), doc="Ticks (0.05) paid beyond the touch on market orders."
    )
    latency_ms = param.Integer(
        default=0, bounds=(0, 600_000), doc="Clock time from acceptance until an order can fill."
    )
    brokerage_per_fill = param.Number(default=20.0, bounds=(0.0, None), doc="Flat fee, rupees.")
    charges_rate = param.Number(
        default=0.0, bounds=(0.0, 0.1), doc="Fees as a fraction of premium turnover."
    )
    capital = param.Number(default=1_000_000.0, bounds=(0.0, None), doc="Starting cash, rupees.")
    short_margin_rate = param.Number(
        default=0.12, bounds=(0.0, 1.0), doc="Margin blocked per short unit, x strike."
    )
    enforce_market_hours = param.Boolean(default=True, doc="Reject orders outside 09:15-15:30.")


@dataclass
class _Order:
    request: OrderRequest
    broker_order_id: str
    lot_size: int
    contract: OptionContract
    active_from_ns: int
    status: OrderStatus = OrderStatus.ACCEPTED
    filled: int = 0
    notional: float = 0.0
    updates: list[OrderUpdate] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.request.quantity - self.filled

    @property
    def average_price(self) -> float:
        return self.notional / self.filled if self.filled else 0.0


class PaperBroker:
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
        self._outbox = CallerOutbox()
        self._quotes: dict[str, list[float]] = {}  # symbol -> [bid, ask, bid_left, ask_left]
        self._orders: dict[str, _Order] = {}
        self._working: dict[str, _Order] = {}  # not yet terminal; quotes only scan these
        self._fills: list[Fill] = []
        self._positions: dict[str, int] = {}
        self._strikes: dict[str, int] = {}
        self.cash = float(self.config.capital)
        self._next_order = 1
        # Ids must not repeat across broker restarts: the journal keeps trades by id.
        self.id_prefix = id_prefix or f"PB{uuid.uuid4().hex[:6].upper()}"

    # -- connection -------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._connected

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
                self._reject(request, str(exc), now)
                raise OrderRejectedError(str(exc)) from exc
            order = _Order(
                request,
                f"{self.id_prefix}-{self._next_order:06d}",
                lot,
                contract,
                now + self.config.latency_ms * 1_000_000,
            )
            self._next_order += 1
            self._orders[request.order_id] = order
            self._working[request.order_id] = order
            self._strikes[request.symbol] = contract.strike
            self._emit(order, OrderStatus.ACCEPTED, now)
            if order.active_from_ns <= now:
                self._match(order, now)
            return order.updates[-1]

    def cancel_order(self, order_id: str) -> OrderUpdate:
        try:
            return self._cancel_locked(order_id)
        finally:
            self._outbox.drain()

    def _cancel_locked(self, order_id: str) -> OrderUpdate:
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                raise InvalidInputError(f"order {order_id!r} is not known to broker {self.name!r}")
            if not self._connected:
                raise OrderRejectedError(
                    f"cannot cancel order {order_id!r}: broker {self.name!r} is disconnected"
                )
            if order.status.is_terminal:
                raise OrderRejectedError(
                    f"cannot cancel order {order_id!r}: it is already {order.status}"
                )
            return self._emit(order, OrderStatus.CANCELLED, self.clock.now_ns(), reason="cancelled")

    def open_orders(self) -> list[OrderUpdate]:
        with self._lock:
            return [o.updates[-1] for o in self._working.values()]

    def positions(self) -> dict[str, int]:
        with self._lock:
            return {s: q for s, q in self._positions.items() if q}

    def fills_since(self, fill_seq: int = 0, *, ts: int | None = None) -> list[Fill]:
        with self._lock:
            if not self._connected:
                raise LifecycleError(
                    f"broker {self.name!r} is disconnected; connect() before asking for fills"
                )
            if ts is not None:
                return [f for f in self._fills if f.ts >= ts]
            return [f for f in self._fills if f.fill_seq > fill_seq]

    # -- market data ------------------------------------------------------------------------
    def on_quote(self, tick: Tick) -> None:
        """Take a new quote (sizes replenish) and fill the working orders it allows."""
        with self._lock:
            self._quotes[tick.symbol] = [tick.bid, tick.ask, tick.bid_size, tick.ask_size]
            now = self.clock.now_ns()
            for order in list(self._working.values()):
                if order.request.symbol == tick.symbol and order.active_from_ns <= now:
                    self._match(order, now)
        self._outbox.drain()

    def poll(self) -> None:
        """Fill what the latency kept back once the clock has moved past it."""
        with self._lock:
            now = self.clock.now_ns()
            for order in list(self._working.values()):
                if order.active_from_ns <= now:
                    self._match(order, now)
        self._outbox.drain()

    # -- internals --------------------------------------------------------------------------
    def _check(self, request: OrderRequest, now: int) -> tuple[OptionContract, int]:
        if not self._connected:
            raise OrderRejectedError(
                f"broker {self.name!r} is disconnected; order {request.order_id!r} not sent"
            )
        if request.order_id in self._orders:
            raise InvalidInputError(f"order id {request.order_id!r} was already used")
        contract = self.universe.parse(request.symbol)
        if contract.expiry_close().timestamp() * NS_PER_S <= now:
            raise OrderRejectedError(
                f"contract {request.symbol} expired on {contract.expiry.isoformat()}"
            )
        if self.config.enforce_market_hours and not self.hours.is_open(now):
            at = datetime.fromtimestamp(now / NS_PER_S, tz=IST).strftime("%Y-%m-%d %H:%M:%S")
            raise OrderRejectedError(
                f"market is closed at {at} IST; orders are taken 09:15-15:30 IST on trading days"
            )
        lot = self.universe.lot_size(contract)
        check_quantity(request.quantity, lot, request.symbol)
        if request.order_type is OrderType.LIMIT:
            if request.limit_price is None:
                raise InvalidInputError(f"limit order for {request.symbol} has no limit price")
            check_price(request.limit_price, "limit price", request.symbol)
        quote = self._quotes.get(request.symbol)
        if request.order_type is OrderType.MARKET and quote is None:
            raise OrderRejectedError(f"no quote for {request.symbol}; cannot place a market order")
        self._check_margin(request, contract, quote)
        return contract, lot

    def _check_margin(self, request: OrderRequest, contract: OptionContract, quote) -> None:
        held = self._positions.get(request.symbol, 0)
        if request.side is Side.BUY:
            price = request.limit_price if request.order_type is OrderType.LIMIT else quote[1]
            covering = min(request.quantity, max(-held, 0))
            needed = (
                price * request.quantity
                - covering * contract.strike * self.config.short_margin_rate
            )
        else:
            opening = request.quantity - min(request.quantity, max(held, 0))
            needed = opening * contract.strike * self.config.short_margin_rate
        available = self.cash - self._blocked_margin() - self._working_reserve()
        if needed > available:
            raise OrderRejectedError(
                f"insufficient margin for {request.side} {request.quantity} {request.symbol}: "
                f"needs {needed:,.2f}, available {available:,.2f}"
            )

    def _working_reserve(self) -> float:
        """Cash that working orders will take when they fill: premium of the unfilled part of
        a buy (at its limit, else the ask), short margin of the part of a sell that opens.
        Without it, several working orders each pass alone and then overdraw the cash."""
        rate = self.config.short_margin_rate
        reserve = 0.0
        for order in self._working.values():
            r, left = order.request, order.remaining
            if r.side is Side.BUY:
                quote = self._quotes.get(r.symbol)
                price = r.limit_price if r.order_type is OrderType.LIMIT else (quote or (0, 0))[1]
                reserve += price * left
            else:
                held = max(self._positions.get(r.symbol, 0), 0)
                reserve += (left - min(left, held)) * order.contract.strike * rate
        return reserve

    def _blocked_margin(self) -> float:
        rate = self.config.short_margin_rate
        return sum(-q * self._strikes.get(s, 0) * rate for s, q in self._positions.items() if q < 0)

    def _reject(self, request: OrderRequest, reason: str, now: int) -> None:
        update = OrderUpdate(
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
        # A rejection answers the caller directly, so it is delivered even while disconnected.
        self._deliver(update)

    def _emit(
        self,
        order: _Order,
        status: OrderStatus,
        now: int,
        *,
        reason: str = "",
        fill: Fill | None = None,
    ) -> OrderUpdate:
        order.status = status
        if status.is_terminal:
            self._working.pop(order.request.order_id, None)
        r = order.request
        update = OrderUpdate(
            status,
            r.order_id,
            order.broker_order_id,
            r.symbol,
            r.side,
            r.quantity,
            order.filled,
            order.average_price,
            now,
            r.strategy,
            reason=reason,
            fill=fill,
        )
        order.updates.append(update)
        self._notify(update)
        return update

    def _match(self, order: _Order, now: int) -> None:
        quote = self._quotes.get(order.request.symbol)
        if quote is None:
            return
        r = order.request
        buy = r.side is Side.BUY
        touch = quote[1] if buy else quote[0]
        available = int(quote[3] if buy else quote[2])
        if touch <= 0 or not math.isfinite(touch):
            return
        slip = self.config.slippage_ticks * TICK_SIZE
        price = touch + slip if buy else max(touch - slip, TICK_SIZE)
        if r.order_type is OrderType.LIMIT:
            if (buy and touch > r.limit_price) or (not buy and touch < r.limit_price):
                return
            price = min(price, r.limit_price) if buy else max(price, r.limit_price)
        # Fill whole lots only, up to the size shown at the touch.
        size = min(order.remaining, available) // order.lot_size * order.lot_size
        if size <= 0:
            return
        price = round(price, 2)
        quote[3 if buy else 2] = available - size
        fee = round(self.config.brokerage_per_fill + self.config.charges_rate * price * size, 2)
        order.filled += size
        order.notional += price * size
        signed = size if buy else -size
        self._positions[r.symbol] = self._positions.get(r.symbol, 0) + signed
        self.cash += -signed * price - fee
        fill = Fill(
            fill_seq=len(self._fills) + 1,
            trade_id=f"{self.id_prefix}-F{len(self._fills) + 1:06d}",
            order_id=r.order_id,
            broker_order_id=order.broker_order_id,
            symbol=r.symbol,
            side=r.side,
            quantity=size,
            price=price,
            fee=fee,
            ts=now,
            strategy=r.strategy,
            lot_size=order.lot_size,
        )
        self._fills.append(fill)
        status = OrderStatus.FILLED if order.remaining == 0 else OrderStatus.PARTIALLY_FILLED
        self._emit(order, status, now, fill=fill)

    def set_quote(self, symbol: str, bid: float, ask: float, size: int = 10_000) -> None:
        """Put a quote in by hand (tests and notebooks); same as a feed tick at the clock's now."""
        self.on_quote(Tick(symbol, self.clock.now_ns(), bid, ask, (bid + ask) / 2, size, size))
