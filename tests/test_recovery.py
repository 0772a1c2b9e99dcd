"""Recovery: bad snapshots skipped, migrations on load, the report, and `tradelab verify|inspect`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pytest
from click.testing import CliRunner

from tradelab.cli import main as cli
from tradelab.engine import Engine
from tradelab.errors import SchemaVersionError
from tradelab.events import DEFAULT_TOPICS, TopicRegistry, TopicSpec
from tradelab.journal import JournalReader
from tradelab.journal.verify import verify_journal
from tradelab.state import MigrationRegistry


def _fill(path, n=600, **kw):
    with Engine(
        journal_path=str(path), snapshot_every_events=200, snapshot_every_seconds=0, **kw
    ) as engine:
        for i in range(n):
            engine.submit("mark.updated", {"symbol": f"S{i % 5}", "price": float(i)})
            if i % 200 == 199:
                engine.snapshot_now()
    return engine.store.state_hash(), engine.store.version


def _corrupt_newest_snapshot(path) -> int:
    con = duckdb.connect(str(path))
    snap_id = con.execute("SELECT max(id) FROM snapshots").fetchone()[0]
    con.execute(
        "UPDATE snapshots SET state = replace(state, '\"price\"', '\"prise\"') WHERE id = ?",
        [snap_id],
    )
    con.close()
    return snap_id


def test_snapshot_with_wrong_hash_is_skipped_for_the_previous_one_and_reported(tmp_path):
    path = tmp_path / "lab.duckdb"
    state_hash, seq = _fill(path)
    bad = _corrupt_newest_snapshot(path)
    with Engine(journal_path=str(path)) as engine:
        report = engine.recovery_report
        assert report.snapshot_id is not None and report.snapshot_id < bad
        assert report.state_hash == state_hash and report.last_seq == seq
        assert [r["snapshot_id"] for r in report.rejected_snapshots] == [bad]
        assert "sha256 mismatch" in report.rejected_snapshots[0]["reason"]
    rejected = JournalReader(path).events(topic="snapshot.rejected")
    assert [e.payload["snapshot_id"] for e in rejected] == [bad]


def test_verify_passes_a_whole_journal_and_fails_a_tampered_snapshot(tmp_path):
    path = tmp_path / "lab.duckdb"
    _fill(path)
    result = verify_journal(path)
    assert result.ok, result.lines
    assert result.replay_hash == result.recovery_hash
    ok = CliRunner().invoke(cli, ["verify", str(path)])
    assert ok.exit_code == 0 and "journal is whole" in ok.output
    _corrupt_newest_snapshot(path)
    bad = CliRunner().invoke(cli, ["verify", str(path)])
    assert bad.exit_code == 1 and "sha256 mismatch" in bad.output


def test_inspect_prints_counts_snapshots_and_state_hash(tmp_path):
    path = tmp_path / "lab.duckdb"
    state_hash, _ = _fill(path, n=100)
    out = CliRunner().invoke(cli, ["inspect", str(path)])
    assert out.exit_code == 0, out.output
    assert "mark.updated" in out.output and "100" in out.output
    assert state_hash[:16] in out.output or "state hash" in out.output


def test_verify_refuses_and_inspect_reads_segments_while_another_process_runs_the_engine(
    tmp_path,
):
    path = tmp_path / "lab.duckdb"
    with Engine(
        journal_path=str(path),
        segment_every_events=100,
        segment_every_seconds=0,
        snapshot_every_seconds=0,
    ) as engine:
        run = [sys.executable, "-m", "tradelab.cli"]
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        early = subprocess.run(  # nothing sealed yet: says so instead of a seq range
            [*run, "inspect", str(path)], capture_output=True, text=True, env=env, timeout=60
        )
        for i in range(250):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": float(i)})
        engine.flush()
        engine.seal_segments()
        verify = subprocess.run(
            [*run, "verify", str(path)], capture_output=True, text=True, env=env, timeout=60
        )
        inspect = subprocess.run(
            [*run, "inspect", "--json", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert verify.returncode == 3  # in use: the journal cannot be used here (cli exit codes)
    assert "JournalReader" in verify.stderr and "Conflicting lock" not in verify.stderr
    assert inspect.returncode == 0, inspect.stderr
    info = json.loads(inspect.stdout)
    assert info["source"] == "segments" and info["topics"]["mark.updated"] == 250
    assert early.returncode == 0, early.stderr
    assert "events     0\n" in early.stdout and "seq 1..0" not in early.stdout
    assert "no segment is sealed yet" in early.stdout


def test_inspect_says_what_the_ack_log_holds_beyond_duckdb(tmp_path, monkeypatch):
    import tradelab.journal.verify as verify_module

    path = tmp_path / "lab.duckdb"
    _fill(path, n=10)
    real = verify_module.inspect_journal
    # As after a kill -9 between the ack log's sync and DuckDB's commit (tests/test_crash.py).
    monkeypatch.setattr(
        verify_module,
        "inspect_journal",
        lambda p: {**real(p), "ack_log_pending_events": 5},
    )
    out = CliRunner().invoke(cli, ["inspect", str(path)])
    assert out.exit_code == 0, out.output
    assert "ack log    5 acknowledged event(s) after seq" in out.output


def _registry(version: int) -> TopicRegistry:
    return TopicRegistry([*DEFAULT_TOPICS, TopicSpec("test.level", schema_version=version)])


def _level_reducer(view, event):
    return [("test.level", event.payload["level"])]


def test_old_events_are_upcast_during_replay(tmp_path):
    path = tmp_path / "lab.duckdb"
    old = Engine(
        journal_path=str(path),
        registry=_registry(1),
        snapshot_every_events=0,
        snapshot_every_seconds=0,
    )
    old.register_reducers({"test.level": [lambda view, e: [("test.level", e.payload["lvl"])]]})
    with old:
        old.submit("test.level", {"lvl": 7}, wait=True)
    # Drop the snapshots so the v1 event must be replayed through the upcaster.
    con = duckdb.connect(str(path))
    con.execute("DELETE FROM snapshots")
    con.close()
    registry = _registry(2)
    migrations = MigrationRegistry(topics=registry)
    migrations.register_event_upcaster("test.level", 1, lambda p: {"level": p["lvl"]})
    new = Engine(journal_path=str(path), registry=registry, migrations=migrations)
    new.register_reducers({"test.level": [_level_reducer]})
    with new:
        assert new.store.get("test.level") == 7


def test_snapshot_of_an_older_schema_is_migrated_and_of_a_newer_one_refused(tmp_path):
    path = tmp_path / "lab.duckdb"
    _fill(path, n=50)
    migrations = MigrationRegistry(snapshot_version=2, topics=TopicRegistry())
    migrations.register_snapshot_upcaster(1, lambda state: {**state, "schema": {"v": 2}})
    with Engine(journal_path=str(path), state_schema_version=2, migrations=migrations) as v2:
        assert v2.recovery_report.snapshot_id is not None
        assert v2.store.get("schema.v") == 2
    with pytest.raises(SchemaVersionError, match="newer"):
        Engine(journal_path=str(path)).start()


def test_snapshots_folded_by_other_reducers_are_replayed_past_not_mixed_in(tmp_path):
    """An upgrade that changes what the reducers make of the same events: the old snapshots
    are sound but are not this code's state, so recovery, verify and as-of start before them."""
    from tradelab.analytics import Analytics

    path = tmp_path / "j.duckdb"

    def legacy(view, event):  # what the earlier reducers also made of a mark
        return [("legacy.marks", (view.get("legacy.marks") or 0) + 1)]

    old = Engine(journal_path=str(path), snapshot_every_events=0, snapshot_every_seconds=0)
    old.register_reducers({"mark.updated": [legacy]})
    old.store.fold_version = 1
    with old:
        for i in range(30):
            old.submit("mark.updated", {"symbol": "ABC", "price": float(i)})
        old.snapshot_now()
    with Engine(journal_path=str(path)) as engine:
        report = engine.recovery_report
        assert report.ok and report.snapshot_id is None and report.events_replayed > 30
        assert [s["last_seq"] for s in report.passed_snapshots] and "version 1" in report.summary()
        assert engine.store.get("legacy", None) is None
        assert engine.store.get("market.marks.ABC")["price"] == 29.0
    result = verify_journal(path)
    assert result.ok, result.lines
    assert any("folded by reducers of version 1" in line for line in result.lines)
    state = Analytics(path).state_at(seq=20)
    assert state.get("legacy", None) is None
