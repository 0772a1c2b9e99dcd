"""A strategy hook that does not return: said while it lasts, not only at the stop.

Every strategy of a runner, and its position monitor (stop losses, targets, trailing stops),
runs on the runner's one thread, in seq order: a hook stuck in a loop or a blocking call holds
them all. Nothing can take the thread back from Python code, so the watch makes it visible: the
runner notes the hook it is in (`enter`/`leave`: an attribute swap, on every hook call), and a
watch thread, polling once a second, logs a warning once a hook has run `stall_after_s`, and
again each time that doubles; `leave` says when one that ran that long returns (also one the
poll missed); `stalled()` is what the console and the `tradelab run` progress line show
meanwhile.

Thread model: `enter`/`leave` on the runner's thread; the watch thread reads what they wrote (a
tuple replaced whole, so it reads one or the other); `stalled()` from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("tradelab.runner.runner")


class HookWatch:
    def __init__(self, runner_name: str, stall_after_s: float = 5.0) -> None:
        self.runner_name = runner_name
        self.stall_after_s = stall_after_s
        self.stalls = 0  # hooks that ran past stall_after_s: a metric
        self._current: tuple[float, str, str] | None = None  # (monotonic start, strategy, hook)
        self._told: tuple[tuple[float, str, str], float] | None = None  # the call, next warning
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def enter(self, strategy: str, hook: str, started: float) -> Any:
        """Note the hook the runner is in (`started`: its perf_counter); returns what `leave`
        puts back (a hook's order may run another hook's handling before it returns)."""
        outer, self._current = self._current, (started, strategy, hook)
        return outer

    def leave(self, outer: Any, seconds: float) -> None:
        """Back from the hook `enter` noted, after `seconds`; `outer` is what it returned."""
        call, self._current = self._current, outer
        if seconds < self.stall_after_s or call is None:
            return
        told, self._told = self._told, None
        if told is None or told[0] is not call:
            self.stalls += 1  # returned before the watch's poll saw it
        after = (
            f"runner {self.runner_name} had stopped meanwhile (the session ended without it)"
            if self._stop.is_set()
            else f"runner {self.runner_name} goes on"
        )
        log.warning(
            "strategy %s's %s returned after %.1f s (over %g s); %s",
            call[1],
            call[2],
            seconds,
            self.stall_after_s,
            after,
        )

    def stalled(self) -> dict[str, Any] | None:
        """The hook running longer than `stall_after_s` now: strategy, hook and seconds."""
        current = self._current
        if current is None:
            return None
        seconds = time.perf_counter() - current[0]
        if seconds < self.stall_after_s:
            return None
        return {"strategy": current[1], "hook": current[2], "seconds": round(seconds, 1)}

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"{self.runner_name}-hook-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.stall_after_s)):
            self.check()

    def check(self) -> None:
        """Warn about a hook past its time: once, then each time its time doubles."""
        current, told = self._current, self._told
        if told is not None and told[0] is not current:
            told = None  # that call returned (leave said so)
        if current is None:
            return
        seconds = time.perf_counter() - current[0]
        due = told[1] if told is not None else self.stall_after_s
        if seconds < due:
            return
        if told is None:
            self.stalls += 1
        self._told = (current, 2 * seconds)
        log.warning(
            "strategy %s has been in %s for %.0f s: every strategy of runner %s and the exits "
            "it watches (stop loss, target, trailing stop) wait until it returns",
            current[1],
            current[2],
            seconds,
            self.runner_name,
        )
