"""A DuckDB file of someone else's that has a table named `events` is refused as a journal by
every reader, naming the file and its columns."""

from __future__ import annotations

import duckdb
import pytest

from tradelab.errors import JournalError
from tradelab.journal.reader import JournalReader
from tradelab.runner.tradelog import export_trades_csv


def test_a_foreign_events_table_is_not_read_as_a_journal(tmp_path):
    path = tmp_path / "mine.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE events (id INTEGER, name VARCHAR)")
        con.execute("INSERT INTO events VALUES (1, 'x')")
    said = r"not a tradelab journal.*events table has columns \(id INTEGER, name VARCHAR\)"
    reader = JournalReader(path)
    with pytest.raises(JournalError, match=said):
        reader.df("SELECT * FROM events")  # answered from the foreign table before
    with pytest.raises(JournalError, match=said):
        reader.events()
    with pytest.raises(JournalError, match=said):
        export_trades_csv(path, tmp_path / "trades.csv")
    assert not (tmp_path / "trades.csv").exists()
