"""What the engine and the journal know of a journal writer, whichever layout runs it.

`JournalWriter` is the protocol both layouts implement: `ThreadJournalWriter` (writer_thread.py,
a thread of this process) and `ProcessJournalWriter` (writer_client.py, the engine's handle on
the writer process, whose main is writer_process.py). Also here: the `Ticket` a blocking
submitter waits on and the callback types. Thread model: see each implementation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal, Protocol

from tradelab.errors import JournalError
from tradelab.events import Event
from tradelab.journal.snapshots import SnapshotInfo

log = logging.getLogger(__name__)


class Ticket:
    """What a blocking submitter waits on: released once the commit holding its event returned.

    A bare lock rather than a threading.Event: resolving and waiting are single C calls, and
    the writer resolves one per critical event.
    """

    __slots__ = ("event", "error", "sync", "_done")

    def __init__(self) -> None:
        self.event: Event | None = None
        self.error: BaseException | None = None
        # Set when released before its event is synced: the waiter syncs it (through its seq)
        # on its own thread, so no other thread wakes for it (critical_acks.py).
        self.sync: Callable[[int], None] | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def resolve(self, error: BaseException | None = None) -> None:
        self.error = error
        try:  # noqa: SIM105 (a try is free; contextlib.suppress is a call per ticket)
            self._done.release()
        except RuntimeError:  # resolved before: already released
            pass

    def wait(self, timeout: float | None = None) -> Event:
        if not self._done.acquire(timeout=-1 if timeout is None else timeout):
            raise JournalError(f"event was not durable within {timeout} s")
        self._done.release()  # leave it released: a second wait returns at once as well
        assert self.event is not None or self.error is not None
        if self.error is None and self.sync is not None:
            try:
                self.sync(self.event.seq)  # type: ignore[union-attr]
            except JournalError as exc:
                self.error = exc
            self.sync = None
        if self.error is not None:
            raise self.error
        assert self.event is not None
        return self.event


# Called on the writer thread with (first_seq, last_seq) of each committed group.
GroupCallback = Callable[[int, int], None]
# Called on the writer thread with the stored snapshot's info, or with the error that stopped it.
SnapshotCallback = Callable[[SnapshotInfo | BaseException], None]
# Called once, on the writer thread, with the error that stopped the writer.
FailureCallback = Callable[[BaseException], None]


class JournalWriter(Protocol):
    """A started journal writer: events in, durable seqs and snapshot notices out."""

    failed: BaseException | None
    groups_committed: int
    events_committed: int

    @property
    def durable_seq(self) -> int: ...

    @property
    def location(self) -> Literal["thread", "process"]:
        """Where it runs: a thread of this process, or a process of its own."""
        ...

    @property
    def pid(self) -> int:
        """The id of the process that holds the journal file."""
        ...

    def describe(self) -> dict[str, Any]:
        """{"writer": location, "writer_pid": pid}, for metrics."""
        ...

    @property
    def segments_failure(self) -> str | None:
        """Why the segment sealer stopped for good (the journal goes on), or None."""
        ...

    def pending_metrics(self) -> dict[str, Any]:
        """The bound on events queued for DuckDB (`writer_max_pending_events`), the most ever
        queued (`writer_pending_high_water`), and how often and how long the feeding thread
        waited for room (`writer_backpressure_waits`, `writer_backpressure_seconds`)."""
        ...

    def latency_metrics(self) -> dict[str, Any]:
        """`journal_commit_latency` and `journal_critical_ack_latency` (latency.py): p50/p99/max
        ms over the latest batches, counts and bounds; `journal_latency_unsampled_batches`."""
        ...

    def append(
        self,
        events: list[Event],
        payloads: list[bytes],
        tickets: list[Ticket] | None = None,
        *,
        urgent: bool = False,
    ) -> None: ...

    def write_snapshot(self, snapshot: Any, on_written: SnapshotCallback | None = None) -> None: ...

    def flush(self, timeout: float | None = None) -> int: ...

    def seal_segments(self, timeout: float | None = 60.0) -> int: ...

    def stop(self) -> None: ...


def notify_snapshot(
    on_written: SnapshotCallback | None, info: SnapshotInfo | BaseException
) -> None:
    if on_written is not None:
        try:
            on_written(info)
        except Exception:  # a failing listener must not stop the journal
            log.exception("snapshot listener failed")
