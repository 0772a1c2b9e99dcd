"""`JournalReader`: read a journal's history from another process, even while an engine writes it.

DuckDB lets one process hold a file read-write OR many hold it read-only, never both, so a
notebook cannot open a running engine's `lab.duckdb`. The engine therefore seals its events
into Parquet segments (`<dir>/<stem>.segments/events-<first>-<last>.parquet`, `<stem>` the
name less `.duckdb`; written to a temporary name then renamed, every `segment_every_events` events or `segment_every_seconds`,
and on stop). The reader:

* when the journal file can be opened read-only (no engine running), reads it directly
  (`source == "journal"`: everything, plus the snapshots table);
* when the file is held by a running engine (in another process, or in this one: a notebook that
  runs a Lab and queries its journal), reads the sealed segments with an in-memory
  DuckDB (`source == "segments"`: everything up to the last sealed seq, typically seconds old);
  it never lets DuckDB's "Conflicting lock" error reach the caller.

Each query resolves the source afresh and holds the file only for the query's duration, so a
reader never keeps an engine from starting (the engine also retries a briefly held lock). Not
shared between threads: make one reader per thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from tradelab.errors import InvalidInputError, JournalError
from tradelab.events import Event
from tradelab.journal import journal_file

if TYPE_CHECKING:
    import pandas as pd
from tradelab.journal.event_rows import rows_to_events
from tradelab.journal.schema import events_table_problem
from tradelab.journal.segments import list_segments, parquet_list, segment_dir

_EMPTY_EVENTS = (
    "SELECT CAST(NULL AS BIGINT) AS seq, CAST(NULL AS BIGINT) AS ts, CAST(NULL AS VARCHAR) AS "
    "topic, CAST(NULL AS VARCHAR) AS key, CAST(NULL AS BOOLEAN) AS critical, CAST(NULL AS "
    "INTEGER) AS schema_version, CAST(NULL AS VARCHAR) AS payload WHERE false"
)


class JournalReader:
    """SQL over a journal's `events` (and, when not locked, `snapshots`) from any process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.segments_dir = segment_dir(self.path)
        self.source = ""
        self.note = ""
        if not self.path.exists() and not self.segments_dir.is_dir():
            raise JournalError(
                f"no journal at {self.path} and no sealed segments in {self.segments_dir}"
            )

    def _open(self) -> duckdb.DuckDBPyConnection:
        """A connection in which `events` names the journal's events, from the best source."""
        if self.path.exists():
            try:
                con = duckdb.connect(
                    str(self.path), read_only=True, config=journal_file.NO_EXTENSIONS
                )
            except duckdb.Error as exc:
                # Read only after DuckDB refused it: closing a descriptor of the file would
                # drop the lock an engine of this process holds on it (POSIX locks).
                if self.path.is_file() and (why := journal_file.not_duckdb_file(self.path)):
                    raise JournalError(why) from None
                if not journal_file.is_in_use_error(exc):
                    raise JournalError(
                        f"cannot read journal {self.path}: {str(exc).splitlines()[0]}"
                    ) from None
            else:
                why = events_table_problem(con, self.path)
                if why:
                    con.close()
                    raise JournalError(why)
                self.source, self.note = "journal", ""
                return con
        con = duckdb.connect(config=journal_file.NO_EXTENSIONS)
        segments = list_segments(self.segments_dir)
        if segments:
            files = parquet_list(segments)
            try:  # reads the segments' footers: a damaged one fails here
                con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet({files})")
            except duckdb.Error as exc:
                con.close()
                raise JournalError(
                    f"cannot read the sealed segments of journal {self.path} (it is in use by "
                    f"a running engine): {str(exc).splitlines()[0]}"
                ) from None
            self.note = (
                f"journal file is in use by a running engine; reading {len(segments)} sealed "
                f"segment(s) up to seq {segments[-1][1]}"
            )
        else:
            con.execute(f"CREATE VIEW events AS {_EMPTY_EVENTS}")
            self.note = (
                "journal file is in use by a running engine and no segment is sealed yet; "
                "events appear here once the engine seals its first segment"
            )
        self.source = "segments"
        return con

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        """Run SQL where `events` is the journal's events table; return all rows."""
        return self._run(sql, params, lambda result: result.fetchall())

    def scan(
        self,
        sql: str,
        on_rows: Callable[[list[tuple]], object],
        params: list[Any] | None = None,
        batch_rows: int = 10_000,
    ) -> None:
        """Like `query`, handing the rows to `on_rows` a batch at a time: a whole journal is
        never held in memory at once."""

        def each_batch(result: Any) -> None:
            while rows := result.fetchmany(batch_rows):
                on_rows(rows)

        self._run(sql, params, each_batch)

    def df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Like `query`, as a pandas DataFrame."""
        return self._run(sql, params, lambda result: result.df())

    def _run(self, sql: str, params: list[Any] | None, fetch: Any) -> Any:
        con = self._open()
        try:
            return fetch(con.execute(sql, params or []))
        except duckdb.CatalogException as exc:
            raise JournalError(
                f"{exc}; with source {self.source!r} only the tables of that source exist"
            ) from None
        except duckdb.Error as exc:  # bad SQL: DuckDB's first line says what is wrong
            raise JournalError(
                f"query failed: {str(exc).splitlines()[0]}{self._maybe_damaged()}"
            ) from None
        finally:
            con.close()

    def _maybe_damaged(self) -> str:
        if self.source != "segments":
            return ""
        return (
            " (read from the running engine's sealed segments: one may be damaged; "
            "`tradelab verify` checks every block once the engine has stopped)"
        )

    def last_seq(self) -> int:
        return int(self.query("SELECT coalesce(max(seq), 0) FROM events")[0][0])

    def count(self) -> int:
        return int(self.query("SELECT count(*) FROM events")[0][0])

    def counts_by_topic(self) -> dict[str, int]:
        rows = self.query("SELECT topic, count(*) FROM events GROUP BY topic ORDER BY topic")
        return {topic: int(n) for topic, n in rows}

    def events(
        self, since_seq: int = 0, limit: int | None = None, topic: str | None = None
    ) -> list[Event]:
        """Events after `since_seq` in seq order (optionally one topic, at most `limit`)."""
        sql = (
            "SELECT seq, ts, topic, key, critical, schema_version, payload FROM events "
            "WHERE seq > ?"
        )
        params: list[Any] = [since_seq]
        if topic is not None:
            sql += " AND topic = ?"
            params.append(topic)
        sql += " ORDER BY seq"
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise InvalidInputError(f"limit must be a whole number >= 0, not {limit!r}")
            sql += f" LIMIT {limit}"
        con = self._open()
        try:
            return rows_to_events(con.sql(sql, params=params).to_arrow_table())
        except duckdb.Error as exc:  # a damaged segment or block: said in one line
            raise JournalError(
                f"reading the events of journal {self.path} failed: {str(exc).splitlines()[0]}"
                f"{self._maybe_damaged()}"
            ) from None
        finally:
            con.close()
