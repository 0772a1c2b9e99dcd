"""Lockstep sources for a `StrategyRunner`: `drive` (a backtest's bars) and `lockstep` (a
max-speed replay's steps), played on the runner's thread, each step once the previous one has
been handled, so the journal's order does not depend on thread timing.

A mixin of `StrategyRunner` (its state: `engine`, `_inbox`, `_command`, `_progress`, `_thread`,
`_threaded`, `bars_handled`, `_bar_waiters`, `_source`, `_stepper`, `_settle_mark`, `source_error`,
`drive_ended_at`).
Thread model: `drive`/`lockstep` from any thread; the steps run on the runner's thread (the
caller's when the runner is unthreaded); `wait_for_bars` blocks its caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future

from tradelab.errors import LifecycleError


class LockstepMixin:
    def drive(self, play: Callable[[int], object], count: int) -> None:
        """Backtest lockstep: call `play(i)` on the runner thread for i = 0..count-1, each one
        once bar i-1 is handled (its strategies' reactions submitted). `play(i)` submits bar i
        (and what goes with it), or returns False to end the drive there (`drive_ended_at` = i:
        bars 0..i-1 were played). Every submit of the run then comes from this one thread, so
        the journal's order does not depend on thread timing."""
        self._source = (play, count)
        self.drive_ended_at = None
        try:
            self._command(lambda: self._play(0))  # unthreaded: every bar is played in here
        except BaseException:
            self.end_drive()  # Ctrl-C: a bar still in the inbox must not play the next one
            raise

    def end_drive(self) -> None:
        """Play no more of the `drive`'s bars: the bar being handled starts no next one (a
        Ctrl-C; stop() then handles what is in the inbox without playing on)."""
        self._source = None

    def lockstep(self, step: Callable[[], bool]) -> Future:
        """Max-speed replay in lockstep: call `step()` on the runner thread again and again until
        it returns False, each call once the previous one has settled: every event it submitted
        (and the ticks it published) handled here, and so on for what the strategies submitted
        in reaction, until the engine has nothing new. Every event of the run is then
        submitted from this thread in an order thread timing cannot change. Returns a Future
        resolved when `step` returns False (or with what it raised); waits for nothing itself."""
        done: Future = Future()
        self._stepper = (step, done)
        self._command(self._settle)
        return done

    def _settle(self) -> None:
        # Runner thread. The barrier's callback runs on the kernel thread once everything
        # submitted so far is published, i.e. queued in this inbox ahead of the check.
        self._settle_mark = self.engine.when_applied(
            lambda _seq: self._inbox.put_command(self._settled)
        )

    def _settled(self) -> None:
        if self._stepper is None:
            return
        if self.engine.submitted_count != self._settle_mark:
            self._settle()  # more was submitted meanwhile (reactions): wait for that too
            return
        step, done = self._stepper
        try:
            more = step()
        except BaseException as exc:
            self._stepper = None
            done.set_exception(exc)
            return
        if more:
            self._settle()
        else:
            self._stepper = None
            done.set_result(None)

    def _play(self, index: int) -> None:
        try:
            more = self._source[0](index)
        except BaseException as exc:
            self.source_error = exc
            with self._progress:
                self._progress.notify_all()
            raise
        if more is False:
            self._source = None
            with self._progress:
                self.drive_ended_at = index
                self._progress.notify_all()

    def _bars_due(self, count: int) -> int:
        # Under _progress: the drive may end early (on the runner thread) while a caller waits.
        ended = self.drive_ended_at
        return count if ended is None else min(count, ended)

    def wait_for_bars(self, count: int, timeout: float = 30.0) -> None:
        """Block until the runner has handled `count` bars in all (a backtest's lockstep), or
        every bar played before the drive ended early (`play` returned False). Unthreaded,
        `drive` has returned when the bars stopped being played: nothing is left to wait for.
        Interrupted (Ctrl-C while waiting), the runner plays no more bars."""
        deadline = time.monotonic() + timeout
        with self._progress:
            self._bar_waiters += 1
            try:
                while self.bars_handled < self._bars_due(count):
                    if self.source_error is not None:
                        raise self.source_error
                    left = deadline - time.monotonic()
                    alive = self._threaded and self._thread is not None and self._thread.is_alive()
                    if left <= 0 or not alive:
                        raise LifecycleError(
                            f"runner {self.name!r} handled {self.bars_handled} bars, not "
                            f"{count}"
                            + (f", within {timeout} s" if alive else "; its bars stopped playing")
                        )
                    self._progress.wait(left)
            except BaseException:
                self.end_drive()
                raise
            finally:
                self._bar_waiters -= 1
