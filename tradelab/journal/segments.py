"""Sealed Parquet segments of the journal: the road for other processes while the engine runs.

Files `<dir>/<stem>.segments/events-<first>-<last>.parquet` hold contiguous, non-overlapping seq
ranges; each is written to a temporary name and renamed, so a glob never sees half a file.
Thread model: the writer thread calls `SegmentSealer.add` with each committed seq range; the
sealer's own thread reads those events back from the journal (its own cursor) and writes files,
so the commit path never builds Arrow tables.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from tradelab.errors import JournalError

if TYPE_CHECKING:
    import pyarrow as pa

# pyarrow is imported where a segment is written or read, not at module import: the writer
# process imports this module, and pyarrow (~0.1 s) would delay every engine start.

log = logging.getLogger(__name__)

_NAME = re.compile(r"^events-(\d{12})-(\d{12})\.parquet$")
SEGMENT_GLOB = "events-*.parquet"


@functools.cache
def events_arrow_schema() -> pa.Schema:
    """The Arrow types of the events table's columns, as segments store them."""
    import pyarrow as pa

    return pa.schema(
        [
            ("seq", pa.int64()),
            ("ts", pa.int64()),
            ("topic", pa.string()),
            ("key", pa.string()),
            ("critical", pa.bool_()),
            ("schema_version", pa.int32()),
            ("payload", pa.string()),
        ]
    )


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


def write_segment(directory: Path, table: pa.Table) -> Path:
    """Write one segment atomically (temporary file, fsync, rename)."""
    first = table.column("seq")[0].as_py()
    last = table.column("seq")[-1].as_py()
    final = directory / segment_name(first, last)
    tmp = directory / f".{final.name}.tmp"
    import pyarrow.parquet as pq

    pq.write_table(table, tmp, compression="zstd")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    return final


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
    ) -> None:
        self.directory = directory
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

    def _run(self) -> None:
        cur = self._con.cursor()
        try:
            self._seal_backlog(cur)
            while True:
                with self._cond:
                    while not self._due():
                        self._cond.wait(self._every_seconds or None)
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
            log.exception("segment sealer failed")
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
        `every_events` (read back from the journal: DuckDB does the work, not Python)."""
        chunk = self._every_events or 100_000
        while self._sealed_seq < upto:
            last = min(self._sealed_seq + chunk, upto)
            table = cur.sql(
                "SELECT * FROM events WHERE seq > ? AND seq <= ? ORDER BY seq",
                params=[self._sealed_seq, last],
            ).to_arrow_table()
            if table.num_rows == 0:
                raise JournalError(
                    f"journal has no events after seq {self._sealed_seq} up to {last}, "
                    "though the writer reported them committed"
                )
            self._seal(table.cast(events_arrow_schema()))

    def _seal(self, table: pa.Table) -> None:
        first = table.column("seq")[0].as_py()
        last = table.column("seq")[-1].as_py()
        if first != self._sealed_seq + 1 or last - first + 1 != table.num_rows:
            raise JournalError(
                f"events {first}..{last} read back for a segment are not the "
                f"{table.num_rows} contiguous seqs after {self._sealed_seq}"
            )
        write_segment(self.directory, table)
        self._sealed_seq = last
        self.segments_written += 1
