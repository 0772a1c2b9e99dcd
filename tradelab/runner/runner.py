"""`StrategyRunner`: runs strategies on one thread of its own, fed from the engine's bus.

Journaled events arrive from the kernel thread in seq order; transient ticks from the feed
thread; commands (start, pause, resume, stop) from any thread. All go into one inbox
(tradelab.runner.inbox) and are handled on the runner thread in the order they reached it:
journaled events keep their seq order, ticks their feed order; a symbol's tick still waiting
is superseded by its next one (latest quote wins). Inbox bound (`inbox_limit`),
policy when full: a tick is dropped and counted; a journaled event is dropped and counted, and
every strategy is stopped (a strategy is never fed a gap); the kernel never waits on the runner.
A strategy that raises is stopped and reported (`runner.state_changed` state `failed`, its
traceback in the log); the engine and the other strategies keep running. An order refused by
the risk gate or the broker (journaled as order.denied/rejected) that a hook lets through is a
warning only; an `InvalidOrderError` (not whole lots, an unknown symbol) fails the strategy.
Lockstep (`drive` for a backtest's bars, `lockstep` for a max-speed replay's steps): the source
is played on this thread, each step once the previous one has been handled, so the journal's
order does not depend on thread timing.
`threaded=False` (a backtest on an inline-kernel Engine): no thread of its own; each command
(start, drive, stop...) handles the inbox on the caller's thread until it is empty, in the
same order as the thread would.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from tradelab.errors import InvalidInputError, JournalError, LifecycleError
from tradelab.market.clock import WallClock
from tradelab.runner.context import StrategyContext
from tradelab.runner.handling import EventHandlingMixin
from tradelab.runner.hook_watch import HookWatch
from tradelab.runner.inbox import RunnerInbox
from tradelab.runner.lockstep import LockstepMixin
from tradelab.runner.monitor import PositionMonitor
from tradelab.runner.operator_commands import OperatorCommandsMixin
from tradelab.runner.slots import StrategySlot, StrategySlotsMixin
from tradelab.runner.strategy import FAILED, PAUSED, RUNNING, Strategy, check_journalable_params
from tradelab.runner.tradelog import TradeLog

log = logging.getLogger(__name__)

_JOURNALED = ("market.bar", "mark.updated", "trade.executed", "reconciliation.fixed", "order.*")
_STOP = object()


class StrategyRunner(EventHandlingMixin, LockstepMixin, OperatorCommandsMixin, StrategySlotsMixin):
    """`add(strategy)`, `start(who)`, `pause/resume/stop_strategy(name, who)`, `stop(who)`."""

    def __init__(
        self,
        engine: Any,
        desk: Any,
        *,
        clock: Any = None,
        inbox_limit: int = 100_000,
        name: str = "runner",
        threaded: bool = True,
        hook_stall_after_s: float = 5.0,
    ) -> None:
        """`hook_stall_after_s`: a strategy hook running longer is logged as holding the
        runner (hook_watch.py), and shown in `metrics()['stalled_hook']`."""
        if inbox_limit < 1:
            raise InvalidInputError(f"inbox_limit {inbox_limit!r} must be >= 1")
        if not hook_stall_after_s > 0:
            raise InvalidInputError(f"hook_stall_after_s {hook_stall_after_s!r} must be > 0")
        self.engine, self.desk, self.name = engine, desk, name
        self.clock = clock or WallClock()
        self.monitor = PositionMonitor(self)
        # Adopted ends of orders some of whose fills are not booked yet (handling.py): the
        # exit they were is re-armed once those fills are booked. Few (lost reports); bounded.
        self.ends_awaiting_fills: dict[str, tuple[str, Any]] = {}
        self.trade_log = TradeLog(self.submit)
        self.current_seq = 0
        # (seq, strategies) when an inbox overflow last stopped running strategies, else None.
        self.overflow_stopped: tuple[int, list[str]] | None = None
        self._seeded_seq = 0  # the seq the trade log was seeded at (_started)
        self.inputs_check: Callable[[Sequence[Strategy]], None] | None = None  # set by a Lab
        self.current_ts = 0  # exchange time (ns) of the newest event handled that has one
        self._slots: dict[str, StrategySlot] = {}
        self.failed_any = False  # a strategy has failed (slots.py sets it)
        # The bar lengths the session builds (None: not said): ctx.bars refuses another.
        self.bar_intervals: frozenset[str] | None = None
        # The symbols the session quotes (None: not said), and whether it lists new option
        # strikes as it goes (the simulated market): ctx.mark / ctx.bars refuse a symbol it
        # can never quote.
        self.quoted_symbols: frozenset[str] | None = None
        self.lists_new_strikes = False
        self._inbox = RunnerInbox(inbox_limit)
        self._subs: list[Any] = []
        self._thread: threading.Thread | None = None
        self._threaded = threaded
        self._started_once = False
        self._stop_asked = False  # stop() was called: operator commands are refused from then
        self._pumping = False
        # The thread strategies' hooks run on (the runner's, or the one pumping an unthreaded
        # runner): a context used from any other is refused (StrategyContext._on_handler_thread).
        self.handler_ident: int | None = None
        self._refused = ""  # why commands are refused, once stopped
        self._source: tuple[Callable[[int], object], int] | None = None
        self._stepper: tuple[Callable[[], bool], Future] | None = None
        self._settle_mark = 0
        self.source_error: BaseException | None = None
        self.drive_ended_at: int | None = None  # the bar a `drive` stopped before, if it did
        self._progress = threading.Condition()
        self.bars_handled = 0
        self._bar_waiters = 0  # threads in wait_for_bars (under _progress)
        self.events_handled = 0
        self.strategy_seconds = 0.0
        self.stopped_in_time = True  # False: stop's join timed out (a hook still running)
        self.hook_watch = HookWatch(name, hook_stall_after_s)

    # -- wiring ----------------------------------------------------------------------------
    def submit(self, topic: str, payload: dict, *, key: str = "") -> None:
        self.engine.submit(topic, payload, key=key)

    def add(self, strategy: Strategy) -> Strategy:
        """Add a strategy; it starts with the runner (or at once if the runner is running)."""
        if self._refused:
            raise LifecycleError(f"cannot add strategy {strategy.name!r}: {self._refused}")
        if strategy.name in self._slots:
            raise InvalidInputError(f"a strategy named {strategy.name!r} is already in the runner")
        check_journalable_params(strategy.name, strategy.parameters())
        if self.inputs_check is not None:  # a session's: nothing to trade is refused, not idle
            self.inputs_check([strategy])
        slot = StrategySlot(strategy, StrategyContext(self, strategy))
        self._slots[strategy.name] = slot
        self._watch_own_params(slot)
        if self._started_once:
            self._command(lambda: self._start_slot(slot, "runner"))
        return strategy

    @property
    def strategies(self) -> dict[str, Strategy]:
        return {name: slot.strategy for name, slot in self._slots.items()}

    def context_of(self, name: str) -> StrategyContext | None:
        """The context of the strategy called `name` in this runner (None if it has none)."""
        slot = self._slots.get(name)
        return None if slot is None else slot.ctx

    def state_of(self, name: str) -> str:
        return self._slot(name).state

    def failures(self) -> dict[str, str]:
        """The strategies that are failed now, each with why."""
        return {n: s.failure for n, s in self._slots.items() if s.state == FAILED}

    def _slot(self, name: str) -> StrategySlot:
        try:
            return self._slots[name]
        except KeyError:
            raise InvalidInputError(
                f"no strategy named {name!r} in the runner (has {', '.join(self._slots) or '-'})"
            ) from None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, who: str = "system") -> StrategyRunner:
        if self._started_once:
            raise LifecycleError(f"runner {self.name!r} was already started")
        self._started_once = True
        bus = self.engine.bus
        self._subs = [bus.subscribe(p, self._inbox.put_journaled) for p in _JOURNALED]
        self._subs.append(bus.subscribe("market.tick", self._inbox.put_tick))
        if self._threaded:
            self._thread = threading.Thread(
                target=self._run, name=f"{self.name}-thread", daemon=True
            )
            self._thread.start()
            self.hook_watch.start()
        self._command(lambda: self._started(who))
        return self

    def _started(self, who: str) -> None:
        store = self.engine.store
        # One view, at one seq: fills already in the inbox at or below it are in the seed.
        self._seeded_seq, seed = store.frozen()
        # Order ids are <strategy>-<seq>-<n>: from the journal's seq, not 0, so an order placed
        # in on_start after a restart cannot take the id of one placed in the run before.
        self.current_seq = max(self.current_seq, self._seeded_seq)
        self.trade_log.seed(
            seed.get("trading.positions", None) or {},
            seed.get("trading.trades", None) or {},
            seed.get("trading.logged_exits", None) or {},
        )
        self.monitor.restore(store, held_back=self.held_after_restart)
        self.submit(
            "runner.started", {"runner": self.name, "who": who, "strategies": list(self._slots)}
        )
        for slot in list(self._slots.values()):
            self._start_slot(slot, who)

    def stop(self, who: str = "system", timeout: float = 30.0) -> bool:
        """Stop every strategy (`on_stop`), journal `runner.stopped`, end the thread. Ticks still
        waiting are skipped, journaled events handled first. False if the thread did not end
        within `timeout` (a hook still running: `on_stop` may not have been called)."""
        if not self._started_once or (self._threaded and self._thread is None):
            return True
        if self._refused:  # stopped already
            return self.stopped_in_time
        self._stop_asked = True
        self._inbox.skip_ticks = True
        self._command(lambda: self._stopped(who))
        self._refused = f"runner {self.name!r} was stopped; a runner runs once"
        if self._thread is not None:
            self._inbox.put_command(_STOP)
            waited = self._stop_wait(timeout)
            self._thread.join(waited)
            if self._thread.is_alive():
                self.stopped_in_time = False
                log.warning(
                    "runner %s did not stop within %g s: a strategy's hook is still running; "
                    "on_stop may not have been called",
                    self.name,
                    waited,
                )
        for sub in self._subs:
            sub.unsubscribe()
        self._subs = []
        self.hook_watch.stop()
        return self.stopped_in_time

    def _stop_wait(self, timeout: float) -> float:
        """How long the stop waits for the thread: `timeout`, but a hook stalled already (it
        ran past the watch's bound) gets twice that bound, said at once: one in a loop would
        hold a Ctrl-C for the whole timeout with nothing said."""
        stalled = self.hook_watch.stalled()
        if stalled is None:
            return timeout
        grace = min(timeout, max(2 * self.hook_watch.stall_after_s, 1.0))
        log.warning(
            "runner %s stopping: strategy %s's %s has run %.1f s; waiting %g s more for it, "
            "then the session stops without its on_stop",
            self.name,
            stalled["strategy"],
            stalled["hook"],
            stalled["seconds"],
            grace,
        )
        return grace

    @property
    def ticks_dropped(self) -> int:
        return self._inbox.ticks_dropped

    @property
    def ticks_superseded(self) -> int:
        return self._inbox.ticks_superseded

    @property
    def events_dropped(self) -> int:
        return self._inbox.events_dropped

    def _stopped(self, who: str) -> None:
        if not self.stopped_in_time:  # the session ended while a hook ran: said at the stop
            log.info(
                "runner %s: its stop came after the session ended; on_stop not called", self.name
            )
            return
        for slot in list(self._slots.values()):
            self._stop_slot(slot, who)
        self.submit("runner.stopped", {"runner": self.name, "who": who})

    def metrics(self) -> dict[str, Any]:
        return {
            "inbox_depth": self._inbox.qsize(),
            "inbox_limit": self._inbox.limit,
            "events_handled": self.events_handled,
            "bars_handled": self.bars_handled,
            "ticks_dropped": self.ticks_dropped,
            "ticks_superseded": self.ticks_superseded,
            "events_dropped": self.events_dropped,
            "strategy_seconds": self.strategy_seconds,
            "stalled_hook": self.hook_watch.stalled(),
            "hook_stalls": self.hook_watch.stalls,
            "strategies": {name: slot.state for name, slot in self._slots.items()},
        }

    # -- inbox (producers: kernel thread, feed thread, callers) ---------------------------
    def _command(self, action: Callable[[], object]) -> None:
        if not self._started_once:
            raise LifecycleError(f"start() runner {self.name!r} first")
        if self._refused:
            raise LifecycleError(self._refused)
        self._inbox.put_command(action)  # commands are few and come from people: not bounded
        if not self._threaded:
            self._pump()

    # -- the runner thread -----------------------------------------------------------------
    def _run(self) -> None:
        self.handler_ident = threading.get_ident()
        get = self._inbox.get
        while True:
            item = get()
            if item is _STOP:
                return
            if item is not None:  # None: a tick skipped at a stop
                self._dispatch(item)

    def _pump(self) -> None:
        """Unthreaded: handle the inbox on the caller's thread until it is empty (what a
        handler causes lands in it, and is handled by this same loop)."""
        if self._pumping:
            return
        self._pumping = True
        self.handler_ident = threading.get_ident()
        try:
            get = self._inbox.get
            while True:
                try:
                    item = get(False)
                except queue.Empty:
                    return
                if item is not None:
                    self._dispatch(item)
        finally:
            self._pumping = False

    def _dispatch(self, item: Any) -> None:
        try:
            if callable(item):
                item()
            else:
                self._handle(item)
        except Exception as exc:  # the runner's own bookkeeping failed: log it, keep running
            what = f"{item.topic} seq {item.seq}" if hasattr(item, "topic") else "a command"
            if isinstance(exc, JournalError) and getattr(self.engine, "journal_failure", None):
                # The journal's failure is said where it is reported; here one line of what
                # it cut short, not a traceback per command.
                log.warning("runner %s could not finish %s: %s", self.name, what, exc)
            else:
                log.exception("runner %s failed to handle %s: %s", self.name, what, exc)
        if self._inbox.overflowed:
            self._inbox.overflowed = False
            running = [n for n, s in self._slots.items() if s.state in (RUNNING, PAUSED)]
            if running:  # each time: an operator may have started them again since
                self.overflow_stopped = (self.current_seq, running)
                log.error(
                    "runner %s: its inbox overflowed (inbox_limit %d; %d events dropped), so "
                    "%s stopped after seq %d: none is fed a gap. Raise runner.inbox_limit, or "
                    "make the strategies' hooks quicker",
                    self.name, self._inbox.limit, self.events_dropped, ", ".join(running),
                    self.current_seq,
                )  # fmt: skip
            for slot in list(self._slots.values()):
                self._stop_slot(
                    slot,
                    "runner",
                    reason="inbox overflow: events were dropped",
                    cancel_openings=True,
                )
