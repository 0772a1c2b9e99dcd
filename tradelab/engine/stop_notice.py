"""A line every few seconds while `Engine.stop()` waits, saying for what and what the journal
writer process is doing. A stop waiting on a writer that a signal stopped (SIGSTOP, a shell's
Ctrl-Z of its process group) or that is stuck on the disk otherwise waits in silence for
minutes, and the user cannot tell a hang from a slow checkpoint."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from tradelab.journal.writer_watch import process_state

log = logging.getLogger("tradelab.engine")

#: Seconds between two lines of a stop that waits.
NOTICE_EVERY_SECONDS = 5.0


class StopNotice:
    """Context manager: while open, logs a warning every `every` seconds naming `step` (set it
    as the stop moves on) and the writer process's state; silent when the stop is quick."""

    def __init__(
        self,
        writer_pid: int | None,
        every: float | None = None,
        queued: Callable[[], int] | None = None,
    ) -> None:
        """`queued`: how many events still wait for the kernel (a slow bus handler holds the
        kernel: the stop then waits on it, not on the writer)."""
        self.step = "the engine to stop"
        self._writer_pid = writer_pid
        self._queued = queued
        self._every = NOTICE_EVERY_SECONDS if every is None else every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engine-stop-notice", daemon=True)

    def __enter__(self) -> StopNotice:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self._every):
            writer = (
                f"; the journal writer (pid {self._writer_pid}) is "
                f"{process_state(self._writer_pid)}"
                if self._writer_pid is not None
                else ""
            )
            queued = self._queued() if self._queued is not None else 0
            behind = (
                f"; {queued} events still wait for the kernel (a slow bus handler holds it)"
                if queued
                else ""
            )
            log.warning(
                "stopping: waited %.0f s for %s%s%s",
                time.monotonic() - self._started,
                self.step,
                behind,
                writer,
            )
