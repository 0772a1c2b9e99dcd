"""The execution desk: checks orders, sends them to a Broker and turns its callbacks into events.

Every step goes through one `submit(topic, payload, *, key, critical, wait)` callable
(Engine.submit in a session): order.submitted, the broker's order.* lifecycle, a critical
`trade.executed` per fill and a critical `position.closed` when a fill leaves its position flat.
The desk keeps no copy of the book: whether a fill closed a position is read from the store's
record of that trade (`position_after`), risk checks read positions and orders from the store.
Refusals: malformed input -> `order.rejected` + OrderRejectedError; a pre-trade risk check ->
`order.denied` + OrderDeniedError, never sent; a reused client order id -> DuplicateOrderIdError
with nothing journaled (the order that has the id stays as it is); a symbol or id that cannot
name a state path level -> InvalidInputError, nothing journaled or sent.
Thread model: any thread may call. The events one `place_order` causes are submitted from the
caller's thread, in order, and the call returns once they are durable (the last one waits); no
lock is held while submitting, and no caller submits or waits for another caller's events.
The broker sees an order only once its order.submitted is applied (the caller's lane only).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tradelab.broker.base import Broker
from tradelab.errors import (
    DuplicateOrderIdError,
    InvalidInputError,
    InvalidOrderError,
    LifecycleError,
    OrderDeniedError,
    TradelabError,
)
from tradelab.market.instruments import OptionUniverse
from tradelab.state.paths import check_path_level
from tradelab.trading.book import position_id
from tradelab.trading.closes import position_closed_payload, unclosed_positions
from tradelab.trading.desk_payloads import check_update_ids, refused_payload
from tradelab.trading.flatten import cancel_blocked_orders, flatten_book
from tradelab.trading.orders import (
    OrderRequest,
    OrderType,
    OrderUpdate,
    check_price,
    check_quantity,
    check_strategy,
    coerce_order_type,
    coerce_side,
)
from tradelab.trading.risk import RiskGate

Submit = Callable[..., Any]
_Pending = tuple[str, dict, str, bool]  # topic, payload, key, critical

log = logging.getLogger(__name__)


class ExecutionDesk:
    """Places orders with a broker and journals what happens to them."""

    def __init__(
        self,
        broker: Broker,
        submit: Submit,
        *,
        universe: OptionUniverse | None = None,
        store: Any = None,
        bus: Any = None,
        risk: RiskGate | None = None,
    ) -> None:
        # An Engine's (or a test kernel's) bound submit brings its store and bus along.
        owner = getattr(submit, "__self__", None)
        self.store = store if store is not None else getattr(owner, "store", None)
        if self.store is None:
            raise InvalidInputError(
                "ExecutionDesk needs the store its events are applied to: pass store=, or "
                "submit=engine.submit"
            )
        self.broker = broker
        self.universe = universe or OptionUniverse()
        self.risk = risk
        self._submit = submit
        # Engine.wait_applied: the order's submission is applied before the broker sees it.
        self._wait_applied = getattr(owner, "wait_applied", None)
        self._flush = getattr(owner, "flush", None)
        self._local = threading.local()  # the events of the call in progress on this thread
        self._calls = 0  # outermost calls in progress (close() waits for them)
        self._calls_done = threading.Condition(threading.Lock())
        self._closed = ""  # why calls are refused, once closed
        self._ids_lock = threading.Lock()
        # One flatten at a time, cancels to last order: two at once each read the broker's
        # position before the other's closes filled, and together went past it.
        self._flatten_lock = threading.RLock()
        # No lock spans a risk check and the submission it allows: the gate counts the orders
        # it let through until the store has them (two exits checked at once see each other),
        # and a lock held while waiting for the kernel would deadlock a bus handler's order.
        # Ids handed out whose order.submitted may not be in the store yet: two callers racing
        # with one id must not both pass. Dropped once the store has the order.
        self._claimed: set[str] = set()
        self._id_seq, self._id_count = -1, 0  # the desk's own ids: see _claim_new_id
        # Trades submitted from the engine's kernel thread (a bus handler placing an order):
        # not applied when submit returns, so their close is checked when they are published.
        self._close_checks: set[str] = set()
        bus = bus if bus is not None else getattr(owner, "bus", None)
        if bus is not None:
            bus.subscribe("trade.executed", self._on_trade_published, name="desk-close-check")
            for topic in ("order.submitted", "order.denied", "order.rejected"):  # its first
                bus.subscribe(topic, self._on_submitted, name="desk-id-release")
        broker.add_listener(self.on_order_update, self.on_connection)
        if risk is not None:
            risk.add_halt_listener(self.cancel_blocked_orders)

    # -- placing ----------------------------------------------------------------------------
    def place_order(
        self,
        symbol: str,
        side: str,
        quantity: int,
        *,
        order_type: str = "MARKET",
        limit_price: float | None = None,
        strategy: str = "manual",
        order_id: str | None = None,
    ) -> str:
        """Check and send an order; returns its order id once the events it caused so far (the
        submission, and any fill the broker made at once) are durable."""
        return self._place(symbol, side, quantity, order_type, limit_price, strategy, order_id)

    def place_exit(self, symbol: str, side: str, quantity: int, strategy: str) -> str:
        """`place_order` of a market order that may only reduce `strategy`'s position (a
        flatten's): allowed in a halt, denied (`exit_only`) once it would not reduce."""
        return self._place(symbol, side, quantity, "MARKET", None, strategy, None, exit_only=True)

    def _place(
        self, symbol, side, quantity, order_type, limit_price, strategy, order_id, exit_only=False
    ) -> str:
        symbol = check_path_level(symbol, "symbol")
        if order_id is not None:
            order_id = check_path_level(order_id, "order id")
        if order_id is None:
            order_id = self._claim_new_id()
        else:
            self._claim(order_id, ask_broker=True)
        try:
            with self._call():
                try:
                    request = self._checked_request(
                        order_id, symbol, side, quantity, order_type, limit_price, strategy
                    )
                except InvalidInputError as exc:
                    self._emit(
                        "order.rejected",
                        refused_payload(order_id, symbol, side, quantity, strategy, str(exc)),
                        order_id,
                    )
                    raise InvalidOrderError(str(exc)) from exc
                denial = self.risk.check(request, exit_only=exit_only) if self.risk else None
                if denial is not None:
                    payload = request.to_payload()
                    payload.update(reason=denial.reason, check=denial.check)
                    self._emit("order.denied", payload, order_id)
                    raise OrderDeniedError(denial.check, denial.reason)
                try:
                    self._emit("order.submitted", self._submitted(request, exit_only), order_id)
                    self._hand_over()
                except BaseException:  # never submitted: it holds no room in the limits
                    if self.risk is not None:
                        self.risk.settled(order_id)
                    raise
                # Applied (from a bus handler, on the kernel thread, it is not yet: the gate
                # drops it once the store has it): the limits read it from the store now.
                if self.risk is not None and self._has_order(order_id):
                    self.risk.settled(order_id)
                # Acceptance, fills or a rejection come back through on_order_update, on this
                # thread, before submit_order returns; a rejection is re-raised here.
                self.broker.submit_order(request)
        finally:
            self._release(order_id)
        return order_id

    def _has_order(self, order_id: str) -> bool:
        return self.store.get(f"trading.orders.{order_id}", None) is not None

    def _submitted(self, request: OrderRequest, exit_only: bool = False) -> dict[str, Any]:
        """The order.submitted payload: the request, and when it was sent on the session's
        clock (market time), which the risk gate's order rate reads back after a restart; a
        flatten's close says so (`exit_only`): a halt's cancels spare it."""
        payload = request.to_payload()
        if exit_only:
            payload["exit_only"] = True
        if self.risk is not None:
            payload["ts"] = self.risk.clock.now_ns()
        return payload

    def cancel_order(self, order_id: str, reason: str = "cancelled") -> OrderUpdate:
        """Cancel a working order (`reason` in its order.cancelled); returns once the
        cancellation is durable, with the broker's report (its `filled_quantity`: the fills
        made before the cancel, which may still be on their way to subscribers)."""
        with self._call():
            return self.broker.cancel_order(order_id, reason)

    def cancel_blocked_orders(self) -> list[str]:
        """Cancel the working orders the risk state forbids (flatten.py); the ids cancelled."""
        return cancel_blocked_orders(self)

    def flatten(
        self, *, exit_only: bool = True, cancelled: list | None = None, kept: list | None = None
    ) -> list[str]:
        """Cancel every working order (but an earlier flatten's closes that still fit:
        `kept`), then close every open position (flatten.py); returns the ids of the closing
        orders sent. One flatten at a time: a second waits for the first."""
        with self._flatten_lock:
            return flatten_book(self, exit_only=exit_only, cancelled=cancelled, kept=kept)

    def reset_daily_pnl(self, session_date: str) -> None:
        """Start the day's P&L (critical: a restart must not count yesterday into today)."""
        self._send("pnl.session_reset", {"session_date": session_date}, "", True, False)

    def _claim(self, order_id: str, *, ask_broker: bool = False) -> None:
        """Reserve `order_id`, or refuse it if an order has it. A caller's own id is also asked
        of the broker: the book trims old sessions' orders, and the broker refuses an id it
        knows, so journaling it would leave a working order the broker never had."""
        with self._ids_lock:
            if self._in_use(order_id, ask_broker=ask_broker):
                raise DuplicateOrderIdError(
                    f"order id {order_id!r} is already used by another order; choose a new id "
                    "(the existing order is unchanged)"
                )
            self._claimed.add(order_id)

    def _in_use(self, order_id: str, *, ask_broker: bool) -> bool:
        """Whether an order has `order_id`: reserved now, in the book, or (`ask_broker`) at the
        broker. Called holding `_ids_lock`."""
        return (
            order_id in self._claimed
            or self._has_order(order_id)
            or (ask_broker and self._broker_knows(order_id))
        )

    def _claim_new_id(self) -> str:
        """Reserve an id of the desk's own: `O-<seq>-<n>`, the n-th it made while the store was
        at seq, so a replay or backtest places the same ids run after run (the journal's content
        hash covers them). An id used already (the broker kept one a crash took from the
        journal) is passed over for the next."""
        with self._ids_lock:
            seq = self.store.version
            if seq != self._id_seq:
                self._id_seq, self._id_count = seq, 0
            while True:
                self._id_count += 1
                order_id = f"O-{seq}-{self._id_count}"
                if not self._in_use(order_id, ask_broker=True):
                    self._claimed.add(order_id)
                    return order_id

    def _broker_knows(self, order_id: str) -> bool:
        try:
            return self.broker.order(order_id) is not None
        except TradelabError:  # disconnected: its submit refuses the id if it knows it
            return False

    def _release(self, order_id: str) -> None:
        with self._ids_lock:
            if self._has_order(order_id):
                self._claimed.discard(order_id)
            # else: still in flight (submitted from the kernel thread): keep it claimed

    def _checked_request(
        self, order_id, symbol, side, quantity, order_type, limit_price, strategy
    ) -> OrderRequest:
        contract = self.universe.parse(symbol)
        side_ = coerce_side(side)
        type_ = coerce_order_type(order_type)
        strategy = check_strategy(strategy)
        qty = check_quantity(quantity, self.universe.lot_size(contract), symbol)
        if type_ is OrderType.LIMIT:
            if limit_price is None:
                raise InvalidInputError(f"limit order for {symbol} needs a limit price")
            limit_price = check_price(limit_price, "limit price", symbol)
        elif limit_price is not None:
            raise InvalidInputError(
                f"market order for {symbol} carries limit price {limit_price!r}; "
                "use order_type='LIMIT' or drop the price"
            )
        return OrderRequest(order_id, symbol, side_, qty, type_, limit_price, strategy)

    # -- submitting -------------------------------------------------------------------------
    @contextmanager
    def _call(self) -> Iterator[None]:
        """Collect the events this thread causes, then submit them in order, the last one
        waiting until durable (events earlier in this thread's lane are durable with it)."""
        outer = getattr(self._local, "pending", None)
        if outer is not None:  # nested (a listener placing an order): the outer call submits
            yield
            return
        with self._calls_done:
            if self._closed:
                raise LifecycleError(self._closed)
            self._calls += 1
        pending: list[_Pending] = []
        self._local.pending = pending
        self._local.handed_over = False
        try:
            yield
        finally:
            try:
                self._local.pending = None
                for i, (topic, payload, key, critical) in enumerate(pending):
                    self._send(topic, payload, key, critical, wait=i == len(pending) - 1)
                if not pending and self._local.handed_over and self._flush is not None:
                    self._flush()  # the broker reported nothing: the submission is durable
            finally:
                with self._calls_done:
                    self._calls -= 1
                    self._calls_done.notify_all()

    def close(self, timeout: float = 10.0) -> bool:
        """Refuse new calls (LifecycleError), and wait up to `timeout` s for those in progress
        to journal what the broker answered: an order whose submission is journaled would
        otherwise stay working in the book, unknown to the broker, when the engine stops under
        it. Whether they all finished."""
        self.refuse("the session is stopping; the execution desk takes no more orders")
        with self._calls_done:
            return self._calls_done.wait_for(lambda: self._calls == 0, timeout)

    def refuse(self, why: str) -> None:
        """Refuse new calls from now on with a LifecycleError saying `why` (the owner's state:
        stopping, then stopped)."""
        with self._calls_done:
            self._closed = why

    def _hand_over(self) -> None:
        """Submit what this call has collected and wait until the engine applied it, before the
        broker sees the order: a fill another thread reports at once (the feed's next quote)
        is then journaled after the order's submission, never before it."""
        pending = getattr(self._local, "pending", None)
        if not pending:
            return
        collected = list(pending)
        pending.clear()
        for topic, payload, key, critical in collected:
            self._send(topic, payload, key, critical, wait=False)
        self._local.handed_over = True
        if self._wait_applied is not None:
            self._wait_applied()

    def _emit(self, topic: str, payload: dict, key: str, critical: bool = False) -> None:
        pending = getattr(self._local, "pending", None)
        if pending is not None:
            pending.append((topic, payload, key, critical))
        else:
            self._send(topic, payload, key, critical, wait=False)

    def _send(self, topic: str, payload: dict, key: str, critical: bool, wait: bool) -> None:
        event = self._submit(topic, payload, key=key, critical=critical or None, wait=wait)
        if topic != "trade.executed":
            return
        if event is None:  # submitted from the kernel thread: not applied yet
            self._close_checks.add(payload["trade_id"])
        else:
            self._check_close(payload["trade_id"])

    def _check_close(self, trade_id: str) -> None:
        """Journal `position.closed` if the store says this fill left its position flat."""
        closed = position_closed_payload(self.store, trade_id)
        if closed is not None:
            self._send("position.closed", closed, closed["position_id"], True, False)

    def journal_missed_closes(self) -> list[str]:
        """On start: journal each `position.closed` a crash kept from following the fill that
        left its position flat; returns their position ids."""
        missed = unclosed_positions(self.store)
        for closed in missed:
            self._send("position.closed", closed, closed["position_id"], True, False)
        return [closed["position_id"] for closed in missed]

    def _on_submitted(self, event: Any) -> None:
        """The store has the order (sent, denied or rejected): its id needs no claim (one placed
        from the kernel thread kept it until now)."""
        if self._claimed:
            with self._ids_lock:
                self._claimed.discard(event.payload.get("order_id"))

    def _on_trade_published(self, event: Any) -> None:
        trade_id = event.payload.get("trade_id")
        if trade_id in self._close_checks:
            self._close_checks.discard(trade_id)
            self._check_close(trade_id)

    # -- broker callbacks -------------------------------------------------------------------
    def on_order_update(self, update: OrderUpdate) -> None:
        """One broker report -> its order.* event, and a critical trade.executed per fill."""
        check_update_ids(update)  # broker ids become path levels too: refuse before submitting
        self._emit(f"order.{update.status}", update.to_payload(), update.order_id)
        if update.fill is not None:
            if self.store.get(f"trading.trades.{update.fill.trade_id}", None) is not None:
                log.info(
                    "fill %s of order %s is in the book already (the reconciler adopted it): "
                    "its late report books nothing",
                    update.fill.trade_id,
                    update.order_id,
                )
                return
            trade = update.fill.to_payload()
            pid = position_id(update.fill.strategy, update.fill.symbol)
            trade["position_id"] = pid
            self._emit("trade.executed", trade, pid, critical=True)

    def on_connection(self, connected: bool, ts: int) -> None:
        topic = "broker.reconnected" if connected else "broker.disconnected"
        self._emit(topic, {"broker": self.broker.name, "ts_broker": ts}, self.broker.name)
