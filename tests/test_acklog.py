"""The ack log: critical events acknowledged from it survive the writer process's death."""

from __future__ import annotations

import json
import os
import shutil
import signal

import duckdb
import msgspec
import pytest
from click.testing import CliRunner
from payloads import trade

from tradelab.cli import main as cli
from tradelab.engine import Engine
from tradelab.errors import JournalError, RecoveryError
from tradelab.events import Event
from tradelab.journal import Journal
from tradelab.journal.acklog import ROTATE_BYTES, AckLog, acklog_dir, log_files
from tradelab.journal.acklog_read import read_records, restore_into
from tradelab.journal.verify import verify_journal


def _batch(first: int, last: int) -> bytes:
    return msgspec.json.encode(
        [
            Event(seq, 1_000 + seq, "mark.updated", "", {"symbol": "NIFTY", "price": float(seq)})
            for seq in range(first, last + 1)
        ]
    )


def _journal_seqs(journal: Journal) -> list[int]:
    return [row[0] for row in journal.con.execute("SELECT seq FROM events ORDER BY seq").fetchall()]


def test_records_read_back_in_order_and_a_torn_tail_ends_the_log(tmp_path):
    log = AckLog(tmp_path / "lab.duckdb")
    log.append(1, 2, _batch(1, 2))
    log.append(3, 5, _batch(3, 5))
    assert log.sync() == 5
    log.close(remove=False)
    (path,) = log_files(acklog_dir(tmp_path / "lab.duckdb"))
    records, damaged_at = read_records(path)
    assert [(r.first_seq, r.last_seq) for r in records] == [(1, 2), (3, 5)] and damaged_at is None
    whole = path.read_bytes()
    second_at = 28 + len(_batch(1, 2))  # where the second record starts
    end = second_at + 28 + len(_batch(3, 5))
    torn = bytearray(whole)
    torn[end - 7 : end] = bytes(7)  # a write the crash cut short: its last bytes never landed
    path.write_bytes(bytes(torn))
    records, damaged_at = read_records(path)
    assert [(r.first_seq, r.last_seq) for r in records] == [(1, 2)]
    assert damaged_at == second_at
    flipped = bytearray(whole)
    flipped[end - 3] ^= 0xFF  # a changed byte fails the CRC
    path.write_bytes(bytes(flipped))
    assert [(r.first_seq, r.last_seq) for r in read_records(path)[0]] == [(1, 2)]


def test_retire_keeps_a_file_until_duckdb_has_committed_its_last_event(tmp_path):
    # Deleted one event early, a file takes an acknowledged event DuckDB does not have yet
    # with it: lost at the next crash.
    path = tmp_path / "lab.duckdb"
    log = AckLog(path, rotate_bytes=1)  # a file per record
    for first in (1, 4, 7):
        log.append(first, first + 2, _batch(first, first + 2))
    log.sync()

    def kept() -> list[tuple[int, int]]:
        files = log_files(acklog_dir(path))
        return [(r.first_seq, r.last_seq) for f in files for r in read_records(f)[0]]

    log.retire(5)  # DuckDB committed through seq 5: the file of 4..6 still holds seq 6
    assert kept() == [(4, 6), (7, 9)]
    log.retire(6)
    assert kept() == [(7, 9)]  # the current file stays while it is written
    log.close(remove=False)


def test_restore_copies_only_the_missing_events_and_removes_the_log(tmp_path):
    path = tmp_path / "lab.duckdb"
    journal = Journal(path)
    journal.close()
    log = AckLog(path, rotate_bytes=1)  # a file per record: retiring and reading span files
    log.append(1, 3, _batch(1, 3))
    log.append(4, 6, _batch(4, 6))
    log.sync()
    log.close(remove=False)
    assert len(log_files(acklog_dir(path))) == 2
    journal = Journal(path)  # opening restores
    try:
        assert journal.acklog_restored == 6
        assert _journal_seqs(journal) == [1, 2, 3, 4, 5, 6]
        assert journal.check.problems == [] or all(
            "high-water" in p for p in journal.check.problems
        )
        assert log_files(acklog_dir(path)) == []
        assert restore_into(journal.con, path) == 0
    finally:
        journal.close()


def test_a_gap_in_the_log_refuses_the_journal_and_changes_nothing(tmp_path):
    path = tmp_path / "lab.duckdb"
    Journal(path).close()  # an empty journal, then a log that starts at seq 10
    log = AckLog(path)
    log.append(10, 12, _batch(10, 12))
    log.sync()
    log.close(remove=False)
    files = {p.name: p.read_bytes() for p in log_files(acklog_dir(path))}
    with pytest.raises(RecoveryError, match="jumps from seq 0 to 10"):
        Journal(path)
    assert {p.name: p.read_bytes() for p in log_files(acklog_dir(path))} == files


def test_a_critical_event_acknowledged_from_the_log_survives_the_writer_being_killed(tmp_path):
    path = tmp_path / "lab.duckdb"
    # A long group-commit window: DuckDB will not have the event when the writer dies.
    engine = Engine(journal_path=str(path), group_commit_ms=1000.0, snapshot_every_seconds=0)
    engine.start()
    try:
        event = engine.submit("trade.executed", trade(1), key="T1")
        os.kill(engine.journal.writer.pid, signal.SIGKILL)
    finally:
        engine.stop(timeout=20)
    # Read-only tools leave the log alone and say what the next start will commit.
    pending = [line for line in verify_journal(path).lines if "ack log holds" in line]
    assert len(pending) == 1 and "the next engine start" in pending[0]
    journal = Journal(path)
    try:
        assert journal.acklog_restored >= 1
        assert journal.last_seq >= event.seq
        row = journal.con.execute(
            "SELECT topic, key FROM events WHERE seq = ?", [event.seq]
        ).fetchone()
        assert row == ("trade.executed", "T1")
    finally:
        journal.close()
    with Engine(journal_path=str(path), snapshot_every_seconds=0) as again:
        assert again.store.get("trading.trades.T1")["seq"] == event.seq


def test_ack_log_is_trimmed_while_the_engine_stays_busy(tmp_path):
    path = tmp_path / "lab.duckdb"
    with Engine(journal_path=str(path), snapshot_every_seconds=0) as engine:
        # ~14 MB of ack log: past one ROTATE_BYTES file, with no idle moment in between.
        note = "n" * 60
        for i in range(100_000):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": float(i), "note": note})
        engine.flush(timeout=60)
        engine.submit("trade.executed", trade(1), key="T1")  # one more batch: retire runs
        # Files holding records (the next one, prepared ahead, holds only zeros).
        files = [p for p in log_files(acklog_dir(path)) if read_records(p)[0]]
        logged = sum(p.stat().st_size for p in log_files(acklog_dir(path)))
        # What DuckDB committed was retired: at most the current file remains (plus the one
        # prepared ahead), not everything since the start.
        assert len(files) == 1 and logged <= 2 * ROTATE_BYTES + (1 << 20), (files, logged)
        assert read_records(files[0])[0][0].first_seq > 1


def test_preallocated_files_with_zero_tails_restore_cleanly(tmp_path):
    path = tmp_path / "lab.duckdb"
    Journal(path).close()
    # The older files end in zeros, newer ones follow, and the file prepared ahead (left
    # behind as by a crash) holds nothing at all.
    log = AckLog(path, rotate_bytes=4096, next_seq=1)
    for first in range(1, 76, 3):  # ~9 records a file: 3 files, the third over half used
        log.append(first, first + 2, _batch(first, first + 2))
    log.sync()
    if log._next is not None:  # the file prepared ahead, on its helper thread: done first
        log._next.result()
    files = log_files(acklog_dir(path))
    assert len(files) == 4 and all(p.stat().st_size == 4096 for p in files)
    assert read_records(files[-1]) == ([], None)  # prepared ahead, all zeros
    assert read_records(files[0])[1] is None  # a zero tail is a clean end, not damage
    del log  # not closed, as by a kill: close() would tidy the prepared file away
    journal = Journal(path)
    try:
        assert journal.acklog_restored == 75
        assert _journal_seqs(journal) == list(range(1, 76))
        assert not any("ack log" in p for p in journal.check.problems), journal.check.problems
        assert log_files(acklog_dir(path)) == []
    finally:
        journal.close()


def _torn_in_the_middle(tmp_path, *, in_older_file: bool):
    path = tmp_path / "lab.duckdb"
    Journal(path).close()
    log = AckLog(path, rotate_bytes=4096 if in_older_file else ROTATE_BYTES)
    for first in range(1, 31, 3):
        log.append(first, first + 2, _batch(first, first + 2))
    log.sync()
    log.close(remove=False)
    victim = log_files(acklog_dir(path))[0]
    data = bytearray(victim.read_bytes())
    second_at = 28 + len(_batch(1, 3))
    data[second_at + 40] ^= 0xFF  # the second record is damaged; intact ones follow it
    victim.write_bytes(bytes(data))
    return path


def test_a_record_torn_before_intact_ones_refuses_the_journal_until_the_log_is_moved(tmp_path):
    # Acknowledged events after the damage may be lost (a sync covers every write before it,
    # so a crash alone never leaves an intact record after a torn one): the operator decides.
    path = _torn_in_the_middle(tmp_path, in_older_file=False)
    assert len(log_files(acklog_dir(path))) == 1  # the damaged file is the newest
    with pytest.raises(RecoveryError, match="intact records follow.*move .*lab.acklog aside"):
        Journal(path)
    result = verify_journal(path)
    assert not result.ok and any("intact records follow" in p for p in result.problems)
    # Not also called "the last record ... the next start drops it": it is not the last.
    assert not any("the last record" in line for line in result.lines)
    for command in ("inspect", "verify", "run"):
        shown = CliRunner().invoke(
            cli,
            [command, str(path)]
            if command != "run"
            else ["run", "--journal", str(path), "--strategy", "none", "--duration", "0"],
        )
        assert shown.exit_code == 1, (command, shown.output, shown.stderr)
        assert "intact records follow" in shown.output + shown.stderr, command
    con = duckdb.connect(str(path), read_only=True)
    try:  # nothing restored, nothing changed
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    finally:
        con.close()
    shutil.move(acklog_dir(path), tmp_path / "kept.acklog")
    with Engine(journal_path=str(path)) as engine:  # the operator's choice: start without it
        engine.submit("mark.updated", {"symbol": "A", "price": 1.0})
    assert verify_journal(path).ok


def test_a_damaged_record_in_an_older_preallocated_file_refuses_the_journal(tmp_path):
    path = _torn_in_the_middle(tmp_path, in_older_file=True)
    with pytest.raises(RecoveryError, match=r"seq 4\.\.6 are neither in DuckDB nor intact"):
        Journal(path)


def _log_over_committed_events(tmp_path, *, committed: int, rotate_bytes: int = ROTATE_BYTES):
    """A journal whose DuckDB holds seq 1..`committed`, and an ack log of seq 1..30 in records
    of three seqs (as the log looks before DuckDB's commits retire its older files)."""
    path = tmp_path / "lab.duckdb"
    Journal(path).close()
    log = AckLog(path)
    log.append(1, committed, _batch(1, committed))
    log.close(remove=False)
    Journal(path).close()  # restores 1..committed into DuckDB and removes that log
    log = AckLog(path, rotate_bytes=rotate_bytes)
    for first in range(1, 31, 3):
        log.append(first, first + 2, _batch(first, first + 2))
    log.sync()
    log.close(remove=False)
    return path


def _flip_record(path, file_index: int, record_index: int) -> None:
    victim = log_files(acklog_dir(path))[file_index]
    data = bytearray(victim.read_bytes())
    data[28 + record_index * (28 + len(_batch(1, 3))) + 40] ^= 0xFF
    victim.write_bytes(bytes(data))


def test_damage_to_a_record_duckdb_holds_is_skipped_and_the_records_after_it_restored(tmp_path):
    # A record DuckDB committed already, damaged on disk, hid nothing missing: the start used
    # to refuse the journal, and the way out it named (moving the log aside) dropped the
    # acknowledged events 7..30 after it.
    path = _log_over_committed_events(tmp_path, committed=6)
    _flip_record(path, 0, 1)  # seq 4..6
    verified = verify_journal(path)
    assert verified.ok, verified.problems
    assert any("damaged at byte" in line and "skips it" in line for line in verified.lines)
    shown = CliRunner().invoke(cli, ["inspect", "--json", str(path)])
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.output)
    assert info["ack_log_pending_events"] == 24 and info["ack_log_damage"] == []
    assert len(info["ack_log_covered_damage"]) == 1
    journal = Journal(path)
    try:
        assert journal.acklog_restored == 24
        assert _journal_seqs(journal) == list(range(1, 31))
    finally:
        journal.close()


def test_damage_at_the_end_of_an_older_file_is_skipped_when_the_newer_file_follows_on(tmp_path):
    probe = _log_over_committed_events(tmp_path / "probe", committed=3, rotate_bytes=4096)
    in_first = len(read_records(log_files(acklog_dir(probe))[0])[0])  # records a file holds
    assert 1 < in_first < 10
    path = _log_over_committed_events(tmp_path, committed=3 * in_first, rotate_bytes=4096)
    _flip_record(path, 0, in_first - 1)  # the older file's last record, held by DuckDB
    assert len(read_records(log_files(acklog_dir(path))[0])[0]) == in_first - 1
    journal = Journal(path)
    try:
        assert _journal_seqs(journal) == list(range(1, 31))
    finally:
        journal.close()


def test_damage_that_hid_missing_events_still_refuses_the_journal(tmp_path):
    path = _log_over_committed_events(tmp_path, committed=3)
    _flip_record(path, 0, 1)  # seq 4..6: DuckDB lacks them
    with pytest.raises(RecoveryError, match=r"intact records follow.*seq 4\.\.6 are neither"):
        Journal(path)
    verified = verify_journal(path)
    assert not verified.ok
    # Not also "the next engine start commits them" (4..6 pending before the damage at 7..9):
    # the next start refuses the journal.
    path = _log_over_committed_events(tmp_path / "later", committed=3)
    _flip_record(path, 0, 2)  # seq 7..9
    verified = verify_journal(path)
    assert not verified.ok and any("seq 7..9 are neither" in p for p in verified.problems)
    assert not any("commits them" in line for line in verified.lines)
    shown = CliRunner().invoke(cli, ["inspect", str(path)])
    assert shown.exit_code == 1 and "commits them" not in shown.output


def test_a_sync_after_close_finds_everything_written_synced(tmp_path):
    """A submitter told to sync may get there after the engine closed the log: what it wrote
    is on disk already (close syncs), so it is not told durable on an unsynced write."""
    log = AckLog(tmp_path / "lab.duckdb", next_seq=1)
    log.append(1, 3, b"[]")
    log.close(remove=False)
    assert log.synced_seq == 3
    assert log.sync_through(3) is False  # covered: no sync on a closed file


def test_a_new_journal_refuses_an_earlier_journals_files_left_at_its_path(tmp_path):
    path = tmp_path / "lab.duckdb"
    engine = Engine(journal_path=str(path), segment_every_events=10, snapshot_every_seconds=0)
    with engine:
        for i in range(25):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": float(i)})
    path.unlink()  # "start over", the journal alone removed
    with pytest.raises(JournalError, match=r"lab\.duckdb does not exist but files of an earlier"):
        Engine(journal_path=str(path)).start()
    assert not path.exists()  # refused before anything was created
    for left in tmp_path.glob("lab.*"):  # the whole journal removed: a new one starts clean
        shutil.rmtree(left) if left.is_dir() else left.unlink()
    with Engine(journal_path=str(path)) as fresh:
        assert fresh.recovery_report.last_seq == 0 and fresh.recovery_report.damage is None
        fresh.flush()
        topics = {e.topic for e in fresh.bus.history()}
    assert "journal.damage_detected" not in topics and "journal.recovered" in topics


def test_a_damaged_last_record_is_dropped_by_the_start_and_said_by_verify_and_inspect(tmp_path):
    # A torn last write was never acknowledged; damage to a synced one cannot be told apart,
    # so the tools say what the next start will drop instead of calling the journal whole.
    path = tmp_path / "lab.duckdb"
    Journal(path).close()
    log = AckLog(path)
    log.append(1, 3, _batch(1, 3))
    log.append(4, 6, _batch(4, 6))
    log.sync()
    log.close(remove=False)
    [victim] = log_files(acklog_dir(path))
    data = bytearray(victim.read_bytes())
    data[28 + len(_batch(1, 3)) + 40] ^= 0xFF  # the last record's body
    victim.write_bytes(bytes(data))
    verified = CliRunner().invoke(cli, ["verify", str(path)])
    assert "WARN the last record of ack log" in verified.output and "(seq 4..6)" in verified.output
    shown = CliRunner().invoke(cli, ["inspect", str(path)])
    assert "the next start drops it" in shown.output
    journal = Journal(path)
    try:
        assert _journal_seqs(journal) == [1, 2, 3]
    finally:
        journal.close()


def test_analytics_reads_acknowledged_events_the_ack_log_holds_past_duckdb_and_says_so(tmp_path):
    # After a kill -9 the fills view stopped at DuckDB's last seq without a word, leaving out
    # fills the engine had acknowledged as durable.
    from tradelab.analytics import Analytics

    path = tmp_path / "lab.duckdb"
    engine = Engine(journal_path=str(path), group_commit_ms=1000.0, snapshot_every_seconds=0)
    engine.start()
    try:
        events = [engine.submit("trade.executed", trade(i), key=f"T{i}") for i in (1, 2)]
        os.kill(engine.journal.writer.pid, signal.SIGKILL)
    finally:
        engine.stop(timeout=20)
    committed = duckdb.connect(str(path), read_only=True)
    in_duckdb = committed.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    committed.close()
    assert in_duckdb < events[-1].seq  # the kill came before DuckDB's commit
    analytics = Analytics(path)
    fills = analytics.sql("SELECT trade_id, seq FROM fills ORDER BY seq")
    assert fills["trade_id"].tolist() == ["T1", "T2"]
    assert fills["seq"].tolist() == [e.seq for e in events]
    assert analytics.last_seq >= events[-1].seq  # with what the stop journaled after them
    assert f"ends at seq {in_duckdb}" in analytics.note and "ack log" in analytics.note
    # The replays behind state_at read through cursors of their own: they see them too.
    assert analytics.state_at(events[-1].seq).get("trading.trades.T2")["seq"] == events[-1].seq
    # Read-only: the journal is as the kill left it; its next start commits them.
    with Engine(journal_path=str(path), snapshot_every_seconds=0) as again:
        assert again.store.get("trading.trades.T2")["seq"] == events[-1].seq
    assert Analytics(path).sql("SELECT count(*) AS n FROM fills")["n"][0] == 2
    assert Analytics(path).note == ""
