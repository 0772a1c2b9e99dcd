"""what a corrupt block and a changed column type are called."""

from __future__ import annotations

import duckdb
import pytest

from tradelab.errors import JournalInUseError, RecoveryError
from tradelab.journal import schema
from tradelab.journal.journal_file import journal_error


def _corrupt_error(path):
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE events AS SELECT range AS seq, repeat('x', 200) AS payload FROM range(200000)"
    )
    con.execute("CHECKPOINT")
    con.close()
    with open(path, "r+b") as f:
        f.seek(3 * 4096 + 112)  # inside the first block after the headers
        f.write(b"\xff" * 4096)
    try:
        con = duckdb.connect(str(path), read_only=True)
        con.execute("SELECT sum(length(payload)) FROM events").fetchall()
    except duckdb.Error as exc:
        return exc
    pytest.fail("the corrupt block was not noticed")


def test_a_corrupt_block_is_damage_not_a_journal_in_use(tmp_path):
    exc = _corrupt_error(tmp_path / "j.duckdb")
    assert "block" in str(exc)  # DuckDB: "... checksum ... in block at location ..."
    error = journal_error(tmp_path / "j.duckdb", exc, "reading it")
    assert isinstance(error, RecoveryError) and not isinstance(error, JournalInUseError)


def test_a_journal_whose_column_changed_type_is_damaged(tmp_path):
    path = tmp_path / "j.duckdb"
    con = duckdb.connect(str(path))
    schema.ensure_schema(con, path)
    con.execute("ALTER TABLE events ALTER seq TYPE VARCHAR")
    with pytest.raises(RecoveryError, match="events table has columns"):
        schema.check_tables(con, path)
    con.close()
