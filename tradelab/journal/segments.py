"""Sealed Parquet segments of the journal: the road for other processes while the engine runs.

Files `<dir>/<stem>.segments/events-<first>-<last>.parquet` hold contiguous, non-overlapping seq
ranges; each is written to a temporary name and renamed, so a glob never sees half a file.
Thread model: the writer thread calls `SegmentSealer.add` with each committed seq range; the
sealer's own thread has DuckDB copy those events from the journal to Parquet (its own cursor):
no Arrow table or Parquet writer of pyarrow in the writer process, whose memory would stay
outside DuckDB's memory limit (it grew the process by ~50 MB under a flood; benchmarks/overload.py).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import duckdb

from tradelab.errors import JournalError
from tradelab.journal.buffer_pool import BufferPoolLimit
from tradelab.journal.schema import EVENT_COLUMNS

log = logging.getLogger(__name__)

_NAME = re.compile(r"^events-(\d{12})-(\d{12})\.parquet$")
SEGMENT_GLOB = "events-*.parquet"

# Every column written OPTIONAL, as the journal's are nullable: DuckDB marks a column REQUIRED
# when its statistics show no NULL so far, so segments of one journal would disagree on `key`
# (and pyarrow.dataset takes the first file's schema). The CASE is always true under the WHERE.
_SEGMENT_COLUMNS = ", ".join(f"CASE WHEN seq > $1 THEN {c} END AS {c}" for c in EVENT_COLUMNS)


def segment_dir(journal_path: str | Path) -> Path:
    journal_path = Path(journal_path)
    return journal_path.parent / f"{journal_path.stem}.segments"


def segment_name(first_seq: int, last_seq: int) -> str:
    return f"events-{first_seq:012d}-{last_seq:012d}.parquet"


def list_segments(directory: Path) -> list[tuple[int, int, Path]]:
    """(first_seq, last_seq, path) of every sealed segment, in seq order."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), path))
    return sorted(found)


def reconcile_segments(directory: Path, journal_last_seq: int) -> tuple[int, list[str]]:
    """Sealed-up-to seq for a journal ending at `journal_last_seq`, and the problems found.

    Segments beyond the journal's end (its tail was lost after they were sealed) or after a gap
    are renamed `*.stale` so readers never see events the journal no longer has.
    """
    problems: list[str] = []
    sealed = 0
    for first, last, path in list_segments(directory):
        if first == sealed + 1 and last <= journal_last_seq:
            sealed = last
            continue
        reason = (
            f"ends at seq {last} beyond the journal's last seq {journal_last_seq}"
            if last > journal_last_seq
            else f"starts at seq {first}, expected {sealed + 1}"
        )
        path.rename(path.with_name(path.name + ".stale"))
        problems.append(f"segment {path.name} {reason}; renamed to {path.name}.stale")
    return sealed, problems


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class SegmentSealer:
    """Collects committed groups and seals them into segments every N events or T seconds."""

    def __init__(
        self,
        directory: Path,
        con: duckdb.DuckDBPyConnection,
        *,
        sealed_seq: int,
        journal_last_seq: int,
        every_events: int = 50_000,
        every_seconds: float = 5.0,
        buffer_pool: BufferPoolLimit | None = None,
    ) -> None:
        self.directory = directory
        # Each Parquet copy is the writer's one large allocation off its own thread.
        self._buffer_pool = buffer_pool
        self._con = con
        self._sealed_seq = sealed_seq
        self._backlog_upto = journal_last_seq  # committed before this run, maybe not sealed
        self._every_events = every_events
        self._every_seconds = every_seconds
        self._committed_seq = journal_last_seq  # newest seq the writer reported committed
        self._rows = 0
        self._first_added = 0.0
        self._cond = threading.Condition()
        self._stopping = False
        self._seal_requested = False
        self.segments_written = 0
        self.failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="segment-sealer", daemon=True)

    @property
    def sealed_seq(self) -> int:
        return self._sealed_seq

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def add(self, first_seq: int, last_seq: int) -> None:
        """Events first_seq..last_seq are committed (called by the writer after each group)."""
        with self._cond:
            if not self._rows:
                self._first_added = time.monotonic()
            self._committed_seq = last_seq
            self._rows += last_seq - first_seq + 1
            if self._every_events and self._rows >= self._every_events:
                self._cond.notify()

    def seal_now(self, timeout: float | None = 30.0) -> int:
        """Seal everything added so far; return the sealed-up-to seq."""
        with self._cond:
            self._seal_requested = True
            self._cond.notify()
            self._cond.wait_for(lambda: not self._seal_requested or self.failed, timeout)
        return self._sealed_seq

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()

    def _due(self) -> bool:
        if self._stopping or self._seal_requested:
            return True
        if not self._rows:
            return False
        if self._every_events and self._rows >= self._every_events:
            return True
        return bool(
            self._every_seconds and time.monotonic() - self._first_added >= self._every_seconds
        )

    def _wait_seconds(self) -> float | None:
        # Until the oldest unsealed event is `every_seconds` old (not a whole interval from
        # now: that let a segment wait up to twice as long); without one, until notified.
        if not self._every_seconds:
            return None
        if not self._rows:
            return self._every_seconds
        return max(0.001, self._first_added + self._every_seconds - time.monotonic())

    def _run(self) -> None:
        cur = self._con.cursor()
        try:
            self._seal_backlog(cur)
            while True:
                with self._cond:
                    while not self._due():
                        self._cond.wait(self._wait_seconds())
                    upto, self._rows = self._committed_seq, 0
                    stopping = self._stopping
                if upto > self._sealed_seq:
                    self._seal_range(cur, upto)
                with self._cond:
                    self._seal_requested = False
                    self._cond.notify_all()
                if stopping:
                    return
        except BaseException as exc:
            log.exception("segment sealer failed: %s", exc)
            with self._cond:
                self.failed = exc
                self._seal_requested = False
                self._cond.notify_all()
        finally:
            cur.close()

    def _seal_backlog(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Seal events committed by an earlier run that no segment holds yet."""
        self._seal_range(cur, self._backlog_upto)

    def _seal_range(self, cur: duckdb.DuckDBPyConnection, upto: int) -> None:
        """Seal every committed event after the sealed seq up to `upto`, in segments of at most
        `every_events`: DuckDB copies them to Parquet itself, within its own memory limit."""
        chunk = self._every_events or 100_000
        while self._sealed_seq < upto:
            self._seal(cur, min(self._sealed_seq + chunk, upto))

    def _seal(self, cur: duckdb.DuckDBPyConnection, upto: int) -> None:
        """One segment: events after the sealed seq up to `upto`, checked contiguous first,
        written to a temporary name, fsync'd and renamed (a glob never sees half a file)."""
        after = self._sealed_seq
        first, last, count = cur.execute(
            "SELECT min(seq), max(seq), count(*) FROM events WHERE seq > ? AND seq <= ?",
            [after, upto],
        ).fetchall()[0]
        if count == 0:
            raise JournalError(
                f"journal has no events after seq {after} up to {upto}, "
                "though the writer reported them committed"
            )
        if first != after + 1 or last - first + 1 != count:
            raise JournalError(
                f"events {first}..{last} read back for a segment are not the "
                f"{count} contiguous seqs after {after}"
            )
        final = self.directory / segment_name(first, last)
        tmp = self.directory / f".{final.name}.tmp"
        # Committed rows up to `upto` never change, so the copy sees what was just counted.
        pool = self._buffer_pool
        with pool.in_use() if pool is not None else nullcontext():
            cur.execute(
                f"COPY (SELECT {_SEGMENT_COLUMNS} FROM events WHERE seq > $1 AND seq <= $2 "
                "ORDER BY seq) "
                f"TO {_sql_string(str(tmp))} (FORMAT parquet, COMPRESSION zstd)",
                [after, upto],
            )
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        self._sealed_seq = last
        self.segments_written += 1
