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
the logged events it lacks, then deletes the files (acklog_read.py reads them back).

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

from tradelab.errors import JournalError
from tradelab.journal.journal_file import open_own_file
from tradelab.journal.segments import sidecar_base

log = logging.getLogger(__name__)
MAGIC = b"TLAK"
RECORD_HEAD = struct.Struct(
    "<4sIqqI"
)  # magic, crc32(seqs + length + body), first seq, last seq, length
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


def record_crc(first: int, last: int, body: bytes) -> int:
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
    fd = open_own_file(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
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
        record = (
            RECORD_HEAD.pack(MAGIC, record_crc(first, last, body), first, last, len(body)) + body
        )
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
