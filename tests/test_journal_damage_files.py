"""Files that are not journals, and journal paths or side folders that cannot be used."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
from test_backtest import write_bars

from tests.damaged_journal import EVENTS, _assert_clear_failure, _cli, _run, _sql
from tradelab.cli import EXIT_UNUSABLE
from tradelab.config import EngineConfig
from tradelab.engine import Engine
from tradelab.errors import InvalidInputError, JournalError, RecoveryError
from tradelab.journal import Journal
from tradelab.journal.journal_file import connect
from tradelab.journal.schema import set_wal_autocheckpoint


@pytest.mark.parametrize(
    ("made", "named"),
    [
        (("CREATE TABLE prices (symbol VARCHAR, price DOUBLE)",), "main.prices"),
        # Taken for an empty file, these had tradelab's tables added beside them.
        (("CREATE VIEW prices AS SELECT 'A' AS symbol, 1.0 AS price",), "main.prices (view)"),
        (("CREATE SCHEMA research", "CREATE TABLE research.fills (id INT)"), "research.fills"),
        (("CREATE MACRO add_one(a) AS a + 1",), "main.add_one (macro)"),
    ],
)
def test_run_refuses_a_duckdb_file_that_is_not_a_journal(tmp_path, made, named):
    path = tmp_path / "prices.duckdb"
    _sql(path, *made)
    objects = (
        "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()"
    )
    before = sorted(_sql(path, objects)[0])
    with pytest.raises(JournalError, match="not a tradelab journal"):
        Journal(path)
    for command in (_run(path), _cli("inspect", path), _cli("verify", path)):
        _assert_clear_failure(command, EXIT_UNUSABLE, str(path), "not a tradelab journal", named)
    assert sorted(_sql(path, objects)[0]) == before  # nothing of ours added


def test_a_file_of_another_kind_is_refused_as_a_journal_and_left_as_it_was(tmp_path):
    """DuckDB opens a CSV as an empty in-memory database: taken for a journal, every event
    of the session went nowhere while the run said it stopped cleanly."""
    path = tmp_path / "lab.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(JournalError, match="is a CSV file, not a journal"):
        Engine(journal_path=str(path)).start()
    for command in (_run(path), _cli("inspect", path), _cli("verify", path)):
        _assert_clear_failure(command, EXIT_UNUSABLE, str(path), "is a CSV file, not a journal")
    assert path.read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.csv"]


@pytest.mark.parametrize("name", ["lab.duckdb.broker.sqlite", "account.duckdb"])
def test_a_sqlite_file_is_refused_as_a_journal_with_no_extension_fetched_and_left_as_it_was(
    tmp_path, monkeypatch, name
):
    """The paper broker's account (SQLite) sits beside the journal: handed it, DuckDB fetched a
    SQLite extension from the network, and the file was called damaged (exit 1)."""
    import sqlite3

    path = tmp_path / name
    with sqlite3.connect(path) as account:
        account.execute("CREATE TABLE orders (id TEXT)")
    before = path.read_bytes()
    monkeypatch.setenv("HOME", str(tmp_path))  # where DuckDB keeps the extensions it fetches
    for command in (_run(path), _cli("inspect", path), _cli("verify", path)):
        _assert_clear_failure(command, EXIT_UNUSABLE, str(path), "is a SQLite database, not a")
    with pytest.raises(JournalError, match="is a SQLite database, not a journal"):
        Engine(journal_path=str(path)).start()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no extension, no sidecar


def test_an_emptied_journal_beside_its_history_is_refused_not_started_over(journal):
    journal.write_bytes(b"")  # truncated to nothing; its mark and segments hold the history
    segments = sorted(p.name for p in (journal.parent / "lab.segments").iterdir())
    _assert_clear_failure(_run(journal), EXIT_UNUSABLE, "is empty (0 bytes) but files of an")
    assert sorted(p.name for p in (journal.parent / "lab.segments").iterdir()) == segments


def test_empty_file_or_new_path_becomes_a_journal(tmp_path):
    empty = tmp_path / "empty.duckdb"
    empty.touch()
    for path in (empty, tmp_path / "new" / "lab.duckdb"):
        result = _run(path)
        assert result.exit_code == 0, (result.output, result.stderr)
        assert "stopped cleanly" in result.output
        assert _cli("verify", path).exit_code == 0
    # Verified before any run, it says what it is, not only that it is whole.
    other = tmp_path / "other.duckdb"
    other.touch()
    assert "is an empty file: no journal was written to it yet" in _cli("verify", other).output


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_journal_path_that_cannot_be_created_is_exit_3_not_damage(tmp_path):
    path = Path("/proc/tradelab-journal.duckdb")  # a folder where no file can be made
    with pytest.raises(JournalError, match=f"cannot create journal {path}: ") as refused:
        Journal(path)
    assert not isinstance(refused.value, RecoveryError)
    with pytest.raises(JournalError, match=f"cannot create journal {path}: .*No such file"):
        connect(path)  # as the writer process opens it
    bars = write_bars(tmp_path / "ABC.csv")
    backtest = _cli("backtest", bars, "--strategy", "sma_cross", "--journal", path)
    _assert_clear_failure(backtest, EXIT_UNUSABLE, f"cannot create journal {path}")
    assert "damaged" not in backtest.stderr


def test_an_empty_journal_path_is_refused_naming_it(tmp_path):
    with pytest.raises(InvalidInputError, match="journal path is empty"):
        Journal("")


def test_segments_dir_that_is_a_file_is_a_clear_error(journal):
    blocker = journal.parent / "lab.segments"
    shutil.rmtree(blocker, ignore_errors=True)
    blocker.write_text("not a directory")
    with pytest.raises(JournalError, match="segments directory"):
        Engine(journal_path=str(journal)).start()
    _assert_clear_failure(_run(journal), EXIT_UNUSABLE, "lab.segments")
    # Nothing was changed: with segments off the same journal still opens whole.
    with Engine(journal_path=str(journal), segments_enabled=False) as engine:
        assert engine.recovery_report.last_seq >= EVENTS


@contextlib.contextmanager
def _read_only(directory: Path):
    """`directory` made unwritable: a read-only bind mount as root (who ignores modes)."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    mount = ["mount", "--bind", str(directory), str(directory)]
    if subprocess.run(mount, capture_output=True).returncode:
        pytest.skip("cannot bind-mount here to make a folder read-only for root")
    try:
        remount = ["mount", "-o", "remount,ro,bind", str(directory)]
        if subprocess.run(remount, capture_output=True).returncode:
            pytest.skip("cannot remount a bind mount read-only here")
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def test_a_segments_dir_that_cannot_be_written_is_refused_at_start(journal):
    """It used to be found at the first seal: a log line, the run's exit 0, and readers of the
    segments shown the journal as it was at the start while the session ran on."""
    directory = journal.parent / "lab.segments"
    with _read_only(directory):
        with pytest.raises(JournalError, match="cannot use the segments directory"):
            Engine(journal_path=str(journal)).start()
        _assert_clear_failure(_run(journal), EXIT_UNUSABLE, "lab.segments", "writable")


def test_an_ack_log_folder_that_is_a_file_is_a_clear_error_leaving_no_process(journal):
    import psutil

    blocker = journal.parent / "lab.acklog"
    shutil.rmtree(blocker, ignore_errors=True)
    blocker.write_text("not a directory")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(JournalError, match="cannot create the ack log folder"):
        Engine(journal_path=str(journal)).start()
    _assert_clear_failure(_run(journal), EXIT_UNUSABLE, "lab.acklog")
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_wal_autocheckpoint_injection_is_refused_and_the_journal_kept(whole, journal):
    _, _, seq = whole
    hostile = "1GB'; DROP TABLE events; --"
    with pytest.raises(InvalidInputError, match="wal_autocheckpoint .*DROP TABLE"):
        EngineConfig(wal_autocheckpoint=hostile)
    with pytest.raises(InvalidInputError, match="not a size"):
        Journal(journal, wal_autocheckpoint=hostile)
    con = duckdb.connect(str(journal))
    try:
        with pytest.raises(InvalidInputError):
            set_wal_autocheckpoint(con, hostile)
        set_wal_autocheckpoint(con, "512 MiB")
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] >= seq
    finally:
        con.close()
    assert EngineConfig(wal_autocheckpoint="2.5GB").wal_autocheckpoint == "2.5GB"


def test_high_water_mark_that_is_a_directory_is_a_clear_error(journal):
    mark = journal.with_name(journal.name + ".hwm")
    mark.unlink()
    mark.mkdir()
    with pytest.raises(JournalError, match="high-water mark"):
        Journal(journal)
    _assert_clear_failure(_run(journal), EXIT_UNUSABLE, "high-water mark")


def test_an_empty_file_is_a_journal_without_events_for_inspect_and_verify_as_for_run(tmp_path):
    # `run` takes a 0-byte file as a new journal; inspect and verify called it damaged.
    journal = tmp_path / "lab.duckdb"
    journal.touch()
    shown = _cli("inspect", journal)
    assert shown.exit_code == 0, shown.stderr
    assert "events     0" in shown.output
    assert _cli("verify", journal).exit_code == 0
    assert journal.stat().st_size == 0  # read, not written
