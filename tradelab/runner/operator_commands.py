"""Operator commands of a `StrategyRunner`: pause, resume, stop or start one strategy again, and
change its parameters; each is carried out on the runner's thread between two callbacks and
journaled with who asked.

A mixin of `StrategyRunner` (its state: `_slot`, `_command`, `_transition`, `_stop_slot`,
`_call`, `_threaded`, `_thread`, `_started_once`, `_stop_asked`, `submit`, `inputs_check`,
`name`). Thread model: the public
methods from any thread; the `_` methods on the runner's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

from tradelab.errors import LifecycleError
from tradelab.runner.strategy import (
    FAILED,
    PAUSED,
    RUNNING,
    STOPPED,
    check_journalable_params,
    checked_params,
)

log = logging.getLogger("tradelab.runner.runner")  # the runner's log


class OperatorCommandsMixin:
    def pause(self, name: str, who: str = "operator") -> None:
        slot = self._slot(name)
        self._check_running("pause", name)
        self._command(lambda: self._transition(slot, PAUSED, who, (RUNNING,), hold=True))

    def resume(self, name: str, who: str = "operator") -> None:
        """Resume a paused strategy; its fills made while paused reach `on_fill` first."""
        slot = self._slot(name)
        self._check_running("resume", name)
        self._command(lambda: self._resume_slot(slot, who))

    def _resume_slot(self, slot: Any, who: str) -> None:
        self._transition(slot, RUNNING, who, (PAUSED,), hold=False)
        if slot.state != RUNNING:
            return
        if slot.paused_fills_dropped:
            log.warning(
                "strategy %s resumed: %d of its fills while paused are not replayed to on_fill "
                "(the oldest; %d are); its positions count every one",
                slot.strategy.name,
                slot.paused_fills_dropped,
                len(slot.paused_fills),
            )
        fills, slot.paused_fills_dropped = list(slot.paused_fills), 0
        slot.paused_fills.clear()
        for i, fill in enumerate(fills):
            if slot.state != RUNNING:
                if slot.state == PAUSED:  # it paused itself in on_fill: the rest wait again
                    slot.paused_fills.extend(fills[i:])
                return
            self._call(slot, "on_fill", MappingProxyType(fill))

    def stop_strategy(self, name: str, who: str = "operator") -> None:
        slot = self._slot(name)
        self._check_running("stop", name)
        self._command(lambda: self._stop_slot(slot, who, hold=True, cancel_openings=True))

    def start_strategy(self, name: str, who: str = "operator") -> None:
        """Start a stopped or failed strategy again (`on_start`), journaled like every other
        transition: `runner.state_changed` running, with its previous state and who asked."""
        slot = self._slot(name)
        self._check_running("start", name)
        self._command(lambda: self._restart_slot(slot, who))

    def _check_running(self, what: str, name: str) -> None:
        """Refused, not queued: once the runner is stopped nothing reads its inbox, so the
        command would never be carried out (and set_params would look applied)."""
        if not self._started_once:
            return  # `_command` says to start() the runner first
        gone = self._threaded and (self._thread is None or not self._thread.is_alive())
        if self._stop_asked or gone:
            raise LifecycleError(
                f"runner {self.name!r} is not running: cannot {what} {name!r}; pause, resume, "
                "stop_strategy, start_strategy and set_params need a running runner"
            )

    def _restart_slot(self, slot: Any, who: str) -> None:
        previous = slot.state
        self._transition(slot, RUNNING, who, (STOPPED, FAILED), reason="started again", hold=False)
        if slot.state == RUNNING and previous != RUNNING:
            self._call(slot, "on_start")

    def set_params(
        self, name: str, params: Mapping[str, Any], who: str = "operator"
    ) -> dict[str, Any]:
        """Change a strategy's parameters between two of its callbacks (on the runner thread)
        and journal `runner.params_changed` with who asked. Checked here first: a bad name or
        value raises InvalidInputError and nothing changes. Returns the checked values."""
        slot = self._slot(name)
        self._check_running("change the parameters of", name)
        values = checked_params(slot.strategy, params, self.inputs_check)
        check_journalable_params(name, values)
        self._command(lambda: self._set_params(slot, values, who))
        return values

    def _set_params(self, slot: Any, values: dict[str, Any], who: str) -> None:
        strategy = slot.strategy
        previous = {k: getattr(strategy, k) for k in values}
        slot.params_by_command = True  # journaled here, not by _own_params_changed
        try:
            strategy.param.update(**values)
        finally:
            slot.params_by_command = False
        self._journal_params(strategy.name, values, previous, who)

    def _journal_params(self, name: str, values: dict, previous: dict, who: str) -> None:
        self.submit(
            "runner.params_changed",
            {
                "runner": self.name,
                "strategy": name,
                "params": values,
                "previous": previous,
                "who": who,
            },
            key=name,
        )

    def _watch_own_params(self, slot: Any) -> None:
        """A strategy that sets its own parameters (`self.size = 5` in a hook) is journaled as
        an operator's change is, `who` the strategy: it went unrecorded, so the store and the
        console showed the old value and a restart brought it back."""
        names = list(slot.strategy.parameters())
        if names:
            watch = partial(self._own_params_changed, slot)
            slot.params_watcher = slot.strategy.param.watch(watch, names)

    def params_watchers(self) -> list[Any]:
        """The runner's own watchers on its strategies (the console counts the others)."""
        return [s.params_watcher for s in self._slots.values() if s.params_watcher is not None]

    def _own_params_changed(self, slot: Any, *events: Any) -> None:
        if slot.params_by_command or slot.state not in (RUNNING, PAUSED):
            return  # set_params journals its own; a start's event carries the values it had
        values = {event.name: event.new for event in events}
        check_journalable_params(slot.strategy.name, values)  # raises in the hook, naming it
        previous = {event.name: event.old for event in events}
        self._journal_params(slot.strategy.name, values, previous, slot.strategy.name)
