"""The journal writer process: `python -m tradelab.journal.writer_process`, started by the engine.

It owns the DuckDB file while the engine runs and does what the in-process writer thread would:
group commits (`ThreadJournalWriter`), snapshot rows, the high-water mark and the Parquet segments.
Its own interpreter means its own GIL and the second core: DuckDB's commit path and the row
conversion no longer compete with the kernel and the producers (benchmarks/journal.py).

Protocol (tradelab.journal.wire): frames on stdin from the engine, frames back on the original
stdout; anything else printed goes to stderr. Batches are queued for DuckDB, which commits them
in groups (DURABLE frames); a batch marked urgent is committed at once (an engine without the ack
log acknowledges critical events by that commit; with it, the engine has synced them in its ack
log before sending). That queue is bounded: while it is full the frame reader waits, the pipe
fills and the engine's kernel waits on it. End of file on stdin means the
engine is gone (a crash or kill -9): what has arrived is committed, then the process exits
without a checkpoint, exactly as if it had been killed, so the next engine's recovery handles
either case alike.
"""

from __future__ import annotations

import logging
import os
import sys

import msgspec

from tradelab.errors import JournalError, RecoveryError
from tradelab.journal import journal_file, schema, wire
from tradelab.journal.buffer_pool import BufferPoolLimit
from tradelab.journal.journal_file import is_damage
from tradelab.journal.snapshots import SnapshotInfo
from tradelab.journal.tailmark import TailMark
from tradelab.journal.wire import EncodedBatch
from tradelab.journal.writer_setup import build_writer

log = logging.getLogger("tradelab.journal.writer_process")

# DuckDB's memory limit in this process (WriterSettings.memory_limit_mb, see buffer_pool.py)
# follows the largest snapshot written: a CHECKPOINT must pin a snapshot row's block whole, and
# with a 28 MB snapshot 128 MB was not enough ("failed to pin block", fatal: the writer stops).
SNAPSHOT_MEMORY_FACTOR = 8


class WriterProcess:
    """The writer side: open the journal, then serve frames until STOP or end of file."""

    def __init__(self, settings: wire.WriterSettings, out: wire.FrameWriter) -> None:
        self.settings = settings
        self.out = out
        self.con = journal_file.connect(settings.path, timeout=settings.open_timeout_seconds)
        schema.set_wal_autocheckpoint(self.con, settings.wal_autocheckpoint)
        self.buffer_pool = BufferPoolLimit(self.con, settings.memory_limit_mb)
        self.tailmark = TailMark(settings.path)
        self.writer, self.sealer = build_writer(
            self.con,
            self.tailmark,
            settings,
            on_group_committed=self._committed,
            on_failed=self._failed,
            buffer_pool=self.buffer_pool,
            on_segments_failed=self._segments_failed,
        )

    def start(self) -> None:
        if self.sealer is not None:
            self.sealer.start()
        self.writer.start()

    def _committed(self, first: int, last: int) -> None:
        writer = self.writer  # called on its thread, after the commit
        report = wire.DURABLE_GROUP.pack(
            first,
            last,
            writer.pending_high_water,
            writer.backpressure_waits,
            writer.backpressure_seconds,
        )
        self.out.send(wire.DURABLE, report)

    def _failed(self, error: BaseException) -> None:
        if isinstance(error, RecoveryError):  # the sealer's finding, said already
            self.out.send(wire.DAMAGED, str(error).encode())
        elif is_damage(error):  # a checkpoint read a block back damaged: the file's, not ours
            text = f"the journal file is damaged: {error}; `tradelab verify` says what is whole"
            self.out.send(wire.DAMAGED, text.encode())
        else:
            self.out.send(wire.FAILED, str(error).encode())

    def _segments_failed(self, text: str) -> None:
        damaged = self.sealer is not None and self.sealer.damaged
        self.out.send(wire.DAMAGED if damaged else wire.SEGMENTS_FAILED, text.encode())

    def _snapshot_written(self, info: SnapshotInfo | BaseException) -> None:
        if isinstance(info, BaseException):
            body = msgspec.json.encode({"error": str(info)})
        else:
            body = msgspec.json.encode(info)
        self.out.send(wire.SNAPSHOT_WRITTEN, body)

    def serve(self, frames_in: wire.FrameBuffer) -> bool:
        """Handle frames until STOP (True: stopped cleanly) or end of file (False)."""
        while True:
            frames = frames_in.next_frames()
            if frames is None:
                return False
            for kind, body in frames:
                if kind == wire.EVENTS:
                    self._events(body)
                elif kind == wire.STOP:
                    self.stop()
                    return True
                else:
                    self._request(kind, body)

    def _events(self, body: bytes) -> None:
        # Decoded on the writer thread: this thread only moves bytes, so it never holds the
        # GIL long while DuckDB's commit waits to take it back.
        first, last, urgent = wire.EVENTS_HEAD.unpack_from(body)
        batch = EncodedBatch(first, last, body[wire.EVENTS_HEAD.size :])
        self.writer.append_encoded(batch, urgent=urgent)

    def _request(self, kind: bytes, body: bytes) -> None:
        writer = self.writer
        if kind == wire.SNAPSHOT:
            self.buffer_pool.fit(SNAPSHOT_MEMORY_FACTOR * len(body) >> 20)
            writer.write_snapshot(wire.decode_snapshot(body), self._snapshot_written)
        elif kind == wire.FLUSH:
            flush_id = msgspec.json.decode(body)
            try:
                durable, error = writer.flush(), ""
            except JournalError as exc:
                durable, error = writer.durable_seq, str(exc)
            self.out.send(wire.FLUSHED, msgspec.json.encode([flush_id, durable, error]))
        elif kind == wire.SEAL:
            request_id = msgspec.json.decode(body)
            if self.sealer is None:
                sealed, error = 0, "segments are disabled for this journal"
            else:
                sealed = self.sealer.seal_now()
                failed = self.sealer.failed
                error = f"segment sealing failed: {failed}" if failed else ""
            self.out.send(wire.SEALED, msgspec.json.encode([request_id, sealed, error]))
        else:
            raise JournalError(f"journal writer process got an unknown frame {kind!r}")

    def stop(self) -> None:
        """Commit, CHECKPOINT, seal the last segment and close: a clean stop."""
        self.writer.stop()
        if self.sealer is not None:
            self.sealer.stop()
        self.con.close()

    def abandon(self) -> None:
        """The engine is gone: commit what arrived, then leave like a crash (no checkpoint)."""
        if self.writer.failed is not None:  # nothing more can be committed; it said why
            return
        try:
            self.writer.flush(timeout=30.0)
        except JournalError:
            log.exception("journal writer process could not commit after the engine was gone")


class _OneLine(logging.Formatter):
    def formatException(self, ei: object) -> str:  # noqa: N802 (logging's name)
        return ""


def main() -> int:
    # The protocol owns the original stdout; a stray print from any library goes to stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    # The engine may die at any moment (kill -9): answers to it are then dropped, not errors.
    out = wire.FrameWriter(out_fd, reader_may_vanish=True)
    frames_in = wire.FrameBuffer(0)
    handler = logging.StreamHandler()
    # One line a failure: the engine is told each one (FAILED) and reports it; tracebacks with
    # TRADELAB_DEBUG=1 (`tradelab --debug` sets it).
    handler.setFormatter(
        logging.Formatter("%(name)s: %(message)s")
        if os.environ.get("TRADELAB_DEBUG") == "1"
        else _OneLine("tradelab: writer process: %(message)s")
    )
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    # DuckDB's commit gives up the GIL and takes it back several times; with the default 5 ms
    # switch interval each take-back can wait behind the frame reader for a whole interval.
    sys.setswitchinterval(float(os.environ.get("TRADELAB_WRITER_SWITCH_INTERVAL", "0.0002")))
    first = frames_in.next_frames()
    if not first or first[0][0] != wire.CONFIG:
        return 2  # the engine went away before configuring us: nothing was opened
    try:
        settings = msgspec.json.decode(first[0][1], type=wire.WriterSettings)
        if settings.cpus:  # before any thread starts: they inherit it
            os.sched_setaffinity(0, settings.cpus)
        process = WriterProcess(settings, out)
        process.start()
    except Exception as exc:  # reported to the engine, which raises it from start()
        out.send(wire.FAILED, str(exc).encode())
        return 1
    # From here on threads run inside DuckDB: every way out is os._exit. Interpreter teardown
    # would stop those threads mid-call ("FATAL: exception not rethrown", an abort), and
    # DuckDB's bindings report the Python objects still referencing them as leaks on stderr.
    code = 1
    try:
        out.send(wire.READY)
        if process.serve(frames_in):
            out.send(wire.STOPPED)  # everything is committed and closed
        else:
            process.abandon()  # no CHECKPOINT, no close: recovery treats it like the crash
        code = 0
    except Exception as exc:
        if not out.reader_gone:  # with the engine gone, its death is the whole story
            log.exception("journal writer process failed: %s", exc)
            out.send(wire.FAILED, f"journal writer process: {exc}".encode())
        process.abandon()
    finally:
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
