"""A strategy's life in a `StrategyRunner`: started (its positions, working orders and signals
seeded from the store, an operator's hold from before a restart kept), its hooks called with
their failures isolated, stopped, and every change of state journaled
(`runner.state_changed`, with who asked and why).

A strategy stopped during a session (by an operator, or because it failed) has its working
orders that would open or add to a position cancelled; its exits stay working. Left working,
such an order could fill after the stop into a position nobody manages: the strategy never sees
that fill, so it never arms the stop loss it would have set on it.

A mixin of `StrategyRunner` (its state: `engine`, `desk`, `submit`, `inputs_check`, `name`,
`strategy_seconds`, `_stop_asked`, `hook_watch`). Thread model: the runner's thread only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from functools import partial
from typing import Any

from tradelab.errors import InvalidOrderError, OrderRejectedError, TradelabError
from tradelab.runner.context import StrategyContext
from tradelab.runner.strategy import FAILED, PAUSED, RUNNING, STOPPED, Strategy
from tradelab.runner.strategy_state import restored_params
from tradelab.trading.holdings import held_units, orders_not_reducing

log = logging.getLogger("tradelab.runner.runner")  # the runner's log, as before the split
MAIN_THREAD = threading.main_thread()


PAUSED_FILLS_KEPT = 1_000


class StrategySlot:
    __slots__ = (
        "strategy",
        "ctx",
        "state",
        "failure",
        "paused_fills",
        "paused_fills_dropped",
        "params_by_command",
        "params_watcher",
        "hook",
        "self_hold",
    )

    def __init__(self, strategy: Strategy, ctx: StrategyContext) -> None:
        self.strategy, self.ctx, self.state = strategy, ctx, "added"
        self.params_by_command = False  # an operator's change is being applied (journaled)
        self.params_watcher: Any = None  # the runner's (operator_commands._watch_own_params)
        self.failure = ""  # why it last failed: "<hook> raised <type>: <message>"
        # Its fills while paused, for on_fill when it resumes (a stop it arms there, a signal
        # it clears). Bound PAUSED_FILLS_KEPT; when full the oldest goes, counted and logged.
        self.paused_fills: deque[Any] = deque(maxlen=PAUSED_FILLS_KEPT)
        self.paused_fills_dropped = 0
        self.hook = ""  # the hook running now, if any
        # (PAUSED or STOPPED, reason): the strategy's own ctx.pause / ctx.stop in the hook
        # running, carried out as it returns (StrategySlotsMixin._call).
        self.self_hold: tuple[str, str] | None = None

    def hold_fill(self, fill: Any) -> None:
        if len(self.paused_fills) == PAUSED_FILLS_KEPT:
            self.paused_fills_dropped += 1
        self.paused_fills.append(fill)


class StrategySlotsMixin:
    def _call(self, slot: StrategySlot, hook: str, *args: Any) -> bool:
        started = time.perf_counter()
        watch = self.hook_watch
        outer = watch.enter(slot.strategy.name, hook, started)
        outer_hook, slot.hook = slot.hook, hook
        refused = False
        try:
            getattr(slot.strategy, hook)(slot.ctx, *args)
        except BaseException as exc:  # SystemExit too: it must not end the runner's thread
            if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is MAIN_THREAD:
                raise  # Ctrl-C stops a backtest on the caller's thread, not one strategy
            if isinstance(exc, OrderRejectedError) and not isinstance(exc, InvalidOrderError):
                # A halt, a margin call, a broker down: the market's answer, journaled already
                # (order.denied / order.rejected). Stopping here would leave the strategy's
                # positions with nobody to manage them; an order malformed is its own bug.
                log.warning(
                    "strategy %s: an order in %s was refused: %s", slot.strategy.name, hook, exc
                )
                refused = True
            else:
                self._fail(slot, hook, exc)
                return False
        finally:
            slot.hook = outer_hook
            seconds = time.perf_counter() - started
            watch.leave(outer, seconds)
            self.strategy_seconds += seconds
        if slot.self_hold is not None and not slot.hook:
            self._hold_itself(slot)
        return not refused

    def _fail(self, slot: StrategySlot, hook: str, exc: BaseException) -> None:
        slot.self_hold = None  # a failed strategy holds nothing of its own
        slot.failure = f"{hook} raised {type(exc).__name__}: {exc}"
        # The why on the log line itself: the traceback is shown only at debug level.
        log.exception("strategy %s %s; it is stopped", slot.strategy.name, slot.failure)
        self._transition(slot, FAILED, "runner", None, reason=slot.failure)
        slot.ctx.signals.clear_all(slot.ctx._market_ts())
        if not self._stop_asked:  # the session goes on without it
            self._cancel_openings(slot)

    def _hold_itself(self, slot: StrategySlot) -> None:
        """The strategy's own ctx.pause / ctx.stop, as its hook returns: before the next event
        (a bar of another symbol already waiting must not reach it), as an operator's would be."""
        (state, reason), slot.self_hold = slot.self_hold, None
        name = slot.strategy.name
        if state == PAUSED:
            self._transition(slot, PAUSED, name, (RUNNING,), reason=reason, hold=True)
        else:
            self._stop_slot(slot, name, reason, hold=True, cancel_openings=not self._stop_asked)

    def _start_slot(self, slot: StrategySlot, who: str) -> None:
        if slot.state != "added":
            return
        slot.ctx._seed_positions()
        slot.ctx.signals.seed(self.engine.store)
        saved = self.engine.store.get(f"runner.by_strategy.{slot.strategy.name}", None) or {}
        restored_params(slot.strategy, saved.get("operator_params"), self.inputs_check)
        held = saved.get("held")
        if held and held["state"] == STOPPED:  # an operator stopped it before this restart
            why = f"stopped by {held['who']} before the restart; start it to trade"
            self._transition(slot, STOPPED, who, None, reason=why)
            return
        self._transition(slot, RUNNING, who, None)
        self._call(slot, "on_start")
        if held and held["state"] == PAUSED and slot.state == RUNNING:
            why = f"paused by {held['who']} before the restart; resume it to trade"
            self._transition(slot, PAUSED, who, (RUNNING,), reason=why)

    def _stop_slot(
        self,
        slot: StrategySlot,
        who: str,
        reason: str = "",
        hold: bool | None = None,
        cancel_openings: bool = False,
    ) -> None:
        """`cancel_openings`: the session goes on (see the module docstring); a session's
        own end leaves its working orders to the broker, and to the restart."""
        if slot.state not in (RUNNING, PAUSED):
            return
        slot.paused_fills.clear()  # a stopped strategy starts afresh: no old fills later
        self._call(slot, "on_stop")
        if slot.state != FAILED:
            self._transition(slot, STOPPED, who, None, reason=reason, hold=hold)
            if cancel_openings:
                self._cancel_openings(slot)

    def _cancel_openings(self, slot: StrategySlot) -> list[str]:
        """Cancel `slot`'s working orders that do not reduce its position, each journaled;
        a cancel the broker refuses (the order finished meanwhile) is logged."""
        name, store = slot.strategy.name, self.engine.store
        working = {
            order_id: order
            for order_id, order in (store.get("trading.working", None) or {}).items()
            if order.get("strategy") == name
        }
        if not working:
            return []
        cancelled = []
        for order_id in orders_not_reducing(working, partial(held_units, store)):
            try:
                self.desk.cancel_order(order_id)
                cancelled.append(order_id)
            except TradelabError as exc:
                log.warning(
                    "strategy %s stopped; its order %s not cancelled: %s", name, order_id, exc
                )
        if cancelled:
            log.info(
                "strategy %s stopped: its working order(s) %s cancelled (they would have opened "
                "positions it no longer manages)",
                name,
                ", ".join(cancelled),
            )
        return cancelled

    def _transition(
        self,
        slot: StrategySlot,
        new: str,
        who: str,
        allowed_from: tuple[str, ...] | None,
        reason: str = "",
        hold: bool | None = None,
    ) -> None:
        """`hold`: an operator's stop or pause that outlives a restart (True), or lifting one
        (False); the session's own stops and failures leave it as it is (None)."""
        previous = slot.state
        if allowed_from is not None and previous not in allowed_from:
            name = slot.strategy.name
            log.warning("strategy %s is %s; cannot go %s (asked by %s)", name, previous, new, who)
            return
        slot.state = new
        if new == FAILED:
            self.failed_any = True  # read every bar by a backtest: no scan of the slots
        body = {
            "runner": self.name,
            "strategy": slot.strategy.name,
            "state": new,
            "previous": previous,
            "who": who,
            "reason": reason,
        }
        if new == RUNNING and previous in ("added", STOPPED, FAILED):
            body["params"] = slot.strategy.parameters()
        if hold is not None:
            body["hold"] = hold
        self.submit("runner.state_changed", body, key=slot.strategy.name)
