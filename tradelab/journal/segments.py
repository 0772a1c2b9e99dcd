"""Sealed Parquet segments of the journal: the road for other processes while the engine runs.

Files `<dir>/<stem>.segments/events-<first>-<last>.parquet` hold contiguous seq ranges; each is
written to a temporary name and renamed, so a listing never sees half a file. A seal every few
seconds makes thousands of small files a day, and every reader's query opens them all: once
`MERGE_WHEN` small ones wait, the sealer writes one file over their range and deletes them
`MERGE_GRACE_S` later (or at the next start), so a reader that listed them first still reads
them. Readers take the files `list_segments` names, which leaves out any file another covers.
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
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import duckdb

from tradelab.errors import JournalError
from tradelab.journal.buffer_pool import BufferPoolLimit
from tradelab.journal.journal_file import is_damage
from tradelab.journal.schema import EVENT_COLUMNS

log = logging.getLogger(__name__)

_NAME = re.compile(r"^events-(\d{12})-(\d{12})\.parquet$")


#: What a stopped sealer means to a user, said beside its cause.
SEGMENTS_STALE = (
    "Readers of the segments (analytics on a journal an engine holds, an attached notebook) "
    "see events only up to there; the journal itself holds every event, and the next start "
    "seals the rest"
)


def parquet_list(segments: list[tuple[int, int, Path]]) -> str:
    """SQL for `read_parquet`'s argument: the files `list_segments` named, as a list literal
    (a glob would also take the files a merge covers until they are deleted)."""
    return "[" + ", ".join(_sql_string(str(path)) for _, _, path in segments) + "]"


# Every column written OPTIONAL, as the journal's are nullable: DuckDB marks a column REQUIRED
# when its statistics show no NULL so far, so segments of one journal would disagree on `key`
# (and pyarrow.dataset takes the first file's schema). The CASE is always true under the WHERE.
_SEGMENT_COLUMNS = ", ".join(f"CASE WHEN seq > $1 THEN {c} END AS {c}" for c in EVENT_COLUMNS)


def sidecar_base(journal_path: str | Path) -> Path:
    """What a journal's folders are named after: `lab.duckdb` -> `lab` (`lab.segments`,
    `lab.acklog`), any other name whole (`runs.1` -> `runs.1.segments`), so `runs.1` and
    `runs.2`, or `nifty.duckdb` and `nifty.db`, never share an ack log or segments."""
    journal_path = Path(journal_path)
    if journal_path.suffix == ".duckdb":
        return journal_path.with_suffix("")
    return journal_path


def segment_dir(journal_path: str | Path) -> Path:
    base = sidecar_base(journal_path)
    return base.with_name(f"{base.name}.segments")


def segment_name(first_seq: int, last_seq: int) -> str:
    return f"events-{first_seq:012d}-{last_seq:012d}.parquet"


# Segments smaller than this many events are merged once MERGE_WHEN of them wait; the files
# they are merged from stay MERGE_GRACE_S for readers that listed them before the merge.
MERGE_SMALLER_THAN = 200_000
MERGE_WHEN = 32
MERGE_GRACE_S = 60.0


def list_segments(directory: Path) -> list[tuple[int, int, Path]]:
    """(first_seq, last_seq, path) of the sealed segments to read, in seq order: a file whose
    range another one covers (merged, not yet deleted) is left out."""
    shown: list[tuple[int, int, Path]] = []
    for segment in _all_segments(directory):
        if shown and segment[1] <= shown[-1][1]:
            continue  # covered by the (wider) one before it
        shown.append(segment)
    return shown


def covered_segments(directory: Path) -> list[Path]:
    """Files a merged segment covers: left out by `list_segments`, deleted after the grace."""
    shown = {path for _, _, path in list_segments(directory)}
    return [path for _, _, path in _all_segments(directory) if path not in shown]


def _all_segments(directory: Path) -> list[tuple[int, int, Path]]:
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), path))
    return sorted(found, key=lambda s: (s[0], -s[1]))  # the widest of one start first


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
    for _, last, path in _all_segments(directory):  # a merge's leftovers past the sealed seq
        if last > sealed:
            path.rename(path.with_name(path.name + ".stale"))
            problems.append(f"segment {path.name} ends past seq {sealed}; renamed to .stale")
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
        on_failed: Callable[[str], None] | None = None,
    ) -> None:
        """`on_failed(text)`: called once, on the sealer's thread, if sealing stops for good."""
        self.directory = directory
        self._on_failed = on_failed
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
        self.segments_merged = 0  # files written over a run of small ones
        # (monotonic deadline, files a merge covers): deleted once readers had time to move on
        self._doomed: list[tuple[float, list[Path]]] = []
        self.failed: BaseException | None = None
        # The failure was the file's own damage (a block failing its checksum), not the
        # segments' folder: the journal is no longer the whole story, so the writer stops too.
        self.damaged = False
        self.failure_note: str | None = None  # what failed says, and the last seq sealed
        self._thread = threading.Thread(target=self._run, name="segment-sealer", daemon=True)

    @property
    def sealed_seq(self) -> int:
        return self._sealed_seq

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # What a kill cut short: a merge's covered files (deleted now: crash after crash within
        # the grace would pile them up) and the temporary file of a copy.
        for path in covered_segments(self.directory):
            path.unlink(missing_ok=True)
        for path in self.directory.glob(".events-*.parquet.tmp"):
            path.unlink(missing_ok=True)
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
                    self._merge_small(cur)
                self._delete_doomed(everything=stopping)
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
            self.damaged = is_damage(exc)
            if self.damaged:
                self.failure_note = (
                    f"the journal file is damaged: reading its events after seq "
                    f"{self._sealed_seq} failed ({exc}); `tradelab verify` says what is whole"
                )
            else:
                self.failure_note = f"sealing stopped after seq {self._sealed_seq}: {exc}"
            if self._on_failed is not None:
                self._on_failed(self.failure_note)
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
        self._copy(cur, after, upto, self.directory / segment_name(first, last))
        self._sealed_seq = last
        self.segments_written += 1

    def _merge_small(self, cur: duckdb.DuckDBPyConnection) -> None:
        """One file over the oldest MERGE_WHEN small segments, once that many wait; theirs are
        deleted after MERGE_GRACE_S (`_delete_doomed`)."""
        small = [s for s in list_segments(self.directory) if s[1] - s[0] + 1 < MERGE_SMALLER_THAN]
        if len(small) < MERGE_WHEN:
            return
        run: list[tuple[int, int, Path]] = []  # the oldest run of adjacent small ones (2+)
        for segment in small:
            if run and segment[0] != run[-1][1] + 1:  # a large one between
                if len(run) >= 2:
                    break
                run = []
            run.append(segment)
            if len(run) == MERGE_WHEN:
                break
        if len(run) < 2:
            return
        first, last = run[0][0], run[-1][1]
        self._copy(cur, first - 1, last, self.directory / segment_name(first, last))
        self._doomed.append((time.monotonic() + MERGE_GRACE_S, [path for _, _, path in run]))
        self.segments_merged += 1

    def _delete_doomed(self, *, everything: bool) -> None:
        now = time.monotonic()
        kept = []
        for deadline, paths in self._doomed:
            if not everything and deadline > now:
                kept.append((deadline, paths))
                continue
            for path in paths:
                path.unlink(missing_ok=True)
        self._doomed = kept

    def _copy(self, cur: duckdb.DuckDBPyConnection, after: int, upto: int, final: Path) -> None:
        """Events after..upto to the Parquet file `final`: written to a temporary name, fsync'd
        and renamed (a listing never sees half a file)."""
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
