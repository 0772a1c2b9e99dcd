"""`Journal`: one DuckDB journal file opened read-write: its checks on open, reads, and writer.

Opening checks the format version, seq contiguity (RecoveryError on a gap or duplicate) and the
high-water mark (a short tail becomes `TailCheck.damage`, never silently accepted). Thread model:
open/read/close on the owner's thread; after `start_writer` only the writer (a thread here, or
the writer process, which then holds the file) writes. Opening first commits any acknowledged
events the ack log holds beyond the file's last seq (acklog.py). From open to close the journal
is locked for this engine (journal_lock.py), also while the writer process takes the file over.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from tradelab.errors import JournalError, RecoveryError
from tradelab.events import Event
from tradelab.journal import journal_file, schema
from tradelab.journal.acklog import acklog_dir
from tradelab.journal.acklog_read import restore_into
from tradelab.journal.checkpoint import DEFAULT_WAL_BYTES
from tradelab.journal.event_rows import READ_BATCH_ROWS, iter_event_batches
from tradelab.journal.journal_lock import JournalLock
from tradelab.journal.segments import SegmentSealer, reconcile_segments, segment_dir
from tradelab.journal.snapshots import SnapshotInfo, list_snapshots, next_snapshot_id
from tradelab.journal.tailmark import TailMark, tailmark_path
from tradelab.journal.wire import WriterSettings
from tradelab.journal.writer import JournalWriter
from tradelab.journal.writer_client import ProcessJournalWriter
from tradelab.journal.writer_setup import build_writer

log = logging.getLogger(__name__)


@dataclass
class TailCheck:
    """What the open-time checks found: the seq range, and any lost tail."""

    count: int
    first_seq: int
    last_seq: int
    tailmark_seq: int | None
    damage: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)


def check_events(con: duckdb.DuckDBPyConnection, path: str | Path) -> tuple[int, int, int]:
    """(count, first seq, last seq); a gap or duplicate in seq is a RecoveryError naming it."""
    count, first, last, distinct, incomplete = con.execute(
        "SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0), count(DISTINCT seq), "
        "count(*) FILTER (WHERE seq IS NULL OR ts IS NULL OR topic IS NULL OR critical IS NULL "
        "OR schema_version IS NULL) FROM events"
    ).fetchone()
    if incomplete:
        raise RecoveryError(
            f"journal {path} is damaged: {incomplete} event row(s) have a NULL seq, ts, topic, "
            "critical or schema_version; the single writer never writes one"
        )
    if count and (first != 1 or last != count or distinct != count):
        row = con.execute(
            "SELECT seq, nxt FROM (SELECT seq, lead(seq) OVER (ORDER BY seq) AS nxt FROM events) "
            "WHERE nxt IS NOT NULL AND nxt <> seq + 1 ORDER BY seq LIMIT 1"
        ).fetchone()
        where = (
            f"first seq is {first}, expected 1"
            if first != 1
            else f"seq {row[0]} is followed by {row[1]}"
            if row
            else "duplicate seqs"
        )
        raise RecoveryError(
            f"journal {path} is not contiguous: {count} events, seq {first}..{last}, {distinct} "
            f"distinct; {where}: the file was damaged or altered after it was written."
        )
    return int(count), int(first), int(last)


def check_no_leftovers(path: Path) -> None:
    """A new journal at `path` must not inherit an earlier one's files: its high-water mark (a
    new journal would report that journal's events as lost), its sealed segments (readers
    would mix the two) or its ack log (acknowledged events no journal holds). Refused, naming
    them, so nothing is mixed or deleted."""
    left = [
        found
        for found in (tailmark_path(path), segment_dir(path), acklog_dir(path))
        if found.exists() and (not found.is_dir() or any(found.iterdir()))
    ]
    if left:
        names = ", ".join(str(found) for found in left)
        state = "is empty (0 bytes)" if path.exists() else "does not exist"
        raise JournalError(
            f"journal {path} {state} but files of an earlier journal there do: {names}; "
            f"move or remove them to start a new journal (to start over: {start_over(path)})"
        )


def start_over(path: Path) -> str:
    """What to remove to start over from nothing on the journal `path`: it and its sidecars
    (never a glob of its stem, which would take a strategy file `sma.py` beside `sma.duckdb`)."""
    return (
        f"remove the journal {path}, the files named {path.name}.* beside it and the folders "
        f"{segment_dir(path).name} and {acklog_dir(path).name}"
    )


class Journal:
    """A journal file opened read-write by this process (DuckDB allows only one such process).

    With `writer_process=True` the writer runs in a process of its own: spawned here so it
    imports while recovery reads, handed the file by `start_writer`, which closes this
    process's connection (only one process may hold it). Reads after that go through
    `JournalReader`, like any other process's.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        wal_autocheckpoint: str = "1GB",
        timeout: float = 2.0,
        writer_process: bool = False,
    ):
        self.path = journal_file.check_journal_path(path)
        self._wal_autocheckpoint = schema.check_wal_autocheckpoint(wal_autocheckpoint)
        self._timeout = timeout
        journal_file.make_journal_dir(self.path)
        # Held until close(): DuckDB's lock lapses while the file passes to the writer process.
        self.lock = JournalLock.acquire(self.path, timeout)
        try:
            self._open(writer_process)
        except BaseException:
            self.lock.release()
            raise

    def _open(self, writer_process: bool) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:  # an empty one: a new one
            check_no_leftovers(self.path)
        self.con = journal_file.connect(self.path, timeout=self._timeout)
        try:
            schema.set_wal_autocheckpoint(self.con, self._wal_autocheckpoint)
            schema.ensure_schema(self.con, self.path)
            # Acknowledged events the engine logged but DuckDB had not committed when
            # it stopped (a crash): into the file first, so every check below sees them.
            self.acklog_restored = restore_into(self.con, self.path)
            if self.acklog_restored:
                log.warning(
                    "journal %s: restored %d acknowledged event(s) from the ack log",
                    self.path,
                    self.acklog_restored,
                )
            self.tailmark = TailMark(self.path)
            self.check = self._check_tail()
            # Its identity: when it was created (what a broker account beside it is bound to).
            made = self.con.execute("SELECT value FROM meta WHERE name = 'created_ns'").fetchall()
            self.created_ns: str | None = made[0][0] if made else None
        except duckdb.Error as exc:
            self.con.close()
            raise journal_file.journal_error(self.path, exc, "reading it") from None
        except BaseException:
            self.con.close()
            raise
        self.writer: JournalWriter | None = None
        self.sealer: SegmentSealer | None = None
        self._process: ProcessJournalWriter | None = None
        if writer_process:
            try:
                self._process = ProcessJournalWriter()
            except BaseException:
                self.con.close()
                raise
        self._con_closed = False

    @property
    def last_seq(self) -> int:
        return self.check.last_seq

    def _check_tail(self) -> TailCheck:
        count, first, last = check_events(self.con, self.path)
        mark = self.tailmark.read()
        check = TailCheck(count, first, last, mark)
        if mark is None and self.tailmark.path.exists():
            check.problems.append(f"high-water mark {self.tailmark.path} is unreadable")
        elif mark is None and count:
            check.problems.append(
                f"no high-water mark {self.tailmark.path}; a lost tail cannot be detected"
            )
        elif mark is not None and mark > last:
            check.damage = {
                "path": str(self.path),
                "expected_last_seq": mark,
                "found_last_seq": last,
                "lost_from_seq": last + 1,
                "lost_events": mark - last,
            }
            check.problems.append(
                f"journal {self.path} ends at seq {last} but seq {mark} had been committed: "
                f"events {last + 1}..{mark} were lost (torn WAL tail)"
            )
        if mark != last and check.damage is None:
            # A damaged tail keeps its mark until the next commit, so a crash before the damage
            # was journaled reports it again rather than forgetting it.
            try:
                self.tailmark.write(last)
            except OSError as exc:
                raise JournalError(
                    f"cannot write the high-water mark {self.tailmark.path} of journal "
                    f"{self.path}: {exc.strerror or exc}; it must be a writable file"
                ) from None
        return check

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con_closed:
            raise JournalError(
                f"journal {self.path} is held by its writer process; read it with JournalReader"
            )
        return self.con

    def snapshots(self) -> list[SnapshotInfo]:
        return list_snapshots(self._connection())

    def iter_event_batches(
        self, since_seq: int = 0, upto_seq: int | None = None, batch_rows: int = READ_BATCH_ROWS
    ) -> Iterator[list[Event]]:
        return iter_event_batches(self._connection(), since_seq, upto_seq, batch_rows)

    def start_writer(
        self,
        *,
        group_commit_ms: float,
        max_group_events: int,
        keep_snapshots: int,
        checkpoint_idle_seconds: float,
        segments: bool = True,
        segment_every_events: int = 50_000,
        segment_every_seconds: float = 5.0,
        cpus: frozenset[int] = frozenset(),
        ack_log: bool = True,
        checkpoint_wal_bytes: int = DEFAULT_WAL_BYTES,
        memory_limit_mb: int = 512,
        max_pending_events: int = 40_000,
        pipe_bytes: int = 16 << 10,
        stall_seconds: float = 30.0,
    ) -> JournalWriter:
        """Start the writer (and the segment sealer) after recovery; seqs continue from last_seq."""
        if self.writer is not None:
            raise JournalError(f"journal {self.path} already has a writer")
        sealed = 0
        if segments:
            directory = segment_dir(self.path)
            try:
                directory.mkdir(parents=True, exist_ok=True)
                # Written to now, not at the first seal: a directory that cannot take a segment
                # left readers on the segments of the start while the session ran on.
                tempfile.TemporaryFile(dir=directory, prefix=".probe-").close()
                sealed, problems = reconcile_segments(directory, self.last_seq)
            except OSError as exc:
                raise JournalError(
                    f"cannot use the segments directory {directory} of journal {self.path}: "
                    f"{exc.strerror or exc}; make it a writable directory, or turn segments off "
                    "(engine.segments_enabled: false)"
                ) from None
            self.check.problems.extend(problems)
        settings = WriterSettings(
            path=str(self.path),
            last_seq=self.last_seq,
            next_snapshot_id=next_snapshot_id(self.con),
            wal_autocheckpoint=self._wal_autocheckpoint,
            open_timeout_seconds=max(self._timeout, 10.0),
            group_commit_ms=group_commit_ms,
            max_group_events=max_group_events,
            keep_snapshots=keep_snapshots,
            checkpoint_idle_seconds=checkpoint_idle_seconds,
            checkpoint_wal_bytes=checkpoint_wal_bytes,
            memory_limit_mb=memory_limit_mb,
            max_pending_events=max_pending_events,
            segments=segments,
            sealed_seq=sealed,
            segment_every_events=segment_every_events,
            segment_every_seconds=segment_every_seconds,
            cpus=sorted(cpus),
        )
        if self._process is not None:
            self.tailmark.close()
            self.con.close()  # the file lock passes to the writer process
            self._con_closed = True
            self.writer = self._process.start(
                settings, ack_log=ack_log, pipe_bytes=pipe_bytes, stall_seconds=stall_seconds
            )
            return self.writer
        writer, self.sealer = build_writer(self.con, self.tailmark, settings)
        if self.sealer is not None:
            self.sealer.start()
        writer.start()
        self.writer = writer
        return writer

    def seal_segments(self, timeout: float | None = 60.0) -> int:
        """Seal every committed event into Parquet segments now; return the sealed-up-to seq."""
        if self.writer is None:
            raise JournalError(f"journal {self.path} has no writer running")
        return self.writer.seal_segments(timeout)

    def close(self) -> None:
        """Stop the writer (commit + CHECKPOINT), seal the last segment, close the file."""
        try:
            if self.writer is not None:
                self.writer.stop()
            elif self._process is not None:  # spawned, never handed the file
                self._process.stop()
            if self.sealer is not None:
                self.sealer.stop()
            self.tailmark.close()
            if not self._con_closed:
                self.con.close()
        finally:
            self.lock.release()
