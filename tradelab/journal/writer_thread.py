"""The in-process journal writer: one thread that group-commits stamped events (and snapshots)
to DuckDB. It runs in the engine's process (writer_process=False) or in the writer process.

Thread model: one feeding thread calls `append` / `append_encoded` / `write_snapshot` (the
kernel, when the writer runs in the engine's process; the frame reader, in the writer process);
any thread may call `flush`. Only the writer thread touches its DuckDB cursor. A group is one
appender flush (one statement, one transaction); an urgent batch (a critical event the caller
waits on) closes a group at once, ordinary ones wait at most `group_commit_ms`. The work
queued for the writer thread is bounded (`max_pending_events`): when it is full, the feeding
thread waits for room, which pushes back on the kernel and, through it, on the producers
(writer_queue.py holds that queue).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import duckdb
import msgspec

from tradelab.errors import JournalError, TradelabError
from tradelab.events import Event
from tradelab.journal.checkpoint import DEFAULT_WAL_BYTES, CheckpointPolicy
from tradelab.journal.latency import JournalLatency
from tradelab.journal.schema import EVENT_COLUMNS
from tradelab.journal.segments import SegmentSealer
from tradelab.journal.snapshots import write_snapshot
from tradelab.journal.tailmark import TailMark
from tradelab.journal.wire import EncodedBatch, chunk_rows, chunk_seqs
from tradelab.journal.writer import (
    FailureCallback,
    GroupCallback,
    SnapshotCallback,
    Ticket,
    notify_snapshot,
)
from tradelab.journal.writer_queue import PendingWork

log = logging.getLogger(__name__)

TAILMARK_SYNC_SECONDS = 0.1


class ThreadJournalWriter:
    """Group commit of events to the `events` table, plus snapshot writes, on one thread."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        tailmark: TailMark,
        *,
        last_seq: int,
        next_snapshot_id: int,
        group_commit_ms: float = 10.0,
        max_group_events: int = 20_000,
        max_pending_events: int = 40_000,
        keep_snapshots: int = 100,
        checkpoint_idle_seconds: float = 1.0,
        checkpoint_wal_bytes: int = DEFAULT_WAL_BYTES,
        wal: Path | None = None,
        after_checkpoint: Callable[[duckdb.DuckDBPyConnection], object] | None = None,
        on_group_committed: GroupCallback | None = None,
        on_failed: FailureCallback | None = None,
        name: str = "journal-writer",
    ) -> None:
        self._con = con
        self._tailmark = tailmark
        self._work = PendingWork(
            last_seq=last_seq,
            window_seconds=group_commit_ms / 1000.0,
            max_group=max_group_events,
            max_pending=max_pending_events,
            idle_seconds=checkpoint_idle_seconds,
        )
        self._keep_snapshots = keep_snapshots
        self._checkpoint_idle = checkpoint_idle_seconds
        # Idle, and while busy once the WAL at `wal` passes checkpoint_wal_bytes.
        self.checkpoints = CheckpointPolicy(
            wal,
            idle_seconds=checkpoint_idle_seconds,
            wal_bytes=checkpoint_wal_bytes,
            after_checkpoint=after_checkpoint,
        )
        self._on_group = on_group_committed
        self._on_failed = on_failed
        self._durable_seq = last_seq
        # Newest seq whose group was also reported (the sealer told, DURABLE sent): what flush
        # waits for, so a seal or a reader right after flush() sees every flushed event.
        self._reported_seq = last_seq
        self._durable_cond = threading.Condition()
        self._next_snapshot_id = next_snapshot_id
        self._tailmark_synced_at = 0.0
        # Snapshots written (or failed), by the writer thread under _durable_cond; a flush waits
        # until it catches up with the work's snapshots_queued as it was at the call.
        self._snapshots_done = 0
        self.sealer: SegmentSealer | None = None  # set by build_writer; run by its owner
        self.failed: BaseException | None = None
        self.groups_committed = 0
        self.events_committed = 0
        self.commit_seconds = 0.0
        # Batches from `append` (this process's kernel) are stamped; resolved by their commit.
        self.latency = JournalLatency()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def durable_seq(self) -> int:
        return self._durable_seq

    # Most events ever pending; how often / how long the feeding thread waited for room.
    @property
    def pending_high_water(self) -> int:
        return self._work.high_water

    @property
    def backpressure_waits(self) -> int:
        return self._work.backpressure_waits

    @property
    def backpressure_seconds(self) -> float:
        return self._work.backpressure_seconds

    location: Literal["thread", "process"] = "thread"

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def segments_failure(self) -> str | None:
        """Why the segment sealer stopped (the journal goes on), or None."""
        return self.sealer.failure_note if self.sealer is not None else None

    def describe(self) -> dict[str, Any]:
        return {"writer": self.location, "writer_pid": self.pid}

    def pending_metrics(self) -> dict[str, Any]:
        """The bound on work queued for the writer thread, and how much of it was used."""
        return {
            "writer_max_pending_events": self._work.max_pending,
            "writer_pending_high_water": self.pending_high_water,
            "writer_backpressure_waits": self.backpressure_waits,
            "writer_backpressure_seconds": self.backpressure_seconds,
        }

    def latency_metrics(self) -> dict[str, Any]:
        """Commit and critical-ack latency (here one and the same wait) of recent batches."""
        return self.latency.metrics()

    def seal_segments(self, timeout: float | None = 60.0) -> int:
        """Seal every committed event into Parquet segments now; return the sealed-up-to seq."""
        if self.sealer is None:
            raise JournalError("this journal writer has no segment sealer running")
        sealed = self.sealer.seal_now(timeout)
        if self.sealer.failed is not None:
            raise JournalError(f"segment sealing failed: {self.sealer.failed}")
        return sealed

    def start(self) -> None:
        self._thread.start()

    def append(
        self,
        events: list[Event],
        payloads: list[bytes],
        tickets: list[Ticket] | None = None,
        *,
        urgent: bool = False,
    ) -> None:
        """Queue stamped events (in seq order); `tickets` are released after their commit.

        `payloads[i]` is the exact JSON of `events[i].payload`, encoded once by the submitter:
        it is what gets journaled (the payload dict is never encoded again here).
        `urgent` (or any ticket) closes the group at once instead of waiting for the window.
        """
        if not events:
            return
        if len(payloads) != len(events):
            raise JournalError(
                f"append got {len(payloads)} encoded payloads for {len(events)} events; "
                "expected one per event"
            )
        self.latency.handed_over(events[-1].seq, bool(tickets))
        self._work.put([(events, payloads)], events[-1].seq, len(events), tickets, urgent)

    def append_encoded(self, batch: EncodedBatch, *, urgent: bool = False) -> None:
        """Queue events another process stamped and encoded; they are decoded when written."""
        count = batch.last_seq - batch.first_seq + 1
        if count > 0:
            self._work.put([batch], batch.last_seq, count, None, urgent)

    def append_batches(self, batches: list[EncodedBatch]) -> None:
        """`append_encoded` for several ordinary batches in seq order: one lock, one wait."""
        batches = [b for b in batches if b.last_seq >= b.first_seq]
        if batches:
            count = sum(b.last_seq - b.first_seq + 1 for b in batches)
            self._work.put(batches, batches[-1].last_seq, count, None, False)

    def write_snapshot(self, snapshot: Any, on_written: SnapshotCallback | None = None) -> None:
        """Serialize and store `snapshot` on the writer thread, after the events queued before it."""
        if not self._work.put_snapshot(snapshot, on_written):  # nobody would ever write it
            notify_snapshot(on_written, self.failed)  # type: ignore[arg-type]

    def flush(self, timeout: float | None = None) -> int:
        """Block until every event (and snapshot) queued so far is written; return the durable seq."""
        target, snapshots = self._work.hurry()
        with self._durable_cond:
            ok = self._durable_cond.wait_for(
                lambda: (
                    (self._reported_seq >= target and self._snapshots_done >= snapshots)
                    or self.failed is not None
                ),
                timeout,
            )
        if self.failed is not None:
            raise JournalError(f"journal writer failed: {self.failed}")
        if not ok:
            raise JournalError(f"journal flush to seq {target} did not finish in {timeout} s")
        return self._durable_seq

    def stop(self) -> None:
        """Commit what is queued, CHECKPOINT, and end the thread."""
        self._work.stop()
        if self._thread.is_alive():
            self._thread.join()
        self._tailmark.close()

    # -- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        cur = self._con.cursor()
        checkpoints = self.checkpoints
        jobs: list = []
        try:
            appender = cur.appender("events", columns=list(EVENT_COLUMNS))
            while True:
                events, tickets, jobs, stopping = self._work.take()
                if self.failed is not None:  # failed from outside (fail_from_outside)
                    return
                if events:
                    self._commit_group(appender, events, tickets)
                while jobs:
                    self._write_snapshot(cur, *jobs.pop(0))
                now = time.monotonic()
                if events or jobs:
                    checkpoints.wrote(now)
                    # After this group's acks: a busy checkpoint delays the next group only
                    # (critical acks come from the engine's ack log meanwhile).
                    if checkpoints.busy_due(now):
                        checkpoints.run(cur, busy=True)
                elif checkpoints.idle_due(now):
                    checkpoints.run(cur)
                if stopping and not events and not jobs:
                    if checkpoints.dirty:
                        checkpoints.run(cur, force=True)
                    return
        except BaseException as exc:  # the writer must never die silently
            log.exception("journal writer failed: %s", exc)
            self._fail(exc, jobs)
        finally:
            cur.close()

    def _commit_group(self, appender: Any, chunks: list, tickets) -> None:
        # Rows straight into DuckDB's appender: no Arrow table, SQL parse or replacement scan
        # per group (those cost ~30 us of GIL each, and a group holds ~50 events when critical
        # events close one every millisecond).
        first, last = chunk_seqs(chunks[0])[0], chunk_seqs(chunks[-1])[1]
        started = time.perf_counter()
        try:
            for chunk in chunks:
                appender.append_rows(chunk_rows(chunk))
            appender.flush()
        except (duckdb.Error, JournalError, msgspec.DecodeError, UnicodeDecodeError) as exc:
            appender.clear()  # nothing of a failed group may ride along with the next one
            error = JournalError(f"commit of events {first}..{last} failed: {exc}")
            for ticket in tickets:
                ticket.resolve(error)
            raise error from None
        self.commit_seconds += time.perf_counter() - started
        with self._durable_cond:
            self._durable_seq = last
            self._durable_cond.notify_all()
        for ticket in tickets:
            ticket.resolve()
        self.latency.committed(last)
        self.groups_committed += 1
        self.events_committed += last - first + 1
        # After the acks: the mark only detects a lost tail, it adds no durability. Written on
        # every commit (a process crash cannot lose it); fdatasync'd at most every
        # TAILMARK_SYNC_SECONDS because right after DuckDB's own sync it costs over 1 ms.
        now = time.monotonic()
        sync = now - self._tailmark_synced_at >= TAILMARK_SYNC_SECONDS
        self._tailmark.write(last, sync=sync)
        if sync:
            self._tailmark_synced_at = now
        if self._on_group is not None:
            self._on_group(first, last)
        with self._durable_cond:
            self._reported_seq = last
            self._durable_cond.notify_all()

    def _write_snapshot(self, cur, snapshot: Any, on_written: SnapshotCallback | None) -> None:
        try:
            info = write_snapshot(cur, self._next_snapshot_id, snapshot, keep=self._keep_snapshots)
        except (duckdb.Error, TradelabError, ValueError) as exc:
            # A snapshot is an optimisation: losing one must not stop the event journal.
            log.exception("snapshot at seq %s was not written", getattr(snapshot, "seq", "?"))
            info = JournalError(f"snapshot was not written: {exc}")
        else:
            self._next_snapshot_id += 1
        notify_snapshot(on_written, info)
        with self._durable_cond:
            self._snapshots_done += 1
            self._durable_cond.notify_all()

    def fail_from_outside(self, error: JournalError) -> None:
        """Fail now, from another thread (the sealer's, finding the file damaged): every waiter
        gets `error`, later calls fail at once; the writer thread stops at its next group."""
        if self.failed is None:
            self._fail(error)

    def _fail(self, exc: BaseException, jobs_in_hand: list | None = None) -> None:
        """Fail every waiter at once with the writer's error: tickets, flushes and snapshots
        (those taken for this round and those still queued); later calls fail at once too."""
        error = exc if isinstance(exc, JournalError) else JournalError(f"journal writer: {exc}")
        self.failed = error
        tickets, queued_jobs = self._work.fail(error)
        jobs = list(jobs_in_hand or ()) + queued_jobs
        for ticket in tickets:
            ticket.resolve(error)
        for _, on_written in jobs:
            notify_snapshot(on_written, error)
        with self._durable_cond:
            self._snapshots_done += len(jobs)
            self._durable_cond.notify_all()
        if self._on_failed is not None:
            self._on_failed(error)
