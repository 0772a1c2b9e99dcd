"""The default session with its reconciler: the broker's account outlives a restart, and a
difference becomes a queryable row of the DuckDB journal."""

from __future__ import annotations

import duckdb
from test_lab import fast_lab, wait_for

from tradelab.broker.reconcile import ReconcilerConfig


def lab_with(path, **reconciler):
    lab = fast_lab(path)
    lab.reconciler_config = ReconcilerConfig(settle_s=0.0, interval_s=3600, **reconciler)
    return lab


def test_restarted_session_broker_remembers_its_position_and_agrees_with_the_book(tmp_path):
    path = tmp_path / "lab.duckdb"
    lab = lab_with(path).start()
    symbol = lab.feed.symbols[2]
    assert wait_for(lambda: lab.store.get(f"market.marks.{symbol}") is not None)
    lab.place_order(symbol, "BUY", 75)
    fills = lab.broker.fills_since(0)
    lab.stop()

    again = lab_with(path).start()
    try:
        assert again.broker.positions() == {symbol: 75}
        assert again.broker.fills_since(0) == fills  # same fill ids after the restart
        assert wait_for(lambda: again.reconciler.runs >= 1)
        assert wait_for(lambda: again.store.get("reconciliation.status", None) == "completed")
        assert again.store.get("reconciliation.last_run.ok") is True
    finally:
        again.stop()


def test_a_difference_is_a_queryable_row_of_the_journal(tmp_path):
    path = tmp_path / "lab.duckdb"
    lab = lab_with(path).start()
    try:
        symbol = lab.feed.symbols[2]
        # The run on start has finished (`runs` counts a run as it begins): the fault below is
        # found by the run this test makes, not adopted by that one.
        assert wait_for(lambda: lab.store.get("reconciliation.status", None) == "completed")
        lab.broker.faults.hold_outside_position(symbol, 75, 100.0)
        report = lab.reconciler.run_once()
        assert report.kinds == ["unknown_position"]
    finally:
        lab.stop()
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "SELECT json_extract_string(payload, '$.kind'), "
            "CAST(json_extract(payload, '$.expected') AS INTEGER), "
            "CAST(json_extract(payload, '$.actual') AS INTEGER), "
            "json_extract_string(payload, '$.symbol') "
            "FROM events WHERE topic = 'reconciliation.mismatch'"
        ).fetchall()
    assert rows == [("unknown_position", 0, 75, symbol)]
