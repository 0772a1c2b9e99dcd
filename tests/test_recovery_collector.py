"""Recovery leaves the garbage collector as it found it."""

from __future__ import annotations

import gc

import duckdb

from tradelab.engine import Engine


def test_the_collector_is_enabled_again_after_a_recovery(tmp_path):
    path = str(tmp_path / "j.duckdb")
    with Engine(journal_path=path, snapshot_every_seconds=0) as engine:
        for i in range(50):
            engine.submit("mark.updated", {"symbol": "A", "price": float(i)})
    assert gc.isenabled()
    with Engine(journal_path=path, snapshot_every_seconds=0) as engine:  # recovers: snapshot + tail
        assert engine.recovery_report.snapshot_id is not None
        assert gc.isenabled()
    assert gc.isenabled()


def test_a_snapshot_whose_row_names_another_seq_than_its_state_is_rejected(tmp_path):
    path = str(tmp_path / "j.duckdb")
    with Engine(journal_path=path, snapshot_every_seconds=0) as engine:
        for i in range(30):
            engine.submit("mark.updated", {"symbol": "A", "price": float(i)})
        engine.snapshot_now()
        for i in range(30):
            engine.submit("mark.updated", {"symbol": "B", "price": float(i)})
        # the stop snapshots too: the newest, 30 events after the first
    con = duckdb.connect(path)
    newest = con.execute("SELECT max(id) FROM snapshots").fetchone()[0]
    con.execute(f"UPDATE snapshots SET last_seq = last_seq - 5 WHERE id = {newest}")
    con.close()
    with Engine(journal_path=path, snapshot_every_seconds=0) as engine:
        report = engine.recovery_report
        assert [r["snapshot_id"] for r in report.rejected_snapshots] == [newest]
        assert "says seq" in report.rejected_snapshots[0]["reason"]
        assert report.snapshot_id != newest and not report.ok
