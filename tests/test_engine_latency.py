"""Journal commit and critical-ack latency in `Engine.metrics()`: present after real critical
submits in every writer layout, ordered (p50 <= p99 <= max), and held in bounded windows."""

from __future__ import annotations

import pytest

from tradelab.engine import Engine
from tradelab.journal.latency import BatchStamps, JournalLatency, LatencyWindow

LAYOUTS = {
    "process+acklog": {"writer_process": True, "ack_log": True},
    "process": {"writer_process": True, "ack_log": False},
    "thread": {"writer_process": False},
}
FIGURES = ("journal_commit_latency", "journal_critical_ack_latency")


def _ordered(summary: dict) -> None:
    assert 0 < summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert summary["max_ms"] < 60_000  # plausible: well under the submit timeout


@pytest.mark.parametrize("layout", LAYOUTS)
def test_critical_submits_give_ordered_commit_and_ack_latencies(tmp_path, layout):
    engine = Engine(
        journal_path=str(tmp_path / "lab.duckdb"), snapshot_every_seconds=0, **LAYOUTS[layout]
    ).start()
    try:
        before = engine.metrics()  # start itself may journal a critical event
        acked_before = before["journal_critical_ack_latency"]["count"]
        committed_before = before["journal_commit_latency"]["count"]
        for i in range(20):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 100.0 + i}, critical=True)
        engine.flush()  # every batch sent is committed and reported
        metrics = engine.metrics()
    finally:
        engine.stop()
    acks = metrics["journal_critical_ack_latency"]
    commits = metrics["journal_commit_latency"]
    # Each blocking submit is its own batch (the submitter waits for it before the next).
    assert acks["count"] == acked_before + 20 and acks["window"] == acks["count"]
    assert commits["count"] >= committed_before + 20 and commits["window"] == commits["count"]
    for summary in (acks, commits):
        _ordered(summary)
        assert summary["window_limit"] >= summary["window"]
    assert metrics["journal_latency_unsampled_batches"] == 0


def test_an_engine_not_started_has_no_latency_figures(tmp_path):
    engine = Engine(journal_path=str(tmp_path / "lab.duckdb"), snapshot_every_seconds=0)
    assert not any(key in engine.metrics() for key in FIGURES)  # no writer yet


def test_the_window_keeps_only_its_latest_samples_and_counts_all():
    window = LatencyWindow(size=4)
    assert window.summary()["p50_ms"] is None and window.summary()["max_ms"] is None
    for ms in (50, 1, 2, 3, 4, 5):
        window.add(ms / 1e3)
    summary = window.summary()
    assert len(window) == 4 and summary["window"] == 4 and summary["count"] == 6
    assert summary["max_ms"] == pytest.approx(5.0)  # 50 ms fell out of the window
    assert summary["p50_ms"] == pytest.approx(4.0) and summary["p99_ms"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="latency window size 0"):
        LatencyWindow(size=0)


def test_stamps_past_their_cap_drop_the_oldest_unsampled_and_resolve_the_rest():
    stamps = BatchStamps(LatencyWindow(size=8), limit=3)
    for seq in (1, 2, 3, 4, 5):
        stamps.stamp(seq)
    assert len(stamps) == 3 and stamps.unsampled == 2
    stamps.resolve(4)  # batches 3 and 4 done; 5 still in flight
    assert len(stamps) == 1 and stamps.window.count == 2
    stamps.resolve(4)  # nothing new: nothing recorded twice
    assert stamps.window.count == 2


def test_the_engine_store_stays_bounded_under_many_batches(tmp_path):
    engine = Engine(
        journal_path=str(tmp_path / "lab.duckdb"), snapshot_every_seconds=0, writer_process=False
    ).start()
    try:
        writer = engine.journal.writer
        writer.latency = JournalLatency(window_size=16, in_flight=64)
        for i in range(60):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0 + i}, critical=True)
        engine.flush()
        metrics = engine.metrics()
    finally:
        engine.stop()
    for key in FIGURES:
        summary = metrics[key]
        assert summary["window"] == 16 == summary["window_limit"]
        assert summary["count"] >= 60
        _ordered(summary)
    assert len(writer.latency.commits) == 0 and len(writer.latency.critical_acks) == 0
