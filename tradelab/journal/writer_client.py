"""The engine's handle on its journal writer process (writer_process.py is the other end of
the pipes): the `JournalWriter` protocol (writer.py), over pipes.

Thread model: the kernel thread calls `append` / `write_snapshot` (a submitter processing its
own event calls `log`, the kernel thread then `send_events`); any thread may call `flush` and
`stop`. With the ack log (the default) each batch is written to it before the pipe, and a
critical batch's submitters are released once it is synced (critical_acks.py). One
acknowledgement thread reads the process's frames: commits (DURABLE), flushes, snapshots; without
the ack log it also releases tickets once the commit covering their seq arrived. In this process
an event costs one share of a JSON encode per batch, the ack log's write and a pipe write; the
rows, DuckDB's commit and the segments run in the other process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from tradelab.errors import JournalError, RecoveryError
from tradelab.events import Event
from tradelab.journal import wire
from tradelab.journal.critical_acks import CriticalAckLog
from tradelab.journal.latency import JournalLatency
from tradelab.journal.segments import SEGMENTS_STALE
from tradelab.journal.snapshots import SnapshotInfo
from tradelab.journal.writer import SnapshotCallback, Ticket, notify_snapshot
from tradelab.journal.writer_owed import OwedAnswers
from tradelab.journal.writer_spawn import handshake, size_pipe, spawn_writer_process
from tradelab.journal.writer_watch import WriterWatch

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode


class ProcessJournalWriter:
    """Spawned early (it imports while the engine recovers), configured by `start(settings)`."""

    def __init__(self, name: str = "journal-writer", python: str = sys.executable) -> None:
        self._proc = spawn_writer_process(python)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._out = wire.FrameWriter(self._proc.stdin.fileno())
        self._in_fd = os.dup(self._proc.stdout.fileno())
        self._in = wire.FrameBuffer(self._in_fd, chunk=1 << 16)
        self._early_frames: list[tuple[bytes, bytes]] = []
        self._proc.stdout.close()
        self._name = name
        self._owed = OwedAnswers()  # tickets, snapshots and requests; failed all at once
        # Durable: committed by DuckDB (the ack thread advances this) or synced in the ack log
        # (its own counter, advanced under its sync lock): `durable_seq` is the larger.
        self._durable_seq = 0
        self._acklog: CriticalAckLog | None = None
        self._stopped_cleanly = False
        self._pending_report = (0, 0, 0.0)  # from the latest DURABLE frame
        self.segments_failure: str | None = None  # the sealer stopped (SEGMENTS_FAILED)
        self._watch = WriterWatch(self._proc.pid, 0.0)  # armed by start()
        self._max_pending = 0
        self._appended_seq = 0
        self._stopping = False
        self._started = False
        self.groups_committed = 0
        self.events_committed = 0
        self.commit_seconds = 0.0  # spent in the other process; not reported back
        # Stamped per batch sent (kernel thread), resolved by the DURABLE frames; with the ack
        # log, critical acks are measured from its write to its sync.
        self.latency = JournalLatency()
        # Called on the kernel thread with (first seq, last seq, JSON array of the events) of
        # each batch sent, the very bytes journaled (the bridge serves them once durable).
        self.batch_listener: Callable[[int, int, bytes], None] | None = None
        self._thread = threading.Thread(target=self._read_acks, name=name, daemon=True)

    @property
    def failed(self) -> BaseException | None:
        return self._owed.failed

    @property
    def durable_seq(self) -> int:
        logged = self._acklog.synced_seq if self._acklog is not None else 0
        return max(self._durable_seq, logged)

    @property
    def pid(self) -> int:
        return self._proc.pid

    location: Literal["thread", "process"] = "process"

    def describe(self) -> dict[str, Any]:
        return {"writer": self.location, "writer_pid": self.pid}

    def pending_metrics(self) -> dict[str, Any]:
        """The writer process's bound on work queued for DuckDB, as of its latest commit."""
        high_water, waits, seconds = self._pending_report
        return {
            "writer_max_pending_events": self._max_pending,
            "writer_pending_high_water": high_water,
            "writer_backpressure_waits": waits,
            "writer_backpressure_seconds": seconds,
        }

    def latency_metrics(self) -> dict[str, Any]:
        """Commit and critical-ack latency of recent batches, as this process saw them, and
        how many ack log syncs acknowledged the critical events."""
        syncs = self._acklog.syncs if self._acklog is not None else 0
        return {**self.latency.metrics(), "journal_ack_log_syncs": syncs}

    def start(
        self,
        settings: wire.WriterSettings,
        *,
        ack_log: bool = True,
        pipe_bytes: int = 16 << 10,
        stall_seconds: float = 30.0,
    ) -> ProcessJournalWriter:
        """Size the pipe (`pipe_bytes`: what may be in flight to the process), send the
        settings; return once the process has the journal open and its writer runs.

        `ack_log`: a critical event is acknowledged once this process has synced it in the ack
        log (critical_acks.py): no hop through the other process and back on the critical
        path. Without it, a critical batch is acknowledged by its own DuckDB commit there.
        `stall_seconds`: a process owing an answer that silent is failed and killed (0: never;
        writer_watch.py)."""
        size_pipe(self._proc.stdin.fileno(), pipe_bytes)  # type: ignore[union-attr]
        self._durable_seq = self._appended_seq = settings.last_seq
        if ack_log:  # its first file is zero-filled while the other process opens the journal
            self._acklog = CriticalAckLog(
                settings.path, settings.last_seq, self.latency.critical_acks.window, self._fail
            )
        self._max_pending = settings.max_pending_events
        self._watch.stall_seconds = stall_seconds
        try:
            frames = handshake(self._proc, self._out, self._in, settings)
        except JournalError:
            self._abort()
            raise
        self._started = True
        self._early_frames = frames  # none in practice: the process waits for events
        self._thread.start()
        return self

    # -- the JournalWriter interface ------------------------------------------------------------

    def append(
        self,
        events: list[Event],
        payloads: list[bytes],
        tickets: list[Ticket] | None = None,
        *,
        urgent: bool = False,
    ) -> None:
        """Send stamped events (in seq order); `tickets` are released once they are durable.

        `payloads[i]` is the exact JSON of `events[i].payload`, encoded once by the submitter;
        it goes into the frame as it is (the payload dict is never encoded again).
        """
        frame = self.log(events, payloads, tickets, urgent=urgent)
        if frame is not None:
            self.send_events(frame)

    def send_events(self, frame: tuple[bytes, bytes]) -> None:
        """Hand a batch `log` returned to the writer process."""
        self._send(wire.EVENTS, *frame)

    def log(
        self,
        events: list[Event],
        payloads: list[bytes],
        tickets: list[Ticket] | None = None,
        *,
        urgent: bool = False,
    ) -> tuple[bytes, bytes] | None:
        """`append` up to the pipe. Returns the frame for `send_events` (None: nothing to
        send), which must follow before any other batch: the caller decides when, so a
        submitter processing its own event returns without waiting for the pipe."""
        if not events:
            return None
        if len(payloads) != len(events):
            raise JournalError(
                f"append got {len(payloads)} encoded payloads for {len(events)} events; "
                "expected one per event"
            )
        first, last = events[0].seq, events[-1].seq
        urgent = bool(urgent or tickets)
        failed = self.failed
        acklog = self._acklog
        if tickets and failed is None and acklog is None:
            failed = self._owed.add_tickets(tickets, lambda: self.latency.critical_acks.stamp(last))
        if failed is not None:
            for ticket in tickets or ():
                ticket.resolve(failed)
            return None
        self._appended_seq = last
        # With the ack log the other process never commits early for a critical batch.
        head = wire.EVENTS_HEAD.pack(first, last, urgent and acklog is None)
        body = wire.encode_events(events, payloads)
        listener = self.batch_listener
        if listener is not None:
            try:
                listener(first, last, body)
            except Exception:  # a failing listener must not stop the journal
                log.exception("journal batch listener failed")
        self.latency.commits.stamp(last)  # before the frame: its DURABLE may come at once
        if acklog is not None:
            try:
                critical = tickets or [] if urgent else None
                acklog.write(first, last, body, critical, self._durable_seq)
            except JournalError as exc:
                self._fail(exc)
                raise
        return head, body

    def write_snapshot(self, snapshot: Any, on_written: SnapshotCallback | None = None) -> None:
        """Serialize `snapshot` here and have the process store it after the events before it."""
        body = wire.encode_snapshot(snapshot)
        failed = self._owed.add_snapshot(on_written)
        if failed is not None:  # the process will never answer: fail it now, like _fail does
            notify_snapshot(on_written, failed)
            return
        self._send(wire.SNAPSHOT, body)

    def flush(self, timeout: float | None = None) -> int:
        """Block until every event and snapshot sent so far is written; return the durable seq."""
        self._request(wire.FLUSH, timeout, f"journal flush to seq {self._appended_seq}")
        return self._durable_seq

    def seal_segments(self, timeout: float | None = 60.0) -> int:
        """Seal every committed event into Parquet segments now; return the sealed-up-to seq."""
        return self._request(wire.SEAL, timeout, "sealing segments")

    def _request(self, kind: bytes, timeout: float | None, what: str) -> int:
        """Send a request frame and wait for its answer: (seq it reports)."""
        request_id, done = self._owed.open_request()
        try:
            self._send(kind, _encode(request_id))
            finished = done.wait(timeout)
        finally:
            self._owed.close_request(request_id)
        if done.error is not None:
            raise done.error
        if not finished:
            raise JournalError(f"{what} did not finish in {timeout} s")
        return done.seq

    def stop(self, timeout: float = 120.0) -> None:
        """Have the process commit, CHECKPOINT, seal and close; wait for it to exit."""
        self._stopping = True
        if self.failed is None and self._started:
            with contextlib.suppress(JournalError):
                self._send(wire.STOP)
        with contextlib.suppress(OSError):
            self._proc.stdin.close()  # type: ignore[union-attr]
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("journal writer process %s did not stop in %s s; killed", self.pid, timeout)
            self._proc.kill()
            self._proc.wait()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._close_in()
        self._close_acklog()

    def _abort(self) -> None:
        self._stopping = True
        self._proc.kill()
        self._proc.wait()
        self._close_in()
        self._close_acklog()

    def _close_acklog(self) -> None:
        """After a clean stop DuckDB holds every event: the log goes. Otherwise it stays for
        the next open to restore what DuckDB lacks."""
        if self._acklog is not None:
            self._acklog.close(remove=self._stopped_cleanly and self.failed is None)
            self._acklog = None

    # -- plumbing ----------------------------------------------------------------------------

    def _close_in(self) -> None:
        if self._in_fd >= 0:
            os.close(self._in_fd)
            self._in_fd = -1

    def _send(self, kind: bytes, *parts: bytes) -> None:
        try:
            self._out.send(kind, *parts)
        except (OSError, ValueError) as exc:  # the process is gone (or stdin closed)
            if self._stopping:  # closed by stop(): not a failure of the journal
                raise JournalError("the journal writer is stopping") from None
            self._fail(JournalError(f"journal writer process is gone: {exc}"))
            raise self.failed from None  # type: ignore[misc]

    def _read_acks(self) -> None:
        frames: list[tuple[bytes, bytes]] | None = self._early_frames
        try:
            while frames is not None and all(self._handle(*frame) for frame in frames):
                frames = self._in.next_frames(1.0 if self._watch.stall_seconds else None)
                if frames:
                    self._watch.heard()
                elif frames == [] and self.failed is None:
                    owes = self._owed.owes(self._appended_seq > self._durable_seq)
                    stalled = self._watch.failure(owes)
                    if stalled is not None:
                        self._fail(stalled)
                        self._proc.kill()  # its pipe then ends: the loop ends as for a death
        except (OSError, ValueError) as exc:
            self._fail(JournalError(f"journal writer process pipe failed: {exc}"))
            return
        if not self._stopping or self._owed.waiting():
            try:
                code: int | None = self._proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                code = None
            self._fail(JournalError(f"journal writer process exited (exit code {code})"))

    def _handle(self, kind: bytes, body: bytes) -> bool:
        """Act on one frame from the process; False once it reported a clean stop."""
        if kind == wire.DURABLE:
            self._durable(*wire.DURABLE_GROUP.unpack(body))
        elif kind == wire.SNAPSHOT_WRITTEN:
            self._snapshot_done(msgspec.json.decode(body))
        elif kind == wire.FLUSHED or kind == wire.SEALED:
            request_id, seq, error = msgspec.json.decode(body)
            if kind == wire.FLUSHED:
                # The process's writer may answer before its DURABLE frame for the same commit
                # is sent, so the answer carries the durable seq too.
                self._advance(seq)
            self._owed.answer_request(request_id, seq, JournalError(error) if error else None)
        elif kind == wire.FAILED:
            self._fail(JournalError(body.decode(errors="replace")))
        elif kind == wire.DAMAGED:  # the engine stops: appending to it would hide the damage
            self.segments_failure = body.decode(errors="replace")
            self._fail(RecoveryError(self.segments_failure))
        elif kind == wire.SEGMENTS_FAILED:
            self.segments_failure = body.decode(errors="replace")
            log.error("journal segments: %s. %s", self.segments_failure, SEGMENTS_STALE)
        elif kind == wire.STOPPED:
            self._stopped_cleanly = True
            return False
        return True

    def _advance(self, durable: int) -> None:
        # Only this (the ack) thread writes it, and readers only read it: a plain store.
        if durable > self._durable_seq:
            self._durable_seq = durable

    def _durable(self, first: int, last: int, high_water: int, waits: int, seconds: float) -> None:
        """DuckDB committed first..last; the writer's pending-bound metrics as they were then."""
        self.groups_committed += 1
        self.events_committed += last - first + 1
        self._pending_report = (high_water, waits, seconds)
        self.latency.commits.resolve(last)
        self._release(last)

    def _release(self, last: int) -> None:
        """Everything up to `last` is durable (in DuckDB or the synced ack log)."""
        self._advance(last)
        if self._owed.release_through(last):
            self.latency.critical_acks.resolve(last)  # stamped with these tickets

    def _snapshot_done(self, fields: dict[str, Any]) -> None:
        callback = self._owed.next_snapshot_callback()
        if callback is None:
            return
        info: SnapshotInfo | BaseException = (
            JournalError(f"snapshot was not written: {fields['error']}")
            if "error" in fields
            else SnapshotInfo(**fields)
        )
        notify_snapshot(callback, info)

    def _fail(self, error: BaseException) -> None:
        self._owed.fail(error)
