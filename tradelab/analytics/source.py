"""Where analytics reads a journal from: the file itself, or its sealed segments while it is held.

`open_source` returns an in-memory DuckDB connection in which `_events` and `snapshots` name the
journal's tables: the file attached read-only when no engine holds it, else the sealed Parquet
segments (every event up to the last sealed seq). DuckDB's lock error never reaches the caller:
it becomes `Source.note`, which says how current the data is. No threads; one connection per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from tradelab.errors import JournalError
from tradelab.journal import acklog_read, journal_file, schema
from tradelab.journal.segments import list_segments, parquet_list, segment_dir

_EMPTY_EVENTS = (
    "SELECT CAST(NULL AS BIGINT) AS seq, CAST(NULL AS BIGINT) AS ts, CAST(NULL AS VARCHAR) AS "
    "topic, CAST(NULL AS VARCHAR) AS key, CAST(NULL AS BOOLEAN) AS critical, CAST(NULL AS "
    "INTEGER) AS schema_version, CAST(NULL AS VARCHAR) AS payload WHERE false"
)
_EMPTY_SNAPSHOTS = (
    "SELECT CAST(NULL AS BIGINT) AS id, CAST(NULL AS BIGINT) AS last_seq, CAST(NULL AS BIGINT) "
    "AS created, CAST(NULL AS INTEGER) AS schema_version, CAST(NULL AS VARCHAR) AS sha256, "
    "CAST(NULL AS VARCHAR) AS state WHERE false"
)


# The events table's columns (schema.TABLE_COLUMNS), as Arrow types.
_EVENT_TYPES = (
    pa.int64(),
    pa.int64(),
    pa.string(),
    pa.string(),
    pa.bool_(),
    pa.int32(),
    pa.string(),
)


@dataclass
class Source:
    """An open connection over one journal, and what it can see."""

    con: duckdb.DuckDBPyConnection
    kind: str  # "journal" (the file, complete) or "segments" (sealed events only)
    last_seq: int
    note: str

    def close(self) -> None:
        self.con.close()


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _in_use(exc: BaseException) -> bool:
    # Held by another process (a lock error) or attached by this one already (an engine with
    # its writer on a thread, or another connection): either way the segments are the road.
    return journal_file.is_in_use_error(exc) or isinstance(exc, duckdb.ResourceInUseException)


def _with_acknowledged(con: duckdb.DuckDBPyConnection, path: Path, last: int) -> Source:
    """The journal's events, and after them those its ack log holds past its last seq: an
    engine killed before committing them acknowledged them (fills among them), and its next
    start commits them; read here as that start will, said in the note."""
    rows = acklog_read.pending_rows(path, last)
    if not rows:
        con.execute("CREATE VIEW _events AS SELECT * FROM journal.events")
        return Source(con, "journal", last, "")
    columns = list(zip(*rows, strict=True))
    table = pa.table(
        [pa.array(values, type=kind) for values, kind in zip(columns, _EVENT_TYPES, strict=True)],
        names=list(schema.TABLE_COLUMNS["events"]),
    )
    # A table of the database, not a registration: those are the connection's own, and
    # replays read through cursors (new connections to the same database).
    con.register("_acknowledged_arrow", table)
    con.execute("CREATE TABLE _acknowledged AS SELECT * FROM _acknowledged_arrow")
    con.unregister("_acknowledged_arrow")
    con.execute(
        "CREATE VIEW _events AS SELECT * FROM journal.events UNION ALL SELECT * FROM _acknowledged"
    )
    newest = rows[-1][0]
    note = (
        f"journal {path.name} ends at seq {last}; the {len(rows)} acknowledged event(s) after "
        f"it, up to seq {newest}, are read from its ack log (its engine stopped before "
        "committing them; its next start commits them)"
    )
    return Source(con, "journal", newest, note)


def open_source(path: str | Path) -> Source:
    """A connection where `_events` and `snapshots` are the journal's, from the best source."""
    path = Path(path)
    segments_dir = segment_dir(path)
    if not path.exists() and not segments_dir.is_dir():
        raise JournalError(f"no journal at {path} and no sealed segments in {segments_dir}")
    con = duckdb.connect(config=journal_file.NO_EXTENSIONS)
    try:
        if path.exists():
            try:
                con.execute(f"ATTACH {_sql_string(str(path))} AS journal (READ_ONLY)")
            except duckdb.Error as exc:
                # Read only after DuckDB refused it: closing a descriptor of the file would
                # drop the lock an engine of this process holds on it (POSIX locks).
                if path.is_file() and (why := journal_file.not_duckdb_file(path)):
                    raise JournalError(why) from None
                if not _in_use(exc):
                    raise JournalError(
                        f"cannot read journal {path}: {str(exc).strip().splitlines()[0]}"
                    ) from None
            else:
                try:
                    con.execute("CREATE VIEW snapshots AS SELECT * FROM journal.snapshots")
                    last = con.execute(
                        "SELECT coalesce(max(seq), 0) FROM journal.events"
                    ).fetchall()[0][0]
                except duckdb.Error as exc:
                    raise JournalError(
                        f"{path} is not a readable tradelab journal (no events or snapshots "
                        f"table): {str(exc).strip().splitlines()[0]}"
                    ) from None
                return _with_acknowledged(con, path, int(last))
        segments = list_segments(segments_dir)
        con.execute(f"CREATE VIEW snapshots AS {_EMPTY_SNAPSHOTS}")
        if segments:
            files = parquet_list(segments)
            con.execute(f"CREATE VIEW _events AS SELECT * FROM read_parquet({files})")
            last = segments[-1][1]
            why = (
                "is in use by a running engine"
                if path.exists()
                else f"is missing (only its segments are left in {segments_dir})"
            )
            note = (
                f"journal {path.name} {why}; reading its {len(segments)} sealed segment(s), "
                f"events up to seq {last}"
            )
            return Source(con, "segments", last, note)
        con.execute(f"CREATE VIEW _events AS {_EMPTY_EVENTS}")
        note = (
            f"journal {path.name} is in use by a running engine and has no sealed segment yet; "
            "its events appear here once the engine seals its first one"
        )
        return Source(con, "segments", 0, note)
    except BaseException:
        con.close()
        raise
