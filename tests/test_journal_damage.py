"""Damaged journal contents: each is a clear error with its exit code, never a traceback."""

from __future__ import annotations

import base64
import json
import random
import re
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from tests.damaged_journal import EVENTS, _assert_clear_failure, _cli, _run, _sql
from tradelab.cli import EXIT_DAMAGED, EXIT_UNUSABLE
from tradelab.cli import main as cli
from tradelab.engine import Engine
from tradelab.errors import JournalError, RecoveryError
from tradelab.journal import Journal
from tradelab.journal.verify import verify_journal


def _events_block(path) -> tuple[int, int]:
    """(offset, size) in the file of the first DuckDB block holding events rows."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        block_size = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]
        block = con.execute(
            "SELECT min(block_id) FROM pragma_storage_info('events') WHERE block_id >= 0"
        ).fetchone()[0]
    finally:
        con.close()
    return 3 * 4096 + block * block_size, block_size  # after DuckDB's three 4 KiB headers


@pytest.mark.parametrize("column", ["sha256", "state", "last_seq", "id"])
def test_snapshot_with_null_field_is_skipped_not_crashing(whole, journal, column):
    _, state_hash, seq = whole
    newest = _sql(journal, "SELECT max(id) FROM snapshots")[0][0][0]
    _sql(journal, f"UPDATE snapshots SET {column} = NULL WHERE id = {newest}")
    inspect = _cli("inspect", journal)
    assert inspect.exit_code == EXIT_DAMAGED, inspect.output  # what it read, then exit 1
    assert state_hash in inspect.output and "Traceback" not in inspect.output
    verify = _cli("verify", journal)
    assert verify.exit_code == EXIT_DAMAGED
    assert "FAIL snapshot" in verify.output and "Traceback" not in verify.output
    with Engine(journal_path=str(journal)) as engine:
        report = engine.recovery_report
        assert report.state_hash == state_hash and report.last_seq == seq
        assert report.snapshot_id is not None and report.snapshot_id < newest
        assert len(report.rejected_snapshots) == 1


def test_null_hash_is_reported_as_missing_not_as_a_mismatch(journal):
    newest = _sql(journal, "SELECT max(id) FROM snapshots")[0][0][0]
    _sql(journal, f"UPDATE snapshots SET sha256 = NULL WHERE id = {newest}")
    with Engine(journal_path=str(journal)) as engine:
        [rejected] = engine.recovery_report.rejected_snapshots
    assert rejected["snapshot_id"] == newest and rejected["reason"] == "its row has no sha256"


def test_truncated_file_is_damage_with_exit_1_everywhere(journal):
    offset, size = _events_block(journal)
    with open(journal, "r+b") as fh:
        fh.truncate(offset + size // 2)  # the file ends in the middle of the events' block
    with pytest.raises(RecoveryError, match="lab.duckdb"):
        Journal(journal)
    for command in (_run(journal), _cli("inspect", journal), _cli("verify", journal)):
        _assert_clear_failure(command, EXIT_DAMAGED, str(journal), "damaged")


def test_a_file_cut_short_is_damage_though_no_block_read_on_open_is_missing(journal):
    """Recovery reads the newest snapshot and the tail; a cut past them went unseen, and the
    engine wrote on into the damaged file."""
    full = journal.stat().st_size
    with open(journal, "r+b") as fh:
        fh.truncate(full - 4096)
    for command in (_run(journal), _cli("inspect", journal), _cli("verify", journal)):
        _assert_clear_failure(command, EXIT_DAMAGED, str(journal), "cut short")
    assert journal.stat().st_size == full - 4096


def test_overwritten_block_is_damage_not_a_lock(journal):
    offset, size = _events_block(journal)
    with open(journal, "r+b") as fh:
        fh.seek(offset + 64)
        fh.write(bytes(range(256)) * 32)  # 8 KiB of garbage at the start of the events' block
    for command in (_run(journal), _cli("inspect", journal), _cli("verify", journal)):
        _assert_clear_failure(command, EXIT_DAMAGED, str(journal), "damaged")
        assert "in use" not in command.stderr  # the checksum message says "block", not "lock"


@pytest.mark.parametrize("payload", ["'{not json'", "NULL", "'[1, 2]'", '\'{"a": 1}, {"b": 2}\''])
def test_malformed_payload_is_named_by_seq(journal, payload):
    _sql(
        journal,
        f"UPDATE events SET payload = {payload} WHERE seq = 300",
        "DELETE FROM snapshots WHERE last_seq >= 300",  # recovery must replay through it
    )
    with pytest.raises(RecoveryError, match="event seq 300 .* damaged payload"):
        Engine(journal_path=str(journal)).start()
    _assert_clear_failure(_run(journal), EXIT_DAMAGED, "seq 300")
    inspect = _cli("inspect", journal)
    _assert_clear_failure(inspect, EXIT_DAMAGED, "seq 300")
    assert re.search(rf"mark\.updated +{EVENTS}\n", inspect.output), inspect.output  # what it read
    verify = _cli("verify", journal)
    assert verify.exit_code == EXIT_DAMAGED and "Traceback" not in verify.output
    assert "FAIL event seq 300" in verify.output


def test_a_payload_row_nested_past_the_decoder_is_damage_not_a_traceback(journal):
    deep = '{"a":' * 5000 + "1" + "}" * 5000  # valid JSON; no writer makes it (64 levels at most)
    _sql(
        journal,
        f"UPDATE events SET payload = '{deep}' WHERE seq = 300",
        "DELETE FROM snapshots WHERE last_seq >= 300",
    )
    for command in (_run(journal), _cli("inspect", journal), _cli("verify", journal)):
        assert command.exit_code == EXIT_DAMAGED, (command.output, command.stderr)
        assert "seq 300" in command.output + command.stderr
        assert "Traceback" not in command.output + command.stderr


def test_a_payload_its_reducers_refuse_is_damage_with_exit_1_everywhere(journal):
    _sql(
        journal,
        """UPDATE events SET payload = '{"symbol": "S1"}' WHERE seq = 300""",  # no price
        "DELETE FROM snapshots WHERE last_seq >= 300",
    )
    with pytest.raises(RecoveryError, match="damaged: reducer .* failed at seq 300"):
        Engine(journal_path=str(journal)).start()
    for command in (_run(journal), _cli("inspect", journal), _cli("verify", journal)):
        assert command.exit_code == EXIT_DAMAGED, (command.output, command.stderr)
        assert "seq 300" in command.output + command.stderr
        assert "Traceback" not in command.output + command.stderr


@pytest.mark.parametrize("table", ["events", "snapshots", "meta"])
def test_dropped_table_is_damage_and_is_not_recreated(journal, table):
    _sql(journal, f"DROP TABLE {table}")
    with pytest.raises(RecoveryError, match=f"its {table} table is missing"):
        Engine(journal_path=str(journal)).start()
    for command in (_run(journal), _cli("inspect", journal), _cli("verify", journal)):
        _assert_clear_failure(command, EXIT_DAMAGED, f"its {table} table is missing")
    tables = _sql(journal, "SELECT table_name FROM duckdb_tables()")[0]
    assert (table,) not in tables  # an empty table in its place would hide the loss


@pytest.mark.parametrize(("table", "column"), [("events", "key"), ("snapshots", "sha256")])
def test_dropped_column_is_damage_naming_the_table(journal, table, column):
    _sql(journal, f"ALTER TABLE {table} DROP COLUMN {column}")
    for command in (_run(journal), _cli("inspect", journal), _cli("verify", journal)):
        _assert_clear_failure(command, EXIT_DAMAGED, f"its {table} table has columns")


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("DELETE FROM events WHERE seq = 99", "seq 98 is followed by 100"),
        ("UPDATE events SET seq = 99 WHERE seq = 100", "seq 99 is followed by 99"),
        ("UPDATE events SET topic = NULL WHERE seq = 10", "NULL seq, ts, topic"),
    ],
)
def test_inspect_prints_what_it_read_of_damaged_events_then_exits_1(journal, damage, said):
    _sql(journal, damage)
    for args in (("inspect", journal), ("inspect", "--json", journal)):
        result = _cli(*args)
        _assert_clear_failure(result, EXIT_DAMAGED, said)
        assert "mark.updated" in result.output and "snapshot" in result.output, result.output
        assert "state hash" not in result.output and "state_hash" not in result.output


def test_null_seq_or_topic_is_damage(journal):
    _sql(journal, "UPDATE events SET topic = NULL WHERE seq = 10")
    with pytest.raises(RecoveryError, match="NULL seq, ts, topic"):
        Journal(journal)
    _assert_clear_failure(_run(journal), EXIT_DAMAGED, "NULL")


def test_an_event_of_a_newer_schema_is_refused_by_verify_as_by_run(journal):
    [[(last,)]] = _sql(journal, "SELECT max(seq) FROM events")  # in the tail a run replays
    _sql(journal, f"UPDATE events SET schema_version = 99 WHERE seq = {last}")
    for command in (_run(journal), _cli("inspect", journal), _cli("verify", journal)):
        _assert_clear_failure(command, EXIT_UNUSABLE, f"seq {last}", "schema version 99")


def test_inspect_names_a_lost_tail_and_the_snapshots_recovery_rejects(journal):
    [[(last,)]] = _sql(
        journal,
        "SELECT max(seq) FROM events",
        "UPDATE snapshots SET state = NULL WHERE id = (SELECT max(id) FROM snapshots)",
        "DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)",
    )[:1]
    shown = _cli("inspect", journal)
    assert shown.exit_code == EXIT_DAMAGED, shown.stderr  # what it read, then exit 1 as verify
    assert f"LOST       the high-water mark says seq {last} was committed" in shown.output
    assert "REJECTED: its row has no state" in shown.output
    assert "tradelab: error: journal" in shown.stderr and "has no state" in shown.stderr
    assert _cli("verify", journal).exit_code == EXIT_DAMAGED


def _journal_with_a_corrupt_payload_block(journal: Path, **engine_settings) -> None:
    """10,000 events whose last payload block fails its checksum (the blocks a start reads,
    the snapshot and the tail, are whole)."""
    noise = random.Random(7)  # payloads that do not compress: they fill blocks of their own
    with Engine(journal_path=str(journal), writer_process=False, **engine_settings) as engine:
        for i in range(10_000):
            why = base64.b64encode(noise.randbytes(48)).decode()
            engine.submit("signal.detected", {"why": why}, key=f"s{i % 50}")
    con = duckdb.connect(str(journal), read_only=True)
    try:
        block_size = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]
        payload_blocks = con.execute(
            "SELECT block_id FROM pragma_storage_info('events') WHERE block_id >= 0 "
            "GROUP BY block_id HAVING bool_and(column_name = 'payload') ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    assert len(payload_blocks) >= 2
    with open(journal, "r+b") as fh:  # the last payload block: read after the first batch
        fh.seek(3 * 4096 + payload_blocks[-1][0] * block_size + 4096)
        flipped = bytes(255 - b for b in fh.read(64))
        fh.seek(-64, 1)
        fh.write(flipped)


def test_a_corrupt_block_read_only_by_the_replay_is_damage_with_exit_1(tmp_path):
    """Event payloads are read first by verify's replay, through DuckDB's Arrow stream, which
    reports a bad checksum in a block after its first batch as pyarrow's OSError."""
    journal = tmp_path / "lab.duckdb"
    _journal_with_a_corrupt_payload_block(journal)
    with pytest.raises(RecoveryError, match="is damaged: reading it failed: .*checksum"):
        verify_journal(journal)
    _assert_clear_failure(_cli("verify", journal), EXIT_DAMAGED, str(journal), "damaged")


@pytest.mark.parametrize("writer_process", [True, False])
def test_an_engine_whose_journal_reads_back_damaged_stops_instead_of_appending(
    tmp_path, writer_process
):
    # A start reads the snapshot and the tail only; the segment sealer then reads the rest, and
    # its "Corrupt database file" was logged while the engine went on appending, and `run`
    # said "stopped cleanly" (exit 0) over a journal verify calls damaged.
    journal = tmp_path / "lab.duckdb"
    _journal_with_a_corrupt_payload_block(journal, segments_enabled=False)
    engine = Engine(
        journal_path=str(journal), snapshot_every_seconds=0, writer_process=writer_process
    )
    try:  # the sealer may find it while the engine starts: refused then, as damage too
        engine.start()
    except RecoveryError as exc:
        assert "the journal file is damaged" in str(exc)
        return
    try:
        deadline = time.monotonic() + 30
        while engine.journal_failure is None and time.monotonic() < deadline:
            time.sleep(0.05)
        failure = engine.journal_failure
        assert isinstance(failure, RecoveryError), failure
        assert "the journal file is damaged: reading its events after seq 0" in str(failure)
        assert "Corrupt database file" in str(failure) and "tradelab verify" in str(failure)
        with pytest.raises(JournalError, match="journal file is damaged"):
            engine.submit("signal.detected", {"why": "after"}, key="s1", wait=True)
    finally:
        engine.stop()


def test_a_checkpoint_meeting_a_damaged_block_is_said_as_damage_not_a_writer_failure():
    # Its "Corrupt database file" came as a plain writer failure: run exited 3 and said a
    # restart recovers everything, and a restart appended to the damaged file again.
    from tradelab.journal import wire
    from tradelab.journal.writer_process import WriterProcess

    sent = []
    process = WriterProcess.__new__(WriterProcess)  # only its reporting is under test
    process.out = type("Out", (), {"send": lambda self, kind, body: sent.append((kind, body))})()
    checkpoint = (
        "journal writer: FATAL Error: Failed to create checkpoint because of error: Corrupt "
        "database file: computed checksum 1 does not match stored checksum 2 in block at 798720"
    )
    process._failed(JournalError(checkpoint))
    process._failed(JournalError("journal writer: IO Error: No space left on device"))
    assert [kind for kind, _ in sent] == [wire.DAMAGED, wire.FAILED]
    assert sent[0][1].decode().startswith("the journal file is damaged: journal writer: FATAL")


def test_the_console_refuses_a_journal_whose_history_reads_back_damaged(tmp_path):
    # It logged "tape history not read" and served on, appending to the damaged file.
    from tradelab.ui.host import _read_earlier_run

    journal = tmp_path / "lab.duckdb"
    _journal_with_a_corrupt_payload_block(journal)
    query = "SELECT seq, payload FROM events ORDER BY seq"
    with pytest.raises(RecoveryError, match=r"damaged: reading its tape history failed: .*Corrupt"):
        _read_earlier_run(journal, query, None, "tape history")
    missing = _read_earlier_run(tmp_path / "SELECT", "SELECT 1", None, "tape history")
    assert missing is None  # no journal yet: nothing to read, nothing refused


@pytest.mark.slow
def test_serve_on_a_journal_that_reads_back_damaged_stops_with_exit_1(tmp_path):
    # It served on over an engine that journaled nothing ("engine: running", a STALE badge) and
    # Ctrl-C ended it with exit 0; whether the damage was met in its start or just after, it
    # now ends as run does.
    import os
    import socket
    import subprocess
    import sys

    journal = tmp_path / "lab.duckdb"
    _journal_with_a_corrupt_payload_block(journal, segments_enabled=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = tmp_path / "tradelab.yaml"
    settings.write_text(f"lab:\n  journal_path: {journal}\nconsole:\n  port: {port}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "tradelab.cli", "serve", "--config", str(settings)],
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EXIT_DAMAGED, proc.stderr
    assert "the journal file is damaged" in proc.stderr
    assert "stopped cleanly" not in proc.stdout


def test_verify_names_topics_of_a_journals_own_beside_what_their_fold_changes(tmp_path):
    """Folded without its reducers, such a journal differs from its snapshots: said as that,
    not left to read as damage alone."""
    from tradelab.events import TopicRegistry, TopicSpec

    registry = TopicRegistry()
    registry.register(TopicSpec("demo.set", description="a notebook's own topic"))
    path = tmp_path / "own.duckdb"
    engine = Engine(journal_path=str(path), registry=registry)
    engine.register_reducers({"demo.set": lambda view, e: [("demo.value", e.payload["v"])]})
    with engine:
        for v in range(3):
            engine.submit("demo.set", {"v": v})
    result = _cli("verify", path)
    assert result.exit_code == EXIT_DAMAGED
    assert "INFO topics this tradelab does not know: demo.set" in result.output


def test_verify_names_a_lost_tail_an_engine_went_on_past(journal):
    """The engine journals the loss and numbers seqs anew from it; verify said 'whole' after,
    as if nothing had been lost."""
    from tradelab.journal import JournalReader
    from tradelab.journal.tailmark import TailMark

    seq = JournalReader(journal).last_seq()
    TailMark(journal).write(seq + 50)  # as after a torn WAL tail: 50 committed events gone
    with Engine(journal_path=str(journal), accept_lost_tail=True) as engine:
        assert engine.recovery_report.damage["lost_from_seq"] == seq + 1
    result = _cli("verify", journal)
    assert result.exit_code == 0, result.output  # whole since: the loss is history, not damage
    assert f"records that events {seq + 1}..{seq + 50} were lost" in result.output
    deep = '{"a":' * 5000 + "1" + "}" * 5000  # that row damaged: said, never a traceback
    _sql(journal, f"UPDATE events SET payload = '{deep}' WHERE topic = 'journal.damage_detected'")
    result = _cli("verify", journal)
    assert "Traceback" not in result.output + result.stderr and "damaged payload" in result.output


def test_a_snapshot_beyond_a_lost_tail_is_not_loaded(tmp_path):
    """A snapshot covering events the journal lost holds state the journal does not: loaded,
    the store would not be the fold of the journal, and the next events would leave a gap."""
    from tradelab.journal.tailmark import TailMark

    path = tmp_path / "j.duckdb"
    with Engine(journal_path=str(path), snapshot_every_seconds=0) as engine:
        for i in range(20):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 100.0 + i}, key="NIFTY")
        engine.wait_applied()
        engine.snapshot_now()
        top = engine.store.version
    _sql(path, f"DELETE FROM events WHERE seq > {top - 8}")  # a torn tail took the last 8
    [[payload]] = _sql(
        path, "SELECT payload FROM events WHERE topic = 'mark.updated' ORDER BY seq DESC LIMIT 1"
    )[0]
    TailMark(path).write(top)
    with Engine(journal_path=str(path), accept_lost_tail=True) as engine:
        report = engine.recovery_report
        assert report.snapshot_id is None, report.summary()
        assert any("beyond the journal's last seq" in p for p in report.problems), report.problems
        # The fold of what is left: its last mark, not the snapshot's.
        assert engine.store.get("market.marks.NIFTY.price") == json.loads(payload)["price"] < 119


def test_a_run_on_a_journal_that_lost_committed_events_is_refused_unless_accepted(journal):
    """`run` went on past a lost tail with exit 0, numbering new events over the lost seqs,
    and `verify` then called the journal whole: the store was no longer the fold of what was
    committed (and maybe acknowledged). It is damage (exit 1) until the user accepts it."""
    from tradelab.journal import JournalReader
    from tradelab.journal.tailmark import TailMark

    seq = JournalReader(journal).last_seq()
    TailMark(journal).write(seq + 50)
    args = ["run", "--journal", str(journal), "--strategy", "none", "--duration", "0.5"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == EXIT_DAMAGED, (result.output, result.stderr)
    said = result.output + result.stderr
    assert f"events {seq + 1}..{seq + 50} were lost" in said and "--accept-lost-tail" in said
    # serve has no such flag: its route, the settings file, is named too
    assert "for tradelab serve `engine: {accept_lost_tail: true}` in its --config" in said
    assert JournalReader(journal).last_seq() == seq  # nothing written
    result = CliRunner().invoke(cli, [*args, "--accept-lost-tail"])
    assert result.exit_code == 0, (result.output, result.stderr)
    assert JournalReader(journal).last_seq() > seq


def test_events_the_ack_log_holds_are_not_called_lost(journal, monkeypatch):
    """verify and inspect compared the high-water mark with DuckDB's last seq alone: events the
    ack log held (and the next start copies in) were "committed and gone", exit 1."""
    from tradelab.journal import JournalReader
    from tradelab.journal import verify as verify_module
    from tradelab.journal.tailmark import TailMark

    seq = JournalReader(journal).last_seq()
    TailMark(journal).write(seq + 5)
    monkeypatch.setattr(verify_module, "pending_events", lambda path, last: 5)
    result = verify_journal(journal)
    assert result.ok, result.lines
    assert any(
        f"tail mark {seq + 5} <= last seq {seq + 5} with the ack log's" in line
        for line in result.lines
    )
    inspected = CliRunner().invoke(cli, ["inspect", str(journal)])
    assert inspected.exit_code == 0, (inspected.output, inspected.stderr)
    assert "LOST" not in inspected.output
    monkeypatch.setattr(verify_module, "pending_events", lambda path, last: 2)  # 3 are gone
    assert not verify_journal(journal).ok
    inspected = CliRunner().invoke(cli, ["inspect", str(journal)])
    assert inspected.exit_code == EXIT_DAMAGED
    assert f"events {seq + 3}..{seq + 5} were committed and are gone" in inspected.stderr
