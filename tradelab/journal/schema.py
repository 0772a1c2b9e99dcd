"""The journal's on-disk layout (tables, Arrow schema, format version) and how a file is opened.

Opening maps every DuckDB failure (garbage file, no permission, held lock, newer format) to a
`JournalError`/`SchemaVersionError` that names the path. No threads here; callers own the
connection they get back.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from tradelab.errors import JournalError, SchemaVersionError

# Version of the journal's table layout (not of event payloads, which carry their own).
JOURNAL_FORMAT_VERSION = 1

# The events table's columns, in table order (segments.events_arrow_schema gives their types).
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

LOCK_HINT = (
    "DuckDB lets one process hold a file read-write or many read-only, never both; while an "
    "engine runs, read its sealed Parquet segments with tradelab.journal.JournalReader"
)


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.Error) and "lock" in str(exc).lower()


def is_in_use_error(exc: BaseException) -> bool:
    """The file is held by a writer: another process (a lock error) or this one (DuckDB refuses
    a read-only connection beside this process's read-write one: "different configuration")."""
    return is_lock_error(exc) or (
        isinstance(exc, duckdb.Error) and "different configuration" in str(exc)
    )


def connect(
    path: str | Path, *, read_only: bool = False, timeout: float = 0.0
) -> duckdb.DuckDBPyConnection:
    """Open a journal file; retry a held lock for up to `timeout` seconds, then explain it."""
    path = Path(path)
    if read_only and not path.exists():
        raise JournalError(f"journal {path} does not exist")
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"cannot create the journal directory {path.parent}: {exc.strerror}"
            ) from None
        if path.is_dir():
            raise JournalError(f"journal path {path} is a directory; expected a DuckDB file")
    deadline = time.monotonic() + timeout
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            if is_lock_error(exc):
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise JournalError(
                    f"journal {path} is locked by another process ({LOCK_HINT})"
                ) from None
            raise JournalError(f"cannot open journal {path}: {_first_line(exc)}") from None


def ensure_schema(con: duckdb.DuckDBPyConnection, path: str | Path) -> None:
    """Create the tables of a new journal, or check that an old one is a format we can read."""
    try:
        for statement in _DDL:
            con.execute(statement)
        rows = con.execute(
            "SELECT value FROM meta WHERE name = 'journal_format_version'"
        ).fetchall()
        if not rows:
            con.execute(
                "INSERT INTO meta VALUES ('journal_format_version', ?), ('created_ns', ?)",
                [str(JOURNAL_FORMAT_VERSION), str(time.time_ns())],
            )
            return
    except duckdb.Error as exc:
        raise JournalError(f"journal {path} is not usable: {_first_line(exc)}") from None
    check_format_version(rows, path)


def check_format_version(rows: list[tuple], path: str | Path) -> int:
    try:
        found = int(rows[0][0])
    except (ValueError, IndexError):
        raise JournalError(
            f"journal {path} has an unreadable format version {rows!r}; expected an integer"
        ) from None
    if found > JOURNAL_FORMAT_VERSION:
        raise SchemaVersionError(
            f"journal {path} was written with journal format {found}; this tradelab reads up to "
            f"format {JOURNAL_FORMAT_VERSION} (upgrade tradelab to open it)"
        )
    return found


def read_format_version(con: duckdb.DuckDBPyConnection, path: str | Path) -> int:
    """Format version of a journal opened read-only (no tables are created)."""
    try:
        rows = con.execute(
            "SELECT value FROM meta WHERE name = 'journal_format_version'"
        ).fetchall()
    except duckdb.Error as exc:
        raise JournalError(f"journal {path} has no tradelab tables: {_first_line(exc)}") from None
    if not rows:
        raise JournalError(f"journal {path} has no format version in its meta table")
    return check_format_version(rows, path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
