"""Risk limits: the pre-trade checks and the operator's halt / resume commands (the limits
themselves: risk_config.py).

`RiskGate.check` looks at one order against the store (positions, working orders, marks, the
halt state in `risk.control`) and returns the reason it must not be sent, or None; the desk
journals a refusal as `order.denied` and never calls the broker. The order rate is counted on
the session's clock (market time), so a replay at any speed and a backtest decide alike.
Thread model: any thread may call. Held here: the order-rate window, and the orders a check let
through whose submission the store has not applied yet (`settled` drops them): the book-wide
limits count them, so two orders checked at once on different symbols cannot both pass a limit
that has room for one. A short lock makes each check and its registration one step.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from tradelab.errors import (  # noqa: F401  (the first and third importable here too)
    DuplicateOrderIdError,
    InvalidInputError,
    OrderDeniedError,
    TradelabError,
)
from tradelab.market.clock import NS_PER_S, WallClock
from tradelab.trading.book import excess_over, position_id
from tradelab.trading.holdings import (
    flatten_closes_that_fit,
    held_units,
    orders_not_reducing,
    working_orders,
)
from tradelab.trading.orders import OrderRequest, OrderType, Side
from tradelab.trading.risk_config import RiskConfig
from tradelab.trading.risk_state import ACTIVE, HALT_MODES, HALTED, REDUCING, control_state

Submit = Callable[..., Any]
log = logging.getLogger(__name__)


class Denial(NamedTuple):
    check: str
    reason: str


class RiskGate:
    """Pre-trade checks against the store, and the operator commands that halt or resume."""

    def __init__(
        self,
        config: RiskConfig | None,
        store: Any,
        submit: Submit,
        *,
        clock: Any = None,
    ) -> None:
        """`clock` (with `now_ns()`) is the session's market clock; wall time without one."""
        self.config = config or RiskConfig()
        self.store = store
        self._submit = submit
        self.clock = clock or WallClock()
        self._lock = threading.Lock()
        self._check_lock = threading.Lock()  # a check and its in-flight entry: one step
        self._in_flight: dict[str, OrderRequest] = {}  # passed, not yet in the store
        # Send times of the last minute's orders (exits too: counted, never refused), from the
        # store's orders on the first check: a restart inside the minute keeps its count.
        self._sent: deque[int] | None = None
        self._halt_listeners: list[Callable[[], Any]] = []

    @property
    def state(self) -> str:
        return control_state(self.store)

    # -- operator commands ------------------------------------------------------------------
    def halt(self, by: str, reason: str, *, mode: str = HALTED) -> None:
        """Stop new orders ('halted') or allow only exits ('reducing'); durable on return."""
        _check_operator(by, reason, "halt")
        if mode not in HALT_MODES:
            raise InvalidInputError(f"halt mode {mode!r} is not one of {HALT_MODES}")
        self._submit("risk.halted", {"reason": reason, "by": by, "mode": mode}, key="risk")
        for listener in self._halt_listeners:
            try:
                listener()
            except TradelabError as exc:  # the halt stands; the error names what was left
                log.error("after the halt: %s", exc)

    def add_halt_listener(self, listener: Callable[[], Any]) -> None:
        """Call `listener()` on the halting thread once each halt is durable (the desk cancels
        the working orders the new state forbids)."""
        self._halt_listeners.append(listener)

    def resume(self, by: str, reason: str) -> bool:
        """The only way out of a halt: an operator's command, journaled with who and why.
        False, and nothing journaled, when trading is not halted (nothing to lift)."""
        _check_operator(by, reason, "resume")
        if self.state == ACTIVE:
            return False
        self._submit("risk.resumed", {"reason": reason, "by": by}, key="risk")
        return True

    # -- pre-trade --------------------------------------------------------------------------
    def check(self, request: OrderRequest, *, exit_only: bool = False) -> Denial | None:
        """Why `request` must not be sent, or None (then it counts toward the order rate).

        `exit_only` orders (a flatten after a breach) pass a halt if they shrink a position. An
        order that only shrinks its position passes the limits (see RiskConfig).
        """
        with self._check_lock:
            reduces = self._reduces(request)
            denial = self._check_state(request, exit_only, reduces)
            if denial is None and exit_only and not reduces:  # whatever the state
                denial = Denial(
                    "exit_only",
                    f"{request.side} {request.quantity} {request.symbol} was sent to close "
                    f"strategy {request.strategy!r}'s position, but it no longer only reduces "
                    f"it ({self._exit_hint(request)}): another exit or flatten closed it first",
                )
            if denial is None and not reduces:
                denial = self._check_limits(request)
            if denial is None:
                denial = self._take_rate_slot(refusable=not reduces)
            if denial is None:
                self._in_flight[request.order_id] = request
            return denial

    def settled(self, order_id: str) -> None:
        """The order `check` let through is in the store now (or was never submitted): the
        book-wide limits read it from there."""
        with self._check_lock:
            self._in_flight.pop(order_id, None)

    def _in_flight_orders(self) -> list[OrderRequest]:
        """Orders let through whose submission the store has not applied yet (those it has are
        dropped here: the desk cannot wait for it on the kernel thread)."""
        orders = self.store.get("trading.orders", None) or {}
        for order_id in [oid for oid in self._in_flight if oid in orders]:
            del self._in_flight[order_id]
        return list(self._in_flight.values())

    def _check_state(self, request: OrderRequest, exit_only: bool, reduces: bool) -> Denial | None:
        state = self.state
        if state == ACTIVE:
            return None
        if (state == REDUCING or exit_only) and reduces:
            return None
        control = self.store.get("risk.control", None) or {}
        why = f" ({control['reason']})" if control.get("reason") else ""
        order = f"{request.side} {request.quantity} {request.symbol}"
        if state == REDUCING:
            allowed = "only orders that reduce their strategy's position"
            order += (
                f" as strategy {request.strategy!r} does not ({self._exit_hint(request)}), so it is"
            )
        else:
            allowed = "no new orders"
        return Denial(
            "risk_state",
            f"risk state is {state}{why}: {allowed}; {order} refused until an operator resumes "
            "(the console's Resume trading, or tradelab run --resume-trading REASON)",
        )

    def _exit_hint(self, request: OrderRequest) -> str:
        """Why `request` is not an exit: positions are per strategy, so name who holds what."""
        strategy, symbol = request.strategy, request.symbol
        held = self._held(strategy, symbol)
        if held:
            exit_side = "SELL" if held > 0 else "BUY"
            exits = working_orders(self.store, strategy, symbol, exit_side).values()
            pending = sum(order.get("remaining_quantity") or 0 for order in exits)
            in_exits = f", {pending} of it in working exits" if pending else ""
            return (
                f"{strategy!r} holds {held:+d}{in_exits}: an exit is a {exit_side} of at most "
                f"{abs(held) - pending}"
            )
        positions = self.store.get("trading.positions", None) or {}
        holders = [
            f"{positions[pid]['strategy']!r} holds {positions[pid]['net_quantity']:+d}"
            for pid in self._open_index().get(symbol, ())
        ]
        if not holders:
            return f"no strategy holds {symbol}"
        return (
            f"positions are per strategy and {strategy!r} holds none; {', '.join(holders)}: "
            "place the order as the strategy that holds it, or flatten"
        )

    def _reduces(self, request: OrderRequest) -> bool:
        """Whether `request` only shrinks its strategy's position: the opposite side, for no more
        than the position less that strategy's working exits in the symbol (so exits placed one
        after another cannot together take it through zero)."""
        held, room = self._exit_capacity(request.strategy, request.symbol)
        if held == 0 or (held > 0) == (request.side.sign > 0):
            return False
        return request.quantity <= room

    def exit_room(self, strategy: str, symbol: str) -> int:
        """How much of `strategy`'s position in `symbol` no market exit is closing yet: what a
        flatten's closing order may take (two flattens at once must not both close it). A
        resting limit exit closes nothing until it fills: not counted."""
        with self._check_lock:
            return self._exit_capacity(strategy, symbol, market_only=True)[1]

    def _exit_capacity(
        self, strategy: str, symbol: str, *, market_only: bool = False
    ) -> tuple[int, int]:
        """(units `strategy` holds in `symbol`, how many of them no exit closes yet). Exits
        are its working orders and those let through that the store has not applied yet
        (another thread's, between its check and its submission). Read in this order, the
        let-through first and the position last, so an order applied or filled meanwhile is
        counted twice at worst (an exit refused that could have passed), never missed (two
        exits passing that together take the position through zero)."""
        in_flight = (
            [o for o in self._in_flight_orders() if o.strategy == strategy and o.symbol == symbol]
            if self._in_flight
            else []
        )
        working = working_orders(self.store, strategy, symbol)
        held = self._held(strategy, symbol)
        if held == 0:
            return 0, 0
        side = "SELL" if held > 0 else "BUY"
        pending = sum(
            order.get("remaining_quantity") or 0
            for order in working.values()
            if order["side"] == side and not (market_only and order.get("limit_price") is not None)
        ) + sum(
            order.quantity
            for order in in_flight
            if str(order.side) == side
            and not (market_only and order.order_type is not OrderType.MARKET)
        )
        return held, max(0, abs(held) - pending)

    def _check_limits(self, request: OrderRequest) -> Denial | None:
        cfg = self.config
        if cfg.max_order_quantity is not None and request.quantity > cfg.max_order_quantity:
            return Denial(
                "max_order_quantity",
                f"quantity {request.quantity} of {request.symbol} exceeds max_order_quantity "
                f"{cfg.max_order_quantity}",
            )
        if cfg.max_open_positions is not None:
            denial = self._check_open_positions(request, cfg.max_open_positions)
            if denial is not None:
                return denial
        if cfg.max_order_notional is None and cfg.max_total_notional is None:
            return None
        price = self._price(request)
        if price is None:
            return Denial(
                "no_price",
                f"no mark or limit price for {request.symbol}: cannot value the order against "
                "the notional limits",
            )
        notional = price * request.quantity
        if cfg.max_order_notional is not None and excess_over(notional, cfg.max_order_notional) > 0:
            return Denial(
                "max_order_notional",
                f"order notional {notional:,.2f} ({request.quantity} x {price:,.2f} "
                f"{request.symbol}) exceeds max_order_notional {cfg.max_order_notional:,.2f}",
            )
        if cfg.max_total_notional is not None:
            total = self._book_notional() + notional
            if excess_over(total, cfg.max_total_notional) > 0:
                return Denial(
                    "max_total_notional",
                    f"total notional {total:,.2f} with this order (open positions and working "
                    f"orders included) exceeds max_total_notional {cfg.max_total_notional:,.2f}",
                )
        return None

    def _check_open_positions(self, request: OrderRequest, limit: int) -> Denial | None:
        """A position counts from its first working order: two resting entries must not both
        pass a limit of one and then both fill."""
        held = {pid for ids in self._open_index().values() for pid in ids}
        working = (self.store.get("trading.working", None) or {}).values()
        pending = {position_id(o.get("strategy"), o["symbol"]) for o in working}
        pending.update(position_id(r.strategy, r.symbol) for r in self._in_flight_orders())
        pending -= held
        pid = position_id(request.strategy, request.symbol)
        if pid in held or pid in pending or len(held) + len(pending) < limit:
            return None
        also = f", {len(pending)} more would open from working orders" if pending else ""
        return Denial(
            "max_open_positions",
            f"{len(held)} positions are open{also}, max_open_positions is {limit}; {pid} would "
            "open another",
        )

    def _take_rate_slot(self, *, refusable: bool = True) -> Denial | None:
        limit = self.config.max_orders_per_minute
        if limit is None:
            return None
        now = self.clock.now_ns()
        with self._lock:
            if self._sent is None:
                self._sent = self._sent_in_the_last_minute()
            while self._sent and self._sent[0] <= now - 60 * NS_PER_S:
                self._sent.popleft()
            if refusable and len(self._sent) >= limit:
                return Denial(
                    "max_orders_per_minute",
                    f"{len(self._sent)} orders sent in the last 60 s; max_orders_per_minute "
                    f"is {limit}",
                )
            self._sent.append(now)
        return None

    def blocked_working_orders(self) -> list[str]:
        """The working orders the risk state no longer allows, in the order they were placed:
        every one when halted; when reducing, those that do not reduce their strategy's position
        (an opening order, and the later exits once earlier ones already cover the position).
        A flatten's closes (`place_exit`) that still fit their position are spared, and count
        first: cancelling them undid every flatten of a halt whose closes did not fill at once,
        each try sent again and cancelled again."""
        state = self.state
        if state == ACTIVE:
            return []
        # The index is in the order the submissions were applied: the journal's, so a replay
        # keeps the same exits.
        working = self.store.get("trading.working", None) or {}
        kept = flatten_closes_that_fit(working, self._held)
        rest = {order_id: order for order_id, order in working.items() if order_id not in kept}
        if state == HALTED:
            return list(rest)
        return orders_not_reducing({i: working[i] for i in kept} | rest, self._held)

    # -- reads of the store -----------------------------------------------------------------
    def _sent_in_the_last_minute(self) -> deque[int]:
        """Send times (market time) of the orders journaled in the minute before the newest."""
        orders = (self.store.get("trading.orders", None) or {}).values()
        times = sorted(o["sent_ts"] for o in orders if o.get("sent_ts") is not None)
        newest = times[-1] if times else 0
        return deque(t for t in times if t > newest - 60 * NS_PER_S)

    def _open_index(self) -> dict[str, Any]:
        return self.store.get("trading.open_positions", None) or {}

    def _held(self, strategy: str, symbol: str) -> int:
        return held_units(self.store, strategy, symbol)

    def _mark(self, symbol: str) -> float | None:
        return (self.store.get(f"market.marks.{symbol}", None) or {}).get("price")

    def _price(self, request: OrderRequest) -> float | None:
        """A limit order at its limit; a market order at the touch it would fill at (the ask to
        buy, the bid to sell, as the mark holds them), else the mark: valued at the mid, a buy
        at the limit filled for half a spread more than it allows."""
        if request.order_type is OrderType.LIMIT:
            return request.limit_price
        mark = self.store.get(f"market.marks.{request.symbol}", None) or {}
        touch = mark.get("ask" if request.side is Side.BUY else "bid")
        return touch if touch else mark.get("price")

    def _book_notional(self) -> float:
        """Open positions at their marks (else their average) plus working orders' remainder."""
        total = 0.0
        positions = self.store.get("trading.positions", None) or {}
        for ids in self._open_index().values():
            for pid in ids:
                pos = positions[pid]
                price = pos.get("mark") or pos["average_price"]
                total += abs(pos["net_quantity"]) * price
        for order in (self.store.get("trading.working", None) or {}).values():
            price = order.get("limit_price") or self._mark(order["symbol"]) or 0.0
            total += (order.get("remaining_quantity") or 0) * price
        for request in self._in_flight_orders():
            total += request.quantity * (self._price(request) or 0.0)
        return total


def _check_operator(by: Any, reason: Any, command: str) -> None:
    for name, value in (("by", by), ("reason", reason)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(
                f"risk {command} needs {name!r} as non-empty text (who asked and why), "
                f"got {value!r}"
            )
