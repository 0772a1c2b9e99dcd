"""The journal's on-disk layout: its tables, their columns and the format version.

A file that opened is checked here: a missing table or column is a `RecoveryError`, a DuckDB
file with none of our tables a `JournalError`, a newer format a `SchemaVersionError`. Opening
the file itself is journal_file.py's.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import duckdb

from tradelab.errors import InvalidInputError, JournalError, RecoveryError, SchemaVersionError
from tradelab.journal.journal_file import journal_error

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


def events_table_problem(con: duckdb.DuckDBPyConnection, path: str | Path) -> str:
    """Why the file in `con` holds no readable journal events table ('' when it does): a
    reader asks before its queries, so a database of someone else's with a table named
    `events` is refused naming it, not read as a journal or failed by a column it lacks."""
    found = _tables(con).get("events")
    if found is None:
        return f"{path} is not a tradelab journal (no events table)"
    if found != TABLE_COLUMNS["events"]:
        return (
            f"{path} is not a tradelab journal, or a damaged one: its events table has columns "
            f"{_describe(found)}; expected {_describe(TABLE_COLUMNS['events'])}"
        )
    return ""


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
