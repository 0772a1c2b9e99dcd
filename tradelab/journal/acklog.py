"""The acknowledgement log: where a critical event becomes durable before DuckDB has it.

A DuckDB commit costs about a millisecond of CPU whatever it holds, so acknowledging each
critical event with its own commit made the commit rate, not the disk, the limit. The engine
instead writes every batch to this log before handing it to the writer process, and a critical
event is acknowledged after one fdatasync (~0.1 ms) covering everything written so far, made in
the engine's process (critical_acks.py says by whom): no round trip through the writer process
on the critical path. DuckDB still gets every event, in group commits every `group_commit_ms`.

Records: a header (magic, CRC-32, first seq, last seq, body length), then the batch exactly as
the engine encoded it. Files `<stem>.acklog/log-<seq>.bin` (`<stem>`: segments.sidecar_base; no record in
it has a lower seq) are zero-filled to `ROTATE_BYTES` and synced by a helper thread before they are needed (once the
current one is half used); records are written in place, so an fdatasync has no file size or
block allocation to commit, only the data (SQLite reuses its WAL for the same reason). A zero header ends a file's records. A file is deleted once
DuckDB has committed its last seq, so the log holds about one file plus what DuckDB has not
committed yet (bounded by the writer's pending bound). On open, the journal copies into DuckDB
the logged events it lacks (`restore_into`), then deletes the files. A record that fails its
checks at the end of the newest file was never synced, so never acknowledged; damage before an
intact record, or a gap, refuses the open (the journal is damaged) and changes nothing.

Thread model: one thread at a time appends and retires (the kernel thread, or a submitter holding
the kernel's turn); any thread may sync (a waiting submitter, the engine's ack log sync thread);
one helper thread prepares the next file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb

from tradelab.errors import JournalError, RecoveryError
from tradelab.journal.schema import EVENT_COLUMNS
from tradelab.journal.segments import sidecar_base
from tradelab.journal.wire import EncodedBatch

log = logging.getLogger(__name__)
_MAGIC = b"TLAK"
_HEAD = struct.Struct("<4sIqqI")  # magic, crc32(seqs + length + body), first seq, last seq, length
_SEQS = struct.Struct("<qqI")
_NAME = re.compile(r"^log-(\d{12})\.bin$")
# The size every file is zero-filled to. Small enough that a busy log is trimmed often and
# zero-filling one (on the helper thread) is a short burst for the disk; large enough that
# rotating stays rare: ~3 a second at 40K events/s, ~1 a minute at 2K events/s.
ROTATE_BYTES = 4 << 20
_ZEROS = bytes(1 << 20)


def acklog_dir(journal_path: str | Path) -> Path:
    base = sidecar_base(journal_path)  # named as the segments folder is
    return base.with_name(f"{base.name}.acklog")


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


def _prepare(path: Path, size: int) -> int:
    """Create `path` holding `size` zero bytes, synced with its name; return it open for writing."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        # Written zeros, not posix_fallocate: an fallocated block is "unwritten" until its first
        # write, which converts it, a metadata change the next fdatasync would have to commit.
        left = size
        while left > 0:
            left -= os.write(fd, _ZEROS[: min(left, len(_ZEROS))])
        os.fdatasync(fd)
        _fsync_dir(path.parent)  # the name survives a power cut, not only a crash
    except BaseException:
        os.close(fd)
        raise
    return fd


class AckLog:
    """Writes batches in place, syncs on demand, retires files DuckDB has caught up with."""

    def __init__(
        self,
        journal_path: str | Path,
        rotate_bytes: int = ROTATE_BYTES,
        *,
        next_seq: int | None = None,
    ) -> None:
        """`next_seq`, when known (the journal's last seq + 1), starts preparing the first file
        at once; otherwise the first append prepares it."""
        self.directory = acklog_dir(journal_path)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in its place, a read-only folder
            raise JournalError(
                f"cannot create the ack log folder {self.directory}: {exc.strerror or exc}"
            ) from None
        self._rotate_bytes = rotate_bytes
        self._helper = ThreadPoolExecutor(1, thread_name_prefix="acklog-prepare")
        self._next: Future[tuple[Path, int]] | None = None
        self._fd: int | None = None
        self._size = 0  # bytes of records in the current file: where the next one goes
        self._closed: list[tuple[Path, int]] = []  # (file, its last seq), oldest first
        self._current: Path | None = None
        self._current_last = 0
        self.last_seq = 0  # newest seq appended
        self.synced_seq = 0  # newest seq known to be on disk
        self._sync_lock = threading.RLock()
        self.files_prepared = 0
        self.rotation_waits = 0  # rotations that had to wait for the next file
        if next_seq is not None:
            self._prepare_next(next_seq)

    def append(self, first: int, last: int, body: bytes) -> None:
        record = _HEAD.pack(_MAGIC, _crc(first, last, body), first, last, len(body)) + body
        if self._fd is None or (self._size and self._size + len(record) > self._rotate_bytes):
            self._rotate(first)
        # A record larger than a whole file is written past its end: the file grows, correct,
        # only that sync is slower.
        view, at = memoryview(record), self._size
        while view:
            written = os.pwrite(self._fd, view, at)  # type: ignore[arg-type]
            view, at = view[written:], at + written
        self._size = at
        self._current_last = self.last_seq = last
        # Once half of this file is used: zero-filling the next one is a burst of writes that
        # the acks' syncs queue behind, so not sooner than needed (nor for an idle log); half
        # a file of records takes longer to arrive than a file takes to fill with zeros. After
        # the write: no record in the next file is below last + 1.
        if self._next is None and 2 * at >= self._rotate_bytes:
            self._prepare_next(last + 1)

    def sync(self) -> int:
        """fdatasync what was appended; return the seq now durable."""
        self.sync_through(self.last_seq)
        return self.synced_seq

    def sync_through(self, seq: int) -> bool:
        """Make sure everything through `seq` (appended already) is on disk; False if a sync
        covered it before. Any thread may call it while the appending thread goes on writing:
        one fdatasync covers all written before it (several waiters, one sync)."""
        with self._sync_lock:
            if self.synced_seq >= seq:
                return False
            last = self.last_seq  # >= seq > synced_seq: something to sync
            if self._fd is not None:
                os.fdatasync(self._fd)
                self.synced_seq = last
            return True

    def retire(self, committed_seq: int) -> None:
        """Delete closed files whose every event DuckDB has committed."""
        while self._closed and self._closed[0][1] <= committed_seq:
            path, _ = self._closed.pop(0)
            path.unlink(missing_ok=True)

    def close(self, *, remove: bool) -> None:
        """Close the current file; `remove` (after a clean stop's final commit) deletes all."""
        if self._next is not None:  # prepared, never written: it holds nothing to keep
            with contextlib.suppress(OSError):
                unused, fd = self._next.result()
                os.close(fd)
                unused.unlink()
            self._next = None
        self._helper.shutdown(wait=True)
        with self._sync_lock:  # synced first: a waiter syncing after this finds it covered
            if self._fd is not None:
                with contextlib.suppress(OSError):  # a failed disk was reported already
                    self.sync()
                os.close(self._fd)
                self._fd = None
        if remove:
            for path in log_files(self.directory):
                path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # not empty: someone else's files stay
                self.directory.rmdir()

    def _prepare_next(self, seq: int) -> None:
        path = self.directory / f"log-{seq:012d}.bin"
        size = max(self._rotate_bytes, 0)
        self._next = self._helper.submit(lambda: (path, _prepare(path, size)))
        self.files_prepared += 1

    def _rotate(self, first: int) -> None:
        if self._fd is not None:
            with self._sync_lock:  # no sync of another thread is on this file when it closes
                self.sync()  # a closed file is complete on disk before its successor has records
                os.close(self._fd)
                self._fd = None
            assert self._current is not None
            self._closed.append((self._current, self._current_last))
        if self._next is None:
            self._prepare_next(first)
        assert self._next is not None
        if not self._next.done():
            self.rotation_waits += 1
        self._current, self._fd = self._next.result()  # an OSError here fails the writer
        self._next, self._size = None, 0


def _intact_at(data: bytes, at: int) -> tuple[EncodedBatch, int] | None:
    """The record starting at `at` and where it ends, or None if none intact starts there."""
    if at + _HEAD.size > len(data):
        return None
    magic, crc, first, last, length = _HEAD.unpack_from(data, at)
    body_at = at + _HEAD.size
    body = data[body_at : body_at + length]
    if magic != _MAGIC or len(body) != length or crc != _crc(first, last, body):
        return None
    return EncodedBatch(first, last, body), body_at + length


def _scan(data: bytes) -> tuple[list[EncodedBatch], int | None]:
    records: list[EncodedBatch] = []
    at = 0
    while at < len(data):
        found = _intact_at(data, at)
        if found is None:
            tail = memoryview(data)[at:]
            # All zero: the unused, preallocated rest of the file, a clean end.
            return records, None if tail == bytes(len(tail)) else at
        records.append(found[0])
        at = found[1]
    return records, None


def _intact_record_after(data: bytes, at: int) -> bool:
    """Whether any intact record starts after the damage at `at` (so it is not a torn tail)."""
    at = data.find(_MAGIC, at + 1)
    while at >= 0:
        if _intact_at(data, at) is not None:
            return True
        at = data.find(_MAGIC, at + 1)
    return False


def _holds_anything(path: Path) -> bool:
    """Whether a log file holds any byte but zero (a file prepared, never written, does not)."""
    data = path.read_bytes()
    return data != bytes(len(data))


def read_records(path: Path) -> tuple[list[EncodedBatch], int | None]:
    """(the intact records of one log file in order, offset of the first damaged one or None).

    A zero tail (the preallocated, never written rest of a file) is a clean end, not damage.
    """
    return _scan(path.read_bytes())


def pending_events(journal_path: str | Path, last_seq: int) -> int:
    """How many logged events after `last_seq` the next read-write open would restore."""
    newest = last_seq
    for path in log_files(acklog_dir(journal_path)):
        for batch in read_records(path)[0]:
            if batch.first_seq <= newest + 1:
                newest = max(newest, batch.last_seq)
    return newest - last_seq


def pending_rows(journal_path: str | Path, last_seq: int) -> list[tuple]:
    """The logged events after `last_seq` the next read-write open would restore, as rows of
    the events table (seq, ts, topic, key, critical, schema_version, payload)."""
    rows: list[tuple] = []
    newest = last_seq
    for path in log_files(acklog_dir(journal_path)):
        for batch in read_records(path)[0]:
            if batch.first_seq <= newest + 1 and batch.last_seq > newest:
                rows.extend(row for row in batch.rows() if row[0] > newest)
                newest = batch.last_seq
    return rows


def torn_tail(journal_path: str | Path) -> str | None:
    """The log's last record, if it fails its checks: a write a crash cut short (never synced,
    so never acknowledged: the next start drops it) or, rarely, damage to a synced one, which
    no check can tell apart; said, so an operator can look (`damage` covers all else)."""
    files = log_files(acklog_dir(journal_path))
    for index, path in enumerate(files):
        data = path.read_bytes()
        damaged_at = _scan(data)[1]
        if damaged_at is None:
            continue
        if _intact_record_after(data, damaged_at) or any(
            _holds_anything(later) for later in files[index + 1 :]
        ):
            return None  # not the last record: damage (`damage` says it), not a torn tail
        magic, _, first, last, _ = _HEAD.unpack_from(data + bytes(_HEAD.size), damaged_at)
        seqs = f" (seq {first}..{last})" if magic == _MAGIC else ""
        return (
            f"the last record of ack log {path}{seqs}, at byte {damaged_at}, fails its checks: "
            "a write a crash cut short (never acknowledged), or damage to an acknowledged one; "
            "the next start drops it"
        )
    return None


def damage(journal_path: str | Path, last_seq: int) -> list[str]:
    """What keeps the ack log from being restored whole after `last_seq` (empty: nothing)."""
    return _plan(log_files(acklog_dir(journal_path)), last_seq)[1]


def _plan(files: list[Path], last_seq: int) -> tuple[list[tuple], list[str]]:
    """(the rows after `last_seq` the log holds, the problems that stop it being restored)."""
    rows: list[tuple] = []
    expected = last_seq + 1
    for index, path in enumerate(files):
        data = path.read_bytes()
        records, damaged_at = _scan(data)
        for batch in records:
            if batch.last_seq < expected:
                continue
            if batch.first_seq > expected:
                return rows, [f"ack log {path} jumps from seq {expected - 1} to {batch.first_seq}"]
            rows.extend(row for row in batch.rows() if row[0] >= expected)
            expected = batch.last_seq + 1
        if damaged_at is None:
            continue
        if any(_holds_anything(later) for later in files[index + 1 :]):
            return rows, [
                f"ack log {path} is damaged at byte {damaged_at} although newer log files follow"
            ]
        if _intact_record_after(data, damaged_at):
            return rows, [
                f"ack log {path} is damaged at byte {damaged_at} although intact records follow"
            ]
    return rows, []


def restore_into(con: duckdb.DuckDBPyConnection, journal_path: str | Path) -> int:
    """Commit to the journal the logged events after its last seq, then delete the log; returns
    how many. A damaged record at the end of the newest file is the unsynced write a crash cut
    short (a sync covers every write before it, so nothing after an unsynced one was synced).
    Damage anywhere else, or a gap, may have taken acknowledged events: a RecoveryError naming
    it, with nothing changed, so the operator decides (moving the log aside starts without
    the events it holds)."""
    files = log_files(acklog_dir(journal_path))
    if not files:
        return 0
    last_seq = int(con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
    rows, problems = _plan(files, last_seq)
    if not problems and (torn := torn_tail(journal_path)) is not None:
        log.warning("journal %s: %s", journal_path, torn)
    if problems:
        raise RecoveryError(
            f"journal {journal_path} is damaged: {problems[0]}; events it acknowledged after "
            f"seq {last_seq + len(rows)} may be lost, so nothing was restored or changed. After "
            "a power loss those events were never acknowledged; to start without the log's "
            f"events, move {acklog_dir(journal_path)} aside"
        )
    if rows:
        cur = con.cursor()
        try:
            appender = cur.appender("events", columns=list(EVENT_COLUMNS))
            appender.append_rows(rows)
            appender.flush()
        finally:
            cur.close()
    for path in files:
        path.unlink(missing_ok=True)
    return len(rows)
