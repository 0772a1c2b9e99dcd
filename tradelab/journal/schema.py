"""The journal's on-disk layout (tables, Arrow schema, format version) and how a file is opened.

Opening maps every DuckDB failure to an error that names the path: damage (garbage or truncated
file, a missing table or column) is a `RecoveryError`; a held lock, no permission or another
program's database is a `JournalError`; a newer format a `SchemaVersionError`. No threads here; callers own the
connection they get back.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import duckdb

from tradelab.errors import (
    InvalidInputError,
    JournalError,
    JournalInUseError,
    RecoveryError,
    SchemaVersionError,
)

# Version of the journal's table layout (not of event payloads, which carry their own).
JOURNAL_FORMAT_VERSION = 1

# The events table's columns, in table order (TABLE_COLUMNS gives their types; segments keep them).
EVENT_COLUMNS = ("seq", "ts", "topic", "key", "critical", "schema_version", "payload")

# No primary key and no index: seq order and uniqueness are the single writer's job and are
# checked on open; keys/indexes are where DuckDB WAL replay has had crash bugs.
_DDL = (
    "CREATE TABLE IF NOT EXISTS events (seq BIGINT, ts BIGINT, topic VARCHAR, key VARCHAR, "
    "critical BOOLEAN, schema_version INTEGER, payload VARCHAR)",
    "CREATE TABLE IF NOT EXISTS snapshots (id BIGINT, last_seq BIGINT, created BIGINT, "
    "schema_version INTEGER, sha256 VARCHAR, state VARCHAR)",
    "CREATE TABLE IF NOT EXISTS meta (name VARCHAR, value VARCHAR)",
)

# Each table's columns and DuckDB types, as `_DDL` creates them; an existing journal must match.
TABLE_COLUMNS = {
    "events": {
        "seq": "BIGINT",
        "ts": "BIGINT",
        "topic": "VARCHAR",
        "key": "VARCHAR",
        "critical": "BOOLEAN",
        "schema_version": "INTEGER",
        "payload": "VARCHAR",
    },
    "snapshots": {
        "id": "BIGINT",
        "last_seq": "BIGINT",
        "created": "BIGINT",
        "schema_version": "INTEGER",
        "sha256": "VARCHAR",
        "state": "VARCHAR",
    },
    "meta": {"name": "VARCHAR", "value": "VARCHAR"},
}

# A DuckDB size, as `SET wal_autocheckpoint` takes it. Strict, because the value ends up in a
# SET statement (which takes no bound parameters).
_WAL_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)")

LOCK_HINT = (
    "DuckDB lets one process hold a file read-write or many read-only, never both; while an "
    "engine runs, read its sealed Parquet segments with tradelab.journal.JournalReader"
)


def check_wal_autocheckpoint(value: object) -> str:
    """`value` if it is a DuckDB size such as "1GB" or "512 MiB"; InvalidInputError otherwise."""
    if not isinstance(value, str) or not _WAL_SIZE.fullmatch(value):
        raise InvalidInputError(
            f"wal_autocheckpoint {value!r} is not a size; expected a number and a unit "
            "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. '1GB'"
        )
    return value


def set_wal_autocheckpoint(con: duckdb.DuckDBPyConnection, value: object) -> None:
    """`SET wal_autocheckpoint` on `con`, after checking `value` (never pasted in unchecked)."""
    con.execute(f"SET wal_autocheckpoint = '{check_wal_autocheckpoint(value)}'")


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


def is_lock_error(exc: BaseException) -> bool:
    # The word, not the letters: a corrupt file's message speaks of a "block".
    return isinstance(exc, duckdb.Error) and re.search(r"\block\b", str(exc).lower()) is not None


def is_in_use_error(exc: BaseException) -> bool:
    """The file is held by a writer: another process (a lock error) or this one (DuckDB refuses
    a read-only connection beside this process's read-write one: "different configuration")."""
    return is_lock_error(exc) or (
        isinstance(exc, duckdb.Error) and "different configuration" in str(exc)
    )


def journal_error(path: str | Path, exc: BaseException, doing: str) -> JournalError:
    """The error for a DuckDB failure on journal `path` while `doing` something.

    A failure of the surroundings (a held lock, no permission, a full disk) is a JournalError;
    any other failure to read a file that opened is damage: a RecoveryError ("damaged").
    """
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


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """{table: {column: type}} of every table in the file's main schema, columns in order."""
    rows = con.execute(
        "SELECT c.table_name, c.column_name, c.data_type FROM duckdb_columns() c "
        "JOIN duckdb_tables() t ON t.database_name = c.database_name "
        "AND t.schema_name = c.schema_name AND t.table_name = c.table_name "
        "WHERE c.database_name = current_database() AND c.schema_name = 'main' "
        "ORDER BY c.table_name, c.column_index"
    ).fetchall()
    tables: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        tables.setdefault(table, {})[column] = data_type
    return tables


def _user_objects(con: duckdb.DuckDBPyConnection) -> list[str]:
    """What anyone made in the file: tables, views, sequences, macros, types and schemas, named
    as `schema.name`. A file holding any of them is someone's database, not a new journal."""
    rows = con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND NOT internal "
        "UNION ALL SELECT schema_name || '.' || view_name || ' (view)' FROM duckdb_views() "
        "WHERE database_name = current_database() AND NOT internal "
        "UNION ALL SELECT schema_name || '.' || sequence_name || ' (sequence)' "
        "FROM duckdb_sequences() WHERE database_name = current_database() "
        "UNION ALL SELECT schema_name || ' (schema)' FROM duckdb_schemas() "
        "WHERE database_name = current_database() AND NOT internal "
        "UNION ALL SELECT schema_name || '.' || function_name || ' (macro)' FROM duckdb_functions() "
        "WHERE database_name = current_database() AND NOT internal "
        "UNION ALL SELECT schema_name || '.' || type_name || ' (type)' FROM duckdb_types() "
        "WHERE database_name = current_database() AND NOT internal"
    ).fetchall()
    return sorted(name for (name,) in rows)


# A DuckDB file: its headers, then its blocks (measured: file size == headers + blocks x size;
# DuckDB may cut free blocks off the end, so only the used ones are counted).
_HEADER_BYTES = 3 * 4096


def _check_length(con: duckdb.DuckDBPyConnection, path: str | Path) -> None:
    """A file shorter than its blocks need was cut short: damage, found here at no cost, where
    a block past the cut would only fail when something reads it (the engine reads the newest
    snapshot and the tail; `verify` reads every block, a flipped byte included)."""
    row = con.execute("SELECT block_size, used_blocks FROM pragma_database_size()").fetchone()
    file = Path(path)
    if row is None or not file.is_file():
        return
    needed = _HEADER_BYTES + int(row[0]) * int(row[1])
    size = file.stat().st_size
    if size < needed:
        raise RecoveryError(
            f"journal {path} is damaged: it is {size:,} bytes, shorter than the {needed:,} its "
            f"{row[1]} blocks in use need (cut short)"
        )


def check_tables(con: duckdb.DuckDBPyConnection, path: str | Path) -> int:
    """The format version of the journal in `con`, after checking it has our tables as written.

    A DuckDB file with none of our tables is not a journal (JournalError: we never add tables to
    someone else's database); one with a table or column missing or changed is damaged
    (RecoveryError naming it); a newer format is a SchemaVersionError.
    """
    _check_length(con, path)
    try:
        tables = _tables(con)
        ours = [name for name in TABLE_COLUMNS if name in tables]
        if not ours:
            found = ", ".join(_user_objects(con)) or "none"
            raise JournalError(
                f"{path} is a DuckDB database but not a tradelab journal (its tables: {found}; "
                "no events, snapshots or meta); refusing to use it: choose another journal path"
            )
        for name, columns in TABLE_COLUMNS.items():
            if name not in tables:
                raise RecoveryError(f"journal {path} is damaged: its {name} table is missing")
            if tables[name] != columns:
                raise RecoveryError(
                    f"journal {path} is damaged: its {name} table has columns "
                    f"{_describe(tables[name])}; expected {_describe(columns)}"
                )
        rows = con.execute(
            "SELECT value FROM meta WHERE name = 'journal_format_version'"
        ).fetchall()
    except duckdb.Error as exc:
        raise journal_error(path, exc, "reading its tables") from None
    if not rows:
        raise RecoveryError(f"journal {path} is damaged: its meta table has no format version")
    return check_format_version(rows, path)


def _describe(columns: dict[str, str]) -> str:
    return "(" + ", ".join(f"{name} {kind}" for name, kind in columns.items()) + ")"


def ensure_schema(con: duckdb.DuckDBPyConnection, path: str | Path) -> None:
    """Create the tables of a new (empty) journal, or check an existing one (`check_tables`)."""
    try:
        empty = not _user_objects(con)
        if empty:
            # One transaction: a file never holds some of our tables but not the others.
            con.execute("BEGIN TRANSACTION")
            for statement in _DDL:
                con.execute(statement)
            con.execute(
                "INSERT INTO meta VALUES ('journal_format_version', ?), ('created_ns', ?)",
                [str(JOURNAL_FORMAT_VERSION), str(time.time_ns())],
            )
            con.execute("COMMIT")
            return
    except duckdb.Error as exc:
        raise journal_error(path, exc, "creating its tables") from None
    check_tables(con, path)


def check_format_version(rows: list[tuple], path: str | Path) -> int:
    try:
        found = int(rows[0][0])
    except (ValueError, IndexError, TypeError):
        raise RecoveryError(
            f"journal {path} has an unreadable format version {rows!r}; expected an integer"
        ) from None
    if found > JOURNAL_FORMAT_VERSION:
        raise SchemaVersionError(
            f"journal {path} was written with journal format {found}; this tradelab reads up to "
            f"format {JOURNAL_FORMAT_VERSION} (upgrade tradelab to open it)"
        )
    return found


def read_format_version(con: duckdb.DuckDBPyConnection, path: str | Path) -> int:
    """Format version of a journal opened read-only (no tables are created): `check_tables`."""
    return check_tables(con, path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
