"""Analytics on a journal an engine is still writing: read through its sealed segments, never
showing DuckDB's lock error, saying how current the data is."""

from __future__ import annotations

import pytest

from tests import analytics_script as script
from tradelab.analytics import Analytics
from tradelab.engine import Engine
from tradelab.errors import InvalidInputError


@pytest.mark.parametrize(
    "writer_process", [True, False], ids=["held-by-writer-process", "held-by-this-process"]
)
def test_running_engine_journal_reads_sealed_segments(tmp_path, writer_process):
    path = tmp_path / "live.duckdb"
    engine = Engine(journal_path=str(path), writer_process=writer_process, segment_every_seconds=0)
    engine.start()
    try:
        analytics = Analytics(path)
        before = analytics.sql("SELECT count(*) AS n FROM fills")
        assert before["n"].tolist() == [0]
        assert analytics.source == "segments"
        for i in range(3):
            engine.submit(
                "trade.executed",
                {
                    "trade_id": f"T{i}",
                    "order_id": f"O{i}",
                    "position_id": f"s:{script.X}",
                    "strategy": "s",
                    "symbol": script.X,
                    "side": "BUY",
                    "quantity": 75,
                    "price": 100.0 + i,
                    "fee": 0.0,
                    "lot_size": 75,
                },
                key=f"s:{script.X}",
            )
        sealed = engine.seal_segments()
        fills = analytics.sql("SELECT price, position_after FROM fills ORDER BY seq")
        assert fills.values.tolist() == [[100.0, 75], [101.0, 150], [102.0, 225]]
        assert analytics.source == "segments" and analytics.last_seq == sealed
        assert f"events up to seq {analytics.last_seq}" in analytics.note
        store = analytics.state_at(sealed)  # replayed from the segments: no snapshot readable
        assert store.get(f"trading.positions.s:{script.X}")["net_quantity"] == 225
        assert analytics.asof.last["source"] == "segments"
        # A time past the sealed horizon is refused, not answered with the horizon's state.
        with pytest.raises(InvalidInputError, match="past what is readable of this running"):
            analytics.state_at(ts="2099-01-01 09:15", clock="journal")
    finally:
        engine.stop()
    stopped = Analytics(path)
    assert stopped.sql("SELECT count(*) AS n FROM fills")["n"].tolist() == [3]
    assert stopped.source == "journal" and stopped.note == ""
    # Analytics holds the file only while a query runs: an engine starts on it right after.
    restarted = Engine(journal_path=str(path), writer_process=False).start()
    try:
        assert restarted.recovery_report.last_seq >= sealed
    finally:
        restarted.stop()


def test_segments_left_without_their_journal_are_read_and_said_to_be_so(tmp_path):
    # The note said a running engine held the journal: there was no engine and no file.
    path = tmp_path / "gone.duckdb"
    engine = Engine(journal_path=str(path), writer_process=False, segment_every_seconds=0)
    engine.start()
    try:
        engine.submit("mark.updated", {"symbol": script.X, "price": 100.0})
    finally:
        engine.stop()  # seals what is left
    path.unlink()
    analytics = Analytics(path)
    assert analytics.sql("SELECT count(*) AS n FROM marks")["n"].tolist() == [1]
    assert analytics.source == "segments" and "running engine" not in analytics.note
    assert "journal gone.duckdb is missing (only its segments are left in" in analytics.note
    assert f"events up to seq {analytics.last_seq}" in analytics.note
