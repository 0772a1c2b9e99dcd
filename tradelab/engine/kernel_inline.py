"""The kernel without a thread (an engine built with `inline_kernel=True`: a single-threaded
backtest). Each submit calls `process_now` (nothing queued: its item is processed at once,
without the queue) or else `drain`; both do the kernel thread's work on the submitting thread,
one caller at a time. A failure is logged and the next item goes on, as on the kernel
thread; a KeyboardInterrupt (any BaseException not an Exception) is the caller's own: it is
raised to the submitter, whose thread this is, so Ctrl-C ends a backtest instead of dropping a
bar's publishing and going on."""

from __future__ import annotations

import threading
from typing import Any

from tradelab.engine.kernel import Kernel, log


class InlineKernel(Kernel):
    """`Kernel` whose work runs on the submitting thread; `start()` is never called."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._drain_lock = threading.RLock()

    def drain(self) -> None:
        """Inline: process everything queued, on the calling thread. A submit made meanwhile by
        a bus handler (same thread, `ident` set) returns at once: this loop takes its event."""
        with self._drain_lock:
            if self.ident is not None:
                return
            self.ident = threading.get_ident()
            try:
                self._drain_queued()
            finally:
                self.ident = None

    def process_now(self, item: tuple, *, internal: bool = False) -> bool:
        """Inline: process `item` at once, as a batch of its own, then whatever handlers queued
        meanwhile, when nothing is queued ahead of it and no drain is under way; the queue's
        put and take are skipped (a backtest's one event a bar). False, with nothing done,
        when it must be queued instead (a submit from a bus handler during a drain, or items
        already waiting): `put` it and `drain`."""
        if self.ident is not None or len(self.queue):  # checked again under the lock
            return False
        with self._drain_lock:
            if self.ident is not None or not self.queue.pass_by(internal=internal):
                return False
            self.ident = threading.get_ident()
            try:
                try:
                    self._process_one(item)
                except Exception:
                    log.exception("engine kernel failed to process a batch")
                self._drain_queued()
            finally:
                self.ident = None
            return True

    def _drain_queued(self) -> None:
        while len(self.queue):
            batch = self.queue.take(self.batch_size)
            try:
                self._process(batch)
            except Exception:  # Ctrl-C goes to the submitter: see the module docstring
                log.exception("engine kernel failed to process a batch")

    def _process_one(self, item: tuple, deferred: list | None = None) -> None:
        try:
            super()._process_one(item, deferred)
        finally:
            self._maybe_snapshot()
