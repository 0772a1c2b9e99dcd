"""Is the journal writer process still answering? A writer that stops (a SIGSTOP, a disk or
network file system that hangs) otherwise holds the engine silently: the pipe fills, the
kernel blocks on it, the submit queue fills, producers get OverloadError, and a stop waits for
a snapshot that never comes. Watched from the acknowledgement thread, which already reads
every frame the process sends.

Thread model: `heard`, `stalled_for` and `failure` are called on that one thread.
"""

from __future__ import annotations

import time
from pathlib import Path

from tradelab.errors import JournalError

# /proc/<pid>/stat's state letter, as a user reads it.
_PROCESS_STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "waiting on the disk",
    "T": "stopped by a signal (`kill -CONT {pid}` lets it go on)",
    "t": "stopped by a debugger",
    "Z": "exited, not yet reaped",
}


def process_state(pid: int | None, *, hint: bool = True) -> str:
    """What process `pid` is doing, in words; "gone" or "unknown" where /proc cannot say.
    `hint`: how a stopped one goes on."""
    if pid is None:
        return "unknown"
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    letter = stat.rsplit(")", 1)[-1].split()[0]  # the name in (...) may hold spaces
    said = _PROCESS_STATES.get(letter, letter).format(pid=pid)
    return said if hint else said.split(" (")[0]


class WriterWatch:
    """Seconds the writer has owed an answer without sending any frame.

    The writer owes one while events sent to it are not yet committed or a request (flush,
    snapshot, seal) is open. Commits of a busy writer come every few milliseconds, a checkpoint
    or a large snapshot takes seconds, so a silence of `stall_seconds` (30 by default) with work
    outstanding is a writer that will not answer."""

    def __init__(self, pid: int, stall_seconds: float, clock=time.monotonic) -> None:
        self.pid = pid
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._last_heard = clock()

    def heard(self) -> None:
        """A frame arrived."""
        self._last_heard = self._clock()

    def stalled_for(self, owes_answer: bool) -> float | None:
        """The seconds of silence when they reach `stall_seconds` with an answer owed; else None
        (an idle writer owes nothing: its silence starts counting when work is sent)."""
        now = self._clock()
        if not owes_answer or not self.stall_seconds:
            self._last_heard = now
            return None
        silent = now - self._last_heard
        return silent if silent >= self.stall_seconds else None

    def failure(self, owes_answer: bool) -> JournalError | None:
        """The error a stalled writer is failed with (see `stalled_for`), or None."""
        silent = self.stalled_for(owes_answer)
        if silent is None:
            return None
        return JournalError(
            f"the journal writer process (pid {self.pid}) has not answered for {silent:.0f} s "
            f"(it was {process_state(self.pid, hint=False)}), so it was killed"
        )
