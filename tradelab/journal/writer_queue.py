"""The bounded work between a journal writer's feeding thread and its writer thread.

`PendingWork` holds, in seq order, the event chunks queued for the next group commit, the
tickets released by that commit and the snapshot jobs, and decides when a group is due: at
once for urgent work (a critical event, a flush, a stop, a snapshot), else after the
group-commit window or once the group is large. Policy when full (`max_pending` events): the
feeding thread waits until the writer thread takes the work; nothing queued is dropped.

Thread model: one feeding thread `put`s (the kernel, or the writer process's frame reader), the
writer thread `take`s; both under the one condition's lock.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tradelab.errors import JournalError
from tradelab.journal.wire import EncodedBatch, EventChunk
from tradelab.journal.writer import SnapshotCallback, Ticket


class PendingWork:
    """Event chunks, tickets and snapshot jobs waiting for the writer thread (bounded)."""

    def __init__(
        self,
        *,
        last_seq: int,
        window_seconds: float,
        max_group: int,
        max_pending: int,
        idle_seconds: float,
    ) -> None:
        if max_pending < 1:
            raise JournalError(f"max_pending_events {max_pending} is not 1 or more")
        self.max_pending = max_pending
        self._window = window_seconds
        self._max_group = max_group
        self._idle = idle_seconds or 1.0
        lock = threading.RLock()
        self.cond = threading.Condition(lock)
        self._room = threading.Condition(lock)  # notified when the writer thread takes work
        # Chunks in seq order: (events, payload bytes) from this process's kernel, or
        # EncodedBatches (an engine in another process); rows are built on the writer thread.
        self._chunks: list[EventChunk | EncodedBatch] = []
        self._events = 0
        self._tickets: list[Ticket] = []
        self._since = 0.0
        self._urgent = False
        self._snapshot_jobs: list[tuple[Any, SnapshotCallback | None]] = []
        self.stopping = False
        self.failed: BaseException | None = None
        self.appended_seq = last_seq
        # Snapshots ever queued: a flush waits until as many are written.
        self.snapshots_queued = 0
        # Most events ever pending; how often / how long the feeding thread waited for room.
        self.high_water = 0
        self.backpressure_waits = 0
        self.backpressure_seconds = 0.0

    def put(
        self,
        chunks: list[EventChunk] | list[EncodedBatch],
        last_seq: int,
        count: int,
        tickets: list[Ticket] | None,
        urgent: bool,
    ) -> None:
        """Queue chunks (waiting for room while full); after a failure, fail their tickets."""
        with self.cond:
            if self._events >= self.max_pending:
                self._wait_for_room()
            if self.failed is not None:
                for ticket in tickets or ():
                    ticket.resolve(self.failed)
                return
            if not self._chunks:
                self._since = time.monotonic()
            self._chunks.extend(chunks)
            self._events += count
            if self._events > self.high_water:
                self.high_water = self._events
            self.appended_seq = last_seq
            if tickets:
                self._tickets.extend(tickets)
            if tickets or urgent:
                self._urgent = True
            self.cond.notify()

    def _wait_for_room(self) -> None:
        """Full (holding the lock): wait until the writer thread takes the pending work. A
        batch then goes in whole, so pending stays under the bound plus one batch."""
        started = time.perf_counter()
        self.backpressure_waits += 1
        self.cond.notify()  # a full queue is a due group: make sure the writer looks
        while self._events >= self.max_pending and self.failed is None and not self.stopping:
            self._room.wait()
        self.backpressure_seconds += time.perf_counter() - started

    def put_snapshot(self, snapshot: Any, on_written: SnapshotCallback | None) -> bool:
        """Queue a snapshot job after the events queued so far; False once failed."""
        with self.cond:
            if self.failed is not None:
                return False
            self._snapshot_jobs.append((snapshot, on_written))
            self.snapshots_queued += 1
            self.cond.notify()
            return True

    def hurry(self) -> tuple[int, int]:
        """Make what is queued due now (a flush); return (its last seq, snapshots queued)."""
        target = self.appended_seq
        with self.cond:
            self._urgent = True
            self.cond.notify()
            return target, self.snapshots_queued

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
            self._room.notify_all()

    def take(self) -> tuple[list, list[Ticket], list, bool]:
        """Writer thread: wait until a group is due (or idle for a while); return
        (event chunks, their tickets, snapshot jobs, stopping)."""
        with self.cond:
            while True:
                if self._chunks:
                    due = self._since + self._window
                    now = time.monotonic()
                    if (
                        self._urgent
                        or self.stopping
                        or now >= due
                        or self._events >= min(self._max_group, self.max_pending)
                        or self._snapshot_jobs
                    ):
                        break
                    self.cond.wait(due - now)
                elif self._snapshot_jobs or self.stopping or not self.cond.wait(self._idle):
                    break
            chunks, self._chunks = self._chunks, []
            self._events = 0
            self._room.notify_all()
            tickets, self._tickets = self._tickets, []
            jobs, self._snapshot_jobs = self._snapshot_jobs, []
            self._urgent = False
            return chunks, tickets, jobs, self.stopping

    def fail(self, error: BaseException) -> tuple[list[Ticket], list]:
        """Refuse work from now on; return the tickets and snapshot jobs still queued."""
        with self.cond:
            self.failed = error
            self._room.notify_all()
            tickets, self._tickets = self._tickets, []
            jobs, self._snapshot_jobs = self._snapshot_jobs, []
            return tickets, jobs
