"""The journal's engine lock: an exclusive `flock` on `<journal>.lock`, held for a Journal's life.

DuckDB's own file lock cannot keep a second engine out: the engine closes its connection to
hand the file to its writer process, and in that gap another engine could open and recover
the same journal. This lock is taken before DuckDB opens the file and kept until the journal
closes. `flock`, not POSIX (`fcntl`/`lockf`) locks: those are dropped when any descriptor of
the file closes, and do not conflict within one process. The kernel releases it when the
holder dies. No threads; the holder's PID is written into the file to name it in refusals.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path

from tradelab.errors import JournalError, JournalInUseError
from tradelab.journal.journal_file import open_own_file

_RETRY_SECONDS = 0.05


def journal_lock_path(journal_path: str | Path) -> Path:
    """Beside the file the path leads to: a symlink to a journal locks that journal."""
    journal_path = Path(journal_path).resolve()
    return journal_path.with_name(journal_path.name + ".lock")


class JournalLock:
    """The engine lock of one journal, held from `acquire` to `release`."""

    def __init__(self, journal_path: Path, fd: int) -> None:
        self.journal_path = journal_path
        self.path = journal_lock_path(journal_path)
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, journal_path: str | Path, timeout: float = 0.0) -> JournalLock:
        """Lock `journal_path` for this engine, retrying for up to `timeout` seconds while
        another engine holds it; then a JournalError naming the holder."""
        journal_path = Path(journal_path)
        path = journal_lock_path(journal_path)
        deadline = time.monotonic() + timeout
        while True:
            fd = _open(journal_path, path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise JournalError(
                        f"cannot lock journal {journal_path}: locking {path} failed: "
                        f"{exc.strerror or exc}"
                    ) from None
                if time.monotonic() < deadline:
                    os.close(fd)
                    time.sleep(_RETRY_SECONDS)
                    continue
                holder = _holder_pid(fd)
                os.close(fd)
                raise JournalInUseError(_refusal(journal_path, holder)) from None
            if _same_file(fd, path):
                break
            # The holder removed the file as it released it: this lock guards nothing now.
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:  # a full disk: the lock is given back, and its file goes
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)
            raise JournalError(
                f"cannot lock journal {journal_path}: writing {path} failed: "
                f"{exc.strerror or exc}; free space on its disk"
            ) from None
        return cls(journal_path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file, then unlock (a waiting engine then finds the file gone and
        makes a new one: `_same_file`). Idempotent."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if _same_file(self._fd, self.path):
                self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:
        # A Journal dropped unclosed frees its journal, as DuckDB frees the file it held.
        if self._fd is not None:
            os.close(self._fd)


def _open(journal_path: Path, path: Path) -> int:
    try:
        return open_own_file(path, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        raise JournalError(
            f"cannot create journal {journal_path}: cannot create its lock file {path}: "
            f"{exc.strerror or exc}; the journal's folder must be a writable directory"
        ) from None


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except OSError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _holder_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _refusal(journal_path: Path, pid: int | None) -> str:
    """The refusal, naming the engine that holds the journal (as schema's DuckDB lock errors
    do): one of this very process is told apart from another process's."""
    from tradelab.journal.journal_file import LOCK_HINT, describe_process

    if pid == os.getpid():
        return (
            f"journal {journal_path} is held by an engine running in this process (PID {pid}): "
            "stop that engine (or Lab) first, or use another journal"
        )
    holder = f" ({describe_process(pid)})" if pid is not None else ""
    return f"journal {journal_path} is locked by another process{holder} ({LOCK_HINT})"
