"""The acknowledgement log: where a critical event becomes durable before DuckDB has it.

A DuckDB commit costs about a millisecond of CPU whatever it holds, so acknowledging each
critical event with its own commit made the commit rate, not the disk, the limit. The writer
process instead appends every batch it receives to this log as it arrives, and for a batch with
a critical event calls one fdatasync (~0.1 ms) covering everything received so far, then
acknowledges. DuckDB still gets every event, in group commits every `group_commit_ms`.

Records: a header (magic, CRC-32, first seq, last seq, body length), then the batch exactly as
the engine encoded it. Files `<stem>.acklog/log-<first seq>.bin`, a new one every
`ROTATE_BYTES`; a file is deleted once DuckDB has committed its last seq, so under a steady load
the log holds about one file plus what DuckDB has not committed yet. On open, the journal
copies into DuckDB the logged events it lacks (`restore_into`), then deletes the files. A record
that fails its checks ends the log: it was never synced, so never acknowledged.

Thread model: one thread (the writer process's frame reader) appends, syncs and retires.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import zlib
from pathlib import Path

import duckdb

from tradelab.journal.schema import EVENT_COLUMNS
from tradelab.journal.wire import EncodedBatch

_MAGIC = b"TLAK"
_HEAD = struct.Struct("<4sIqqI")  # magic, crc32(seqs + length + body), first seq, last seq, length
_SEQS = struct.Struct("<qqI")
_NAME = re.compile(r"^log-(\d{12})\.bin$")
# Small enough that a busy log is trimmed often, large enough that rotating (a sync and a
# directory fsync on the acknowledging thread) stays rare: ~1 a minute at 2K events/s.
ROTATE_BYTES = 8 << 20


def acklog_dir(journal_path: str | Path) -> Path:
    journal_path = Path(journal_path)
    return journal_path.parent / f"{journal_path.stem}.acklog"


def _crc(first: int, last: int, body: bytes) -> int:
    return zlib.crc32(body, zlib.crc32(_SEQS.pack(first, last, len(body))))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def log_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


class AckLog:
    """Appends batches, syncs on demand, retires files DuckDB has caught up with."""

    def __init__(self, journal_path: str | Path, rotate_bytes: int = ROTATE_BYTES) -> None:
        self.directory = acklog_dir(journal_path)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._rotate_bytes = rotate_bytes
        self._fd: int | None = None
        self._size = 0
        self._closed: list[tuple[Path, int]] = []  # (file, its last seq), oldest first
        self._current: Path | None = None
        self._current_last = 0
        self.last_seq = 0  # newest seq appended
        self.synced_seq = 0  # newest seq known to be on disk

    def append(self, first: int, last: int, body: bytes) -> None:
        if self._fd is None or self._size >= self._rotate_bytes:
            self._rotate(first)
        record = _HEAD.pack(_MAGIC, _crc(first, last, body), first, last, len(body)) + body
        view = memoryview(record)
        while view:
            view = view[os.write(self._fd, view) :]  # type: ignore[arg-type]
        self._size += len(record)
        self._current_last = self.last_seq = last

    def sync(self) -> int:
        """fdatasync what was appended; return the seq now durable."""
        if self._fd is not None and self.synced_seq < self.last_seq:
            os.fdatasync(self._fd)
            self.synced_seq = self.last_seq
        return self.synced_seq

    def retire(self, committed_seq: int) -> None:
        """Delete closed files whose every event DuckDB has committed."""
        while self._closed and self._closed[0][1] <= committed_seq:
            path, _ = self._closed.pop(0)
            path.unlink(missing_ok=True)

    def close(self, *, remove: bool) -> None:
        """Close the current file; `remove` (after a clean stop's final commit) deletes all."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            for path in log_files(self.directory):
                path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # not empty: someone else's files stay
                self.directory.rmdir()

    def _rotate(self, first: int) -> None:
        if self._fd is not None:
            self.sync()  # a closed file is complete on disk before its successor exists
            os.close(self._fd)
            assert self._current is not None
            self._closed.append((self._current, self._current_last))
        path = self.directory / f"log-{first:012d}.bin"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        _fsync_dir(self.directory)  # the new name survives a power cut, not only a crash
        self._current, self._size = path, 0


def read_records(path: Path) -> tuple[list[EncodedBatch], int | None]:
    """(the intact records of one log file in order, offset of the first damaged one or None)."""
    data = path.read_bytes()
    records: list[EncodedBatch] = []
    at = 0
    while at < len(data):
        if at + _HEAD.size > len(data):
            return records, at
        magic, crc, first, last, length = _HEAD.unpack_from(data, at)
        body_at = at + _HEAD.size
        body = data[body_at : body_at + length]
        if magic != _MAGIC or len(body) != length or crc != _crc(first, last, body):
            return records, at
        records.append(EncodedBatch(first, last, body))
        at = body_at + length
    return records, None


def pending_events(journal_path: str | Path, last_seq: int) -> int:
    """How many logged events after `last_seq` the next read-write open would restore."""
    newest = last_seq
    for path in log_files(acklog_dir(journal_path)):
        for batch in read_records(path)[0]:
            if batch.first_seq <= newest + 1:
                newest = max(newest, batch.last_seq)
    return newest - last_seq


def restore_into(con: duckdb.DuckDBPyConnection, journal_path: str | Path) -> tuple[int, list[str]]:
    """Commit to the journal the logged events after its last seq, then delete the log.

    Returns (events restored, problems). A damaged record at the end of the newest file is the
    unsynced write a crash cut short, not a problem; damage anywhere else is reported, and the
    files are then kept for inspection.
    """
    files = log_files(acklog_dir(journal_path))
    if not files:
        return 0, []
    last_seq = int(con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
    rows: list[tuple] = []
    problems: list[str] = []
    expected = last_seq + 1
    for index, path in enumerate(files):
        records, damaged_at = read_records(path)
        for batch in records:
            if batch.last_seq < expected:
                continue
            if batch.first_seq > expected:
                problems.append(
                    f"ack log {path.name} jumps from seq {expected - 1} to {batch.first_seq}; "
                    "events after the gap were not restored"
                )
                break
            rows.extend(row for row in batch.rows() if row[0] >= expected)
            expected = batch.last_seq + 1
        if problems:
            break
        if damaged_at is not None and index < len(files) - 1:
            problems.append(
                f"ack log {path.name} is damaged at byte {damaged_at} although newer log files "
                "follow; later files were not restored"
            )
            break
    if rows:
        cur = con.cursor()
        try:
            appender = cur.appender("events", columns=list(EVENT_COLUMNS))
            appender.append_rows(rows)
            appender.flush()
        finally:
            cur.close()
    if not problems:
        for path in files:
            path.unlink(missing_ok=True)
    return len(rows), problems
