"""`Analytics`: SQL over one journal's events and derived views, and its state as of any point.

Each query opens the journal afresh (read-only, or its sealed segments while an engine holds it;
see source.py) and closes it before returning, so analytics never keeps an engine from starting.
`source`, `last_seq` and `note` say what the last query could see. A bad query is an
InvalidInputError naming the views it used and their columns. One `Analytics` per thread.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import numpy as np
import pandas as pd

from tradelab.analytics import views as view_defs
from tradelab.analytics.asof import AsOf, StateDiff
from tradelab.analytics.source import Source, open_source
from tradelab.errors import QueryError
from tradelab.market.instruments import IST
from tradelab.state import StateStore


class Analytics:
    """Analytics of the journal at `journal` (a DuckDB file; its segments are found beside it)."""

    def __init__(
        self,
        journal: str | Path,
        *,
        checkpoint_every: int = 10_000,
        max_checkpoints: int = 128,
    ) -> None:
        self.journal = Path(journal)
        self.asof = AsOf(
            self.journal,
            checkpoint_every=checkpoint_every,
            max_checkpoints=max_checkpoints,
            opened=self._saw,
        )
        self.source = ""
        self.last_seq = 0
        self.note = ""
        self._columns: dict[str, list[tuple[str, str]]] = {}

    # -- SQL ------------------------------------------------------------------------------------
    def _open(self) -> Source:
        source = open_source(self.journal)
        try:
            view_defs.install(source.con)
        except BaseException:
            source.close()
            raise
        self._saw(source)
        return source

    def _saw(self, source: Source) -> None:
        """What the last query, state or index could see (`source`, `last_seq`, `note`)."""
        self.source, self.last_seq, self.note = source.kind, source.last_seq, source.note

    def sql(self, query: str, params: list[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        """Run `query` (DuckDB SQL over the views listed by `views()`); a DataFrame back."""
        if not isinstance(query, str):
            raise QueryError(
                f"query {query!r} is a {type(query).__name__}, not SQL text; write SQL over "
                f"{self._view_list()}"
            )
        if not query.strip():
            raise QueryError(f"query {query!r} is empty; write SQL over {self._view_list()}")
        source = self._open()
        try:
            return source.con.execute(query, _plain_params(params)).df()
        except duckdb.Error as exc:
            raise self._query_error(source, query, exc) from None
        finally:
            source.close()

    def views(self) -> pd.DataFrame:
        """Every view: its name, what one row is, and its columns."""
        columns = self._view_columns()
        return pd.DataFrame(
            [
                (name, what, ", ".join(c for c, _ in columns[name]))
                for name, what in view_defs.PUBLIC_VIEWS.items()
            ],
            columns=["view", "row", "columns"],
        )

    def describe(self, view: str) -> pd.DataFrame:
        """The columns of `view` and their DuckDB types."""
        columns = self._view_columns()
        if view not in columns:
            raise QueryError(f"no view {view!r}; the views are {self._view_list()}")
        return pd.DataFrame(columns[view], columns=["column", "type"])

    def _view_columns(self, source: Source | None = None) -> dict[str, list[tuple[str, str]]]:
        if not self._columns:
            own = source is None
            source = source or self._open()
            try:
                rows = source.con.execute(
                    "SELECT table_name, column_name, data_type FROM duckdb_columns() "
                    "WHERE database_name = 'memory' ORDER BY table_name, column_index"
                ).fetchall()
            finally:
                if own:
                    source.close()
            for table, column, kind in rows:
                if table in view_defs.PUBLIC_VIEWS:
                    self._columns.setdefault(table, []).append((column, kind))
        return self._columns

    @staticmethod
    def _view_list() -> str:
        return ", ".join(view_defs.PUBLIC_VIEWS)

    def _query_error(self, source: Source, query: str, exc: duckdb.Error) -> QueryError:
        first = str(exc).strip().splitlines()[0]
        columns = self._view_columns(source)
        used = [v for v in columns if re.search(rf"\b{re.escape(v)}\b", query, re.IGNORECASE)]
        if used:
            shown = "; ".join(
                f"view '{v}' has columns: {', '.join(c for c, _ in columns[v])}" for v in used
            )
        else:
            shown = f"the views are {self._view_list()}"
        return QueryError(f"query failed: {first}; {shown}")

    # -- shortcuts ------------------------------------------------------------------------------
    def view(self, name: str, where: str = "") -> pd.DataFrame:
        """The rows of view `name` (optionally filtered by a SQL `where` condition)."""
        if name not in view_defs.PUBLIC_VIEWS:
            raise QueryError(f"no view {name!r}; the views are {self._view_list()}")
        return self.sql(f"SELECT * FROM {name}" + (f" WHERE {where}" if where else ""))

    def latency_stats(self) -> pd.DataFrame:
        """Count, p50, p90, p99 and max of each order latency (ms of journal time)."""
        parts = []
        for column in ("accept_ms", "first_fill_ms", "done_ms"):
            parts.append(
                f"SELECT '{column}' AS latency, count({column}) AS orders, "
                f"quantile_cont({column}, 0.5) AS p50, quantile_cont({column}, 0.9) AS p90, "
                f"quantile_cont({column}, 0.99) AS p99, max({column}) AS max FROM latency"
            )
        return self.sql(" UNION ALL ".join(parts))

    # -- as of ----------------------------------------------------------------------------------
    def state_at(
        self,
        seq: int | None = None,
        *,
        ts: int | str | datetime | pd.Timestamp | None = None,
        clock: str = "exchange",
    ) -> StateStore:
        """The store's state right after `seq` (or at time `ts`; see `AsOf.seq_at`)."""
        return self.asof.state_at(seq, ts=ts, clock=clock)

    def index(self) -> dict[str, Any]:
        """Keep checkpoints along the whole journal (one full replay) so that `state_at` any
        point replays at most `checkpoint_every` events; see `AsOf.index`."""
        return self.asof.index()

    def seq_at(self, ts: int | str | datetime | pd.Timestamp, clock: str = "exchange") -> int:
        return self.asof.seq_at(ts, clock)

    def diff(self, a: int | StateStore, b: int | StateStore) -> StateDiff:
        """Paths added, removed and changed from point `a` to point `b` (seqs or stores)."""
        return self.asof.diff(a, b)


# ISO time text with its zone, in the forms DuckDB's cast takes (and drops the zone of):
# "2025-11-18T03:55:00Z", "... 09:25:00+05:30", "...+00:00:00", "... 05:00:00 UTC",
# "... 06:00 Europe/London". Without a zone it stays text: IST, as the `time` columns are.
_TIME_WITH_ZONE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)\s*"
    r"(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?|[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*)$"
)
_ZONE_ALIASES = {"z": "UTC", "utc": "UTC", "gmt": "UTC", "ist": "Asia/Kolkata"}


def _ist_time(text: str) -> datetime | None:
    """The naive IST time `text` names when it is an ISO time with a zone (bound as a
    timestamp, as an aware datetime is); None for any other text, left as it is (a trailing
    word that is no time zone: "09:15 open")."""
    match = _TIME_WITH_ZONE.match(text)
    if match is None:
        return None
    when, zone_text = match.groups()
    zone: tzinfo
    if zone_text[0] in "+-":
        digits = zone_text[1:].replace(":", "").ljust(6, "0")
        offset = timedelta(
            hours=int(digits[:2]), minutes=int(digits[2:4]), seconds=int(digits[4:6])
        )
        zone = timezone(-offset if zone_text[0] == "-" else offset)
    else:
        try:
            zone = ZoneInfo(_ZONE_ALIASES.get(zone_text.lower(), zone_text))
        except (ValueError, ZoneInfoNotFoundError):
            return None  # not a zone: text, as written
    head, _, fraction = when.replace("T", " ").partition(".")
    try:
        local = datetime.fromisoformat(f"{head}.{fraction[:6]}" if fraction else head)
    except ValueError as exc:
        raise QueryError(f"query parameter {text!r} is not a time it can read: {exc}") from None
    return local.replace(tzinfo=zone).astimezone(IST).replace(tzinfo=None)


def _plain_params(params: list[Any] | dict[str, Any] | None) -> list[Any] | dict[str, Any]:
    """Query parameters with numpy scalars as Python's (DuckDB binds only the latter): a seq or
    a price read from one query's frame goes into the next as it is. A time with a zone is
    given as the naive IST time the views' `time` columns hold: DuckDB would convert it to
    the machine's zone, so the same query would answer differently from machine to machine."""
    if not params:
        return []
    if isinstance(params, dict):
        return {k: _plain_scalar(v) for k, v in params.items()}
    return [_plain_scalar(v) for v in params]


def _plain_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime) and value.tzinfo is not None:  # pandas' Timestamp too
        return pd.Timestamp(value).tz_convert(IST).tz_localize(None).to_pydatetime(warn=False)
    if isinstance(value, str):
        # DuckDB's cast of zoned text drops its zone: "03:55Z" would be read as 03:55 IST.
        ist = _ist_time(value)
        return value if ist is None else ist
    if isinstance(value, list | tuple):  # a list parameter's items, each as above
        return [_plain_scalar(item) for item in value]
    return value


def sql(query: str, journal: str | Path, params: list[Any] | None = None) -> pd.DataFrame:
    """One query over `journal`'s views: `Analytics(journal).sql(query)`."""
    return Analytics(journal).sql(query, params)
