"""The engine kernel: lifecycle events, submit from threads, ordering, transient topics, errors."""

from __future__ import annotations

import threading

import pytest

from tradelab.engine import Engine
from tradelab.errors import InvalidInputError, LifecycleError, StateError, UnknownTopicError
from tradelab.journal import Journal, JournalReader


def _engine(tmp_path, **kw) -> Engine:
    kw.setdefault("snapshot_every_seconds", 0)
    return Engine(journal_path=str(tmp_path / "lab.duckdb"), **kw)


def _trade(i: int) -> dict:
    return {
        "position_id": "t:NIFTY",
        "strategy": "t",
        "symbol": "NIFTY",
        "lot_size": 75,
        "quantity": 75,
        "side": "BUY",
        "price": 100.0 + i,
        "fee": 20.0,
        "trade_id": f"T{i}",
    }


def test_lifecycle_is_journaled_as_state_changed_events(tmp_path):
    with _engine(tmp_path) as engine:
        assert engine.state == "running"
        assert engine.store.get("engine.status") == "running"
    assert engine.state == "stopped"
    changes = [
        (e.payload["previous"], e.payload["state"])
        for e in JournalReader(tmp_path / "lab.duckdb").events(topic="engine.state_changed")
    ]
    assert changes == [
        ("created", "recovering"),
        ("recovering", "ready"),
        ("ready", "running"),
        ("running", "stopping"),
        ("stopping", "stopped"),
    ]


def test_submit_before_start_or_after_stop_is_a_lifecycle_error(tmp_path):
    engine = _engine(tmp_path)
    with pytest.raises(LifecycleError, match="created"):
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0})
    engine.start()
    engine.stop()
    with pytest.raises(LifecycleError, match="stopped"):
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0})
    with pytest.raises(LifecycleError):
        engine.start()


def test_critical_event_is_durable_before_submit_returns(tmp_path):
    with _engine(tmp_path, group_commit_ms=1000.0) as engine:
        event = engine.submit("trade.executed", _trade(1), key="T1")
        assert event is not None and event.critical and event.seq > 0
        assert engine.journal.writer.durable_seq >= event.seq
        assert engine.store.get("trading.trades.T1")["seq"] == event.seq


def test_events_from_many_threads_get_contiguous_seqs_and_bus_sees_applied_state(tmp_path):
    seen = []
    with _engine(tmp_path) as engine:

        def on_mark(event):
            # The store already holds the event when the bus delivers it.
            seen.append((event.seq, engine.store.version >= event.seq))

        engine.bus.subscribe("mark.updated", on_mark)

        def produce(n: int) -> None:
            for i in range(500):
                engine.submit("mark.updated", {"symbol": f"S{n}", "price": float(i)})

        threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        last = engine.flush()
        assert engine.store.get("market.marks.S3")["price"] == 499.0
    seqs = [s for s, _ in seen]
    assert len(seqs) == 2000 and seqs == sorted(seqs) and all(ok for _, ok in seen)
    reader = JournalReader(tmp_path / "lab.duckdb")
    assert reader.count() == reader.last_seq() >= last


def test_transient_tick_reaches_the_bus_but_never_the_store_or_journal(tmp_path):
    ticks = []
    with _engine(tmp_path) as engine:
        engine.bus.subscribe("market.tick", ticks.append)
        version = engine.flush()
        engine.publish_transient("market.tick", {"symbol": "NIFTY", "ltp": 24001.5})
        engine.submit("market.tick", {"symbol": "NIFTY", "ltp": 24002.0})
        assert engine.flush() == version
        with pytest.raises(InvalidInputError, match="not transient"):
            engine.publish_transient("mark.updated", {"symbol": "NIFTY", "price": 1.0})
    assert [t.payload["ltp"] for t in ticks] == [24001.5, 24002.0]
    assert all(t.seq == 0 for t in ticks)
    assert JournalReader(tmp_path / "lab.duckdb").counts_by_topic().get("market.tick") is None


def test_bad_input_is_refused_before_it_is_queued(tmp_path):
    with _engine(tmp_path) as engine:
        before = engine.flush()
        with pytest.raises(UnknownTopicError, match="no.such"):
            engine.submit("no.such", {})
        with pytest.raises(InvalidInputError, match="finite"):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": float("nan")})
        assert engine.flush() == before


def test_reducer_failure_rejects_the_event_without_consuming_a_seq(tmp_path):
    with _engine(tmp_path) as engine:
        before = engine.flush()
        with pytest.raises(StateError, match="trade.executed"):
            engine.submit("trade.executed", {"trade_id": "T1"})  # no position_id
        event = engine.submit("trade.executed", _trade(2), key="T2")
        assert event.seq == before + 1
        assert engine.rejected_events == 1


def test_a_rejected_fire_and_forget_event_is_announced_on_the_bus(tmp_path):
    with _engine(tmp_path) as engine:
        rejected = []
        engine.bus.subscribe("engine.event_rejected", rejected.append)
        # Ordinary: submit returns at once, before the kernel's reducer refuses it.
        assert engine.submit("mark.updated", {"price": 101.5}, key="no-symbol") is None
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 24000.0})
        engine.flush()
    assert len(rejected) == 1
    payload = rejected[0].payload
    assert payload["topic"] == "mark.updated" and payload["key"] == "no-symbol"
    assert "symbol" in payload["error"]
    assert engine.rejected_events == 1


def test_snapshots_are_taken_every_n_events_and_on_demand_and_pruned(tmp_path):
    with _engine(tmp_path, snapshot_every_events=300, keep_snapshots=3) as engine:
        for i in range(1000):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": float(i)})
        engine.flush()
        demanded = [engine.snapshot_now() for _ in range(3)]
        assert demanded[-1].last_seq <= engine.store.version
        engine.flush()
        assert engine.store.get("journal.last_snapshot")["id"] == demanded[-1].id
    journal = Journal(tmp_path / "lab.duckdb")
    try:
        kept = journal.snapshots()
    finally:
        journal.close()
    # The newest three: the one taken on stop, then the last two taken on demand.
    assert [s.id for s in kept] == [demanded[-1].id + 1, demanded[-1].id, demanded[-2].id]
    taken = JournalReader(tmp_path / "lab.duckdb").events(topic="snapshot.taken")
    ids = [e.payload["id"] for e in taken]
    by_count = ids[: ids.index(demanded[0].id)]
    # At least every 300 events (checked after each kernel batch), then on demand, then on stop.
    assert len(by_count) >= 1 and ids == [*by_count, *(d.id for d in demanded), kept[0].id]
    seqs = [e.payload["seq"] for e in taken[: len(by_count)]]
    assert all(later - earlier >= 300 for earlier, later in zip(seqs, seqs[1:], strict=False))


def test_restart_recovers_the_same_state_and_reports_it(tmp_path):
    with _engine(tmp_path, snapshot_every_events=250) as engine:
        for i in range(700):
            engine.submit("mark.updated", {"symbol": f"S{i % 7}", "price": float(i)})
        engine.submit("trade.executed", _trade(3), key="T3")
    final_hash, final_seq = engine.store.state_hash(), engine.store.version
    with _engine(tmp_path) as again:
        report = again.recovery_report
        assert report.last_seq == final_seq and report.state_hash == final_hash
        assert report.snapshot_id is not None and report.events_replayed < 10
        again.flush()
        recovered = again.store.get("market.marks.S6")
    assert recovered["price"] == 699.0
    journaled = JournalReader(tmp_path / "lab.duckdb").events(topic="journal.recovered")
    assert journaled[-1].payload["state_hash"] == final_hash
