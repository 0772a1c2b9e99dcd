"""Opening a journal file, and what its failures mean.

Every DuckDB failure to open or read a file is mapped to an error that names the path: damage
(garbage or a truncated file) is a `RecoveryError`; a held lock, no permission or another
program's database is a `JournalError`. No threads here; callers own the connection they get
back. The tables inside the file are schema.py's.
"""

from __future__ import annotations

import errno
import os
import re
import time
from pathlib import Path

import duckdb

from tradelab.errors import InvalidInputError, JournalError, JournalInUseError, RecoveryError

LOCK_HINT = (
    "DuckDB lets one process hold a file read-write or many read-only, never both: stop that "
    "engine first, or use another journal; to read this one while it runs, "
    "tradelab.journal.JournalReader reads its sealed Parquet segments"
)


# No extension is downloaded or loaded behind the user's back: handed a SQLite file (the paper
# broker's account sits beside the journal), DuckDB would otherwise fetch sqlite_scanner from
# the network to open it.
NO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
_SQLITE_MAGIC = b"SQLite format 3\x00"


def not_duckdb_file(path: Path) -> str:
    """Why `path` (an existing file) cannot be a DuckDB file, or '' when its header says it is:
    a reader told "Catalog Error: Cannot launch in-memory database" cannot tell what it opened.
    Only for a file DuckDB did not open in this process (see `_file_backed`)."""
    with path.open("rb") as data:
        head = data.read(16)
    if head[8:12] == b"DUCK":  # DuckDB's magic bytes, after the header's checksum
        return ""
    if head == _SQLITE_MAGIC:
        return sqlite_not_a_journal(path)
    if path.suffix.lower() in ("", ".duckdb", ".db"):
        return f"{path} does not start as a DuckDB file does: it is damaged, or not a journal"
    return (
        f"{path} is a {path.suffix[1:].upper()} file, not a journal (a journal is the DuckDB "
        "file an engine writes)"
    )


def sqlite_not_a_journal(path: Path) -> str:
    return (
        f"{path} is a SQLite database, not a journal (a journal is the DuckDB file an engine "
        "writes; the paper broker's account beside it is the SQLite one)"
    )


def is_sqlite_file(path: Path) -> bool:
    try:
        with path.open("rb") as data:
            return data.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


def is_damage(exc: BaseException) -> bool:
    """Whether DuckDB failed on a damaged file (a block whose checksum does not match), as
    itself or in the error that carried it on: what is in it cannot be read back, whatever is
    retried."""
    return "Corrupt database file" in str(exc)


def refuse_if_damaged(exc: BaseException, journal: str | Path, what: str) -> None:
    """A RecoveryError when `exc`, met reading `what` from `journal`, is the file's damage: a
    session must not start appending to it (other read errors are the caller's to handle)."""
    if is_damage(exc):
        raise RecoveryError(
            f"journal {journal} is damaged: reading its {what} failed: {exc}; "
            "`tradelab verify` says what is whole"
        ) from None


def is_lock_error(exc: BaseException) -> bool:
    # The word, not the letters: a corrupt file's message speaks of a "block".
    return isinstance(exc, duckdb.Error) and re.search(r"\block\b", str(exc).lower()) is not None


def is_in_use_error(exc: BaseException) -> bool:
    """The file is held by a writer: another process (a lock error) or this one (DuckDB refuses
    a read-only connection beside this process's read-write one: "different configuration")."""
    return is_lock_error(exc) or (
        isinstance(exc, duckdb.Error) and "different configuration" in str(exc)
    )


def is_interrupt(exc: BaseException) -> bool:
    """A Ctrl-C that reached DuckDB while it ran a query: it raises this instead of the
    KeyboardInterrupt, and it says nothing about the file."""
    return isinstance(exc, duckdb.InterruptException) or (
        isinstance(exc, RuntimeError) and "query interrupted" in str(exc).lower()
    )


def journal_error(path: str | Path, exc: BaseException, doing: str) -> JournalError:
    """The error for a DuckDB failure on journal `path` while `doing` something.

    A failure of the surroundings (a held lock, no permission, a full disk) is a JournalError;
    any other failure to read a file that opened is damage: a RecoveryError ("damaged"). A
    Ctrl-C DuckDB caught mid-query is raised again as the KeyboardInterrupt it was.
    """
    if is_interrupt(exc):
        raise KeyboardInterrupt from None
    text = _first_line(exc)
    lowered = str(exc).lower()
    if is_in_use_error(exc):
        return JournalInUseError(f"journal {path} is in use by another engine ({LOCK_HINT})")
    if any(word in lowered for word in _ENVIRONMENT_WORDS):
        return JournalError(f"journal {path}: {doing} failed: {text}")
    return RecoveryError(f"journal {path} is damaged: {doing} failed: {text}")


_ENVIRONMENT_WORDS = ("permission denied", "no space left", "read-only file system", "quota")


def make_journal_dir(path: Path) -> None:
    """Create the folder of journal `path` (and its parents) if missing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalError(
            f"cannot create the journal directory {path.parent}: {exc.strerror or exc}"
        ) from None


def check_journal_path(path: str | Path) -> Path:
    """`path` as a Path, if it can name a journal file: not empty, not a directory."""
    if not str(path).strip():  # Path("") is the current directory
        raise InvalidInputError("journal path is empty; expected the path of a DuckDB file")
    path = Path(path)
    if path.is_dir():
        raise JournalError(f"journal path {path} is a directory; expected a DuckDB file")
    return path


def connect(
    path: str | Path, *, read_only: bool = False, timeout: float = 0.0
) -> duckdb.DuckDBPyConnection:
    """Open a journal file; retry a held lock for up to `timeout` seconds, then explain it."""
    path = Path(path)
    if read_only and not path.exists():
        raise JournalError(f"journal {path} does not exist")
    if not read_only:
        path = check_journal_path(path)
        make_journal_dir(path)
        wal = path.with_name(path.name + ".wal")
        if wal.is_symlink():  # DuckDB would write its log through it (see open_own_file)
            raise JournalError(
                f"{wal} is a symbolic link; tradelab writes its own files only, not through a "
                f"link (remove it to open journal {path})"
            )
        if path.is_file() and path.stat().st_size == 0:
            # An empty file (a `touch`, a temp file) holds nothing; DuckDB refuses to open it.
            # (Journal refuses one beside an earlier journal's files before it gets here.)
            path.unlink()
    new = not path.exists()
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _file_backed(
                duckdb.connect(str(path), read_only=read_only, config=NO_EXTENSIONS), path
            )
        except duckdb.Error as exc:
            if is_lock_error(exc):
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise JournalInUseError(
                    f"journal {path} is {_held_by(exc)} ({LOCK_HINT})"
                ) from None
            if "in-memory database" in str(exc):  # read-only, given a file of another kind
                raise _not_a_database(path) from None
            if new and not path.exists():  # nothing there to be damaged: it was not made
                raise JournalError(f"cannot create journal {path}: {_first_line(exc)}") from None
            if path.is_file() and is_sqlite_file(path):  # not damage: another kind of file
                raise JournalError(sqlite_not_a_journal(path)) from None
            error = journal_error(path, exc, "opening it")
            if isinstance(error, RecoveryError):
                error = RecoveryError(
                    f"cannot open journal {path}: it is damaged or not a DuckDB file: "
                    f"{_first_line(exc)}"
                )
            raise error from None


def _held_by(exc: BaseException) -> str:
    """Who holds the lock, as DuckDB names it ("... held in <program> (PID n)"): an engine of
    this very process (its journal writer is a child process) is told apart, since "another
    process" sends a notebook user looking for one that does not exist."""
    import os

    import psutil

    found = re.search(r"\(PID (\d+)\)", str(exc))
    if found is None:
        return "locked by another process"
    pid = int(found.group(1))
    try:
        ours = pid == os.getpid() or pid in {p.pid for p in psutil.Process().children()}
    except psutil.Error:
        ours = False
    if ours:
        return (
            f"held by an engine running in this process (its journal writer, PID {pid}): stop "
            "that engine (or Lab) first, or use another journal"
        )
    return f"locked by another process ({describe_process(pid)})"


def describe_process(pid: int) -> str:
    """`PID n: its command`, and for a journal writer process the engine it writes for:
    killing the writer named alone would take the running engine's journal down with it."""
    import psutil

    try:
        process = psutil.Process(pid)
        command = " ".join(process.cmdline())
        if "tradelab.journal.writer_process" not in command:
            return f"PID {pid}: {command[:120]}" if command else f"PID {pid}"
        engine = process.parent()
        command = " ".join(engine.cmdline())[:120] if engine is not None else "?"
        owner = f"PID {engine.pid}: {command}" if engine is not None else "an engine"
        return f"PID {pid}, the journal writer of {owner}"
    except psutil.Error:
        return f"PID {pid}"


def _file_backed(con: duckdb.DuckDBPyConnection, path: Path) -> duckdb.DuckDBPyConnection:
    """`con`, if DuckDB opened `path` as a database file. Given another kind of file (a CSV) it
    opens an empty in-memory database instead: the writer would find no table to append to and
    every event would be lost. Checked on the connection, not by reading the file's header
    here: closing any descriptor of a file drops the POSIX locks this process holds on it, so
    an engine of this process holding the journal would lose its lock."""
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    if row is not None and row[0] is not None:
        return con
    con.close()
    raise _not_a_database(path)


def _not_a_database(path: Path) -> JournalError:
    why = not_duckdb_file(path)  # DuckDB holds no lock on it: it did not open it as a file
    damaged = path.suffix.lower() in ("", ".duckdb", ".db")
    return (RecoveryError if damaged else JournalError)(
        f"journal {why or f'{path} is not a DuckDB database file'}"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_own_file(path: Path, flags: int, mode: int = 0o644) -> int:
    """`os.open` of a file tradelab keeps beside a journal (lock, high-water mark, ack log),
    never through a symbolic link: one placed there (by another user of a shared folder) would
    have tradelab truncate or overwrite whatever it points at. OSError as os.open raises it;
    a link is an OSError saying so."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(
                exc.errno,
                f"{path} is a symbolic link; tradelab writes its own files only, not through a "
                "link (remove it)",
            ) from None
        raise
