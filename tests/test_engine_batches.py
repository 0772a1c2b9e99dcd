"""The kernel applies each drained batch in one store call: a rejected event in the middle of a
batch is dropped alone, the events after it get the next seqs, and the journal stays the fold."""

from __future__ import annotations

import threading

import pytest

from tradelab.engine import Engine, build_store
from tradelab.errors import StateError
from tradelab.journal import JournalReader


def _trade(i: int) -> dict:
    return {
        "position_id": "t:NIFTY",
        "strategy": "t",
        "symbol": "NIFTY",
        "lot_size": 75,
        "quantity": 75,
        "side": "BUY" if i % 2 else "SELL",
        "price": 100.0 + i,
        "fee": 20.0,
        "trade_id": f"T{i}",
    }


def test_rejections_inside_a_batch_leave_no_seq_gap_and_replay_gives_the_live_state(tmp_path):
    engine = Engine(
        journal_path=str(tmp_path / "lab.duckdb"), snapshot_every_seconds=0, kernel_batch_size=500
    )
    engine.start()
    gate = threading.Event()
    # Hold the kernel inside a bus handler so the submissions below pile up into batches.
    engine.bus.subscribe("signal.detected", lambda event: gate.wait(5))
    start_seq = engine.flush()
    engine.submit("signal.detected", {"signal": "hold"}, key="hold")
    bad = {5, 6, 200, 499}
    for i in range(500):
        if i in bad:
            engine.submit("order.filled", {"symbol": "NIFTY"})  # no order_id: its reducer fails
        else:
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 24000.0 + i})
    gate.set()
    last = engine.flush()
    live_hash = engine.store.state_hash()
    engine.stop()

    assert engine.rejected_events == len(bad)
    assert last == start_seq + 1 + 500 - len(bad)
    events = JournalReader(tmp_path / "lab.duckdb").events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    marks = [e for e in events if e.topic == "mark.updated"]
    assert [e.payload["price"] for e in marks] == [24000.0 + i for i in range(500) if i not in bad]
    assert not [e for e in events if e.topic == "order.filled"]
    replayed = build_store()
    replayed.apply_batch(e for e in events if e.seq <= last)
    assert replayed.state_hash() == live_hash


def test_a_critical_event_rejected_mid_batch_fails_only_its_own_submitter(tmp_path):
    with Engine(journal_path=str(tmp_path / "lab.duckdb"), snapshot_every_seconds=0) as engine:
        results: dict[int, object] = {}

        def broker(i: int, payload: dict) -> None:
            try:
                results[i] = engine.submit("trade.executed", payload, key=f"T{i}")
            except StateError as exc:
                results[i] = exc

        threads = [
            threading.Thread(target=broker, args=(1, _trade(1))),
            threading.Thread(target=broker, args=(2, {"trade_id": "T2"})),
            threading.Thread(target=broker, args=(3, _trade(3))),
        ]
        for i in range(300):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 24000.0 + i})
            if i % 100 == 0:
                threads[i // 100].start()
        for thread in threads:
            thread.join()
        engine.flush()
        assert isinstance(results[2], StateError) and "trade.executed" in str(results[2])
        durable = [results[1], results[3]]
        assert all(event.seq <= engine.store.version for event in durable)
        assert engine.store.get("trading.trades.T1")["seq"] == results[1].seq
        assert engine.store.get("trading.trades.T3")["seq"] == results[3].seq
        assert engine.store.get("trading.trades.T2") is None
        assert engine.rejected_events == 1


@pytest.mark.parametrize("kernel_batch_size", [1, 1000])
def test_submit_order_is_seq_order_whatever_the_batch_size(tmp_path, kernel_batch_size):
    with Engine(
        journal_path=str(tmp_path / "lab.duckdb"),
        snapshot_every_seconds=0,
        kernel_batch_size=kernel_batch_size,
    ) as engine:
        first = engine.flush() + 1
        for i in range(300):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": float(i)})
        engine.flush()
    events = JournalReader(tmp_path / "lab.duckdb").events(
        since_seq=first - 1, topic="mark.updated"
    )
    assert [e.payload["price"] for e in events] == [float(i) for i in range(300)]
    assert [e.seq for e in events] == list(range(first, first + 300))


def test_an_inline_kernel_applies_each_submit_on_the_submitting_thread(tmp_path):
    # A backtest's engine: no kernel thread; a submit returns with its event applied and
    # published, a handler's own submit is taken by the same pass, a critical one is durable.
    journal = tmp_path / "inline.duckdb"
    engine = Engine(journal_path=str(journal), inline_kernel=True).start()
    seen = []

    def answer(event):
        seen.append((event.payload["symbol"], threading.current_thread().name))
        if event.payload["symbol"] == "NIFTY":
            engine.submit("mark.updated", {"symbol": "BANKNIFTY", "price": 2.0}, key="BANKNIFTY")

    engine.bus.subscribe("mark.updated", answer)
    try:
        assert "engine-kernel" not in {t.name for t in threading.enumerate()}
        version = engine.store.version
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0}, key="NIFTY")
        assert engine.store.version == version + 2  # its event and the handler's answer
        here = threading.current_thread().name
        assert seen == [("NIFTY", here), ("BANKNIFTY", here)]
        event = engine.submit("trade.executed", _trade(1), key="t:NIFTY")
        assert event is not None and engine.metrics()["durable_seq"] >= event.seq
        assert engine.flush() == engine.store.version
    finally:
        engine.stop()
    topics = [(e.topic, e.key) for e in JournalReader(journal).events() if e.seq > version]
    assert topics[:3] == [
        ("mark.updated", "NIFTY"),
        ("mark.updated", "BANKNIFTY"),
        ("trade.executed", "t:NIFTY"),
    ]


def test_without_durable_acks_every_event_is_in_the_journal_once_stop_returns(tmp_path):
    # A backtest's engine: critical submits return once applied (no sync each), events reach
    # the writer in batches, and stop() leaves the whole run durable in the journal.
    from tradelab.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="inline_kernel"):
        Engine(journal_path=str(tmp_path / "x.duckdb"), durable_acks=False)
    journal = tmp_path / "fast.duckdb"
    engine = Engine(journal_path=str(journal), inline_kernel=True, durable_acks=False).start()
    try:
        for i in range(1, 601):
            event = engine.submit("trade.executed", _trade(i), key="t:NIFTY")
            assert event is not None and event.seq == engine.store.version
        last = engine.store.version
    finally:
        engine.stop()
    trades = [e.payload["trade_id"] for e in JournalReader(journal).events(topic="trade.executed")]
    assert trades == [f"T{i}" for i in range(1, 601)]
    assert max(e.seq for e in JournalReader(journal).events()) > last  # and the stop itself


def test_an_inline_kernel_journals_its_snapshots_without_waiting_on_itself(tmp_path):
    # A snapshot is announced by the writer client's thread; inline, that thread only queues
    # `snapshot.taken` (the submitting thread's next pass journals it), so neither waits on
    # the other however often snapshots are taken.
    journal = tmp_path / "snap.duckdb"
    engine = Engine(
        journal_path=str(journal),
        inline_kernel=True,
        durable_acks=False,
        snapshot_every_events=100,
    ).start()
    try:
        for i in range(1, 1001):
            engine.submit("trade.executed", _trade(i), key="t:NIFTY")
    finally:
        engine.stop(timeout=30)
    taken = list(JournalReader(journal).events(topic="snapshot.taken"))
    assert len(taken) >= 5


def test_waiting_for_applied_events_leaves_them_held_for_the_next_batch(tmp_path):
    # An order's wait (wait_applied) and a lockstep's (when_applied) need the events applied,
    # not journaled: without durable acks the events stay held and reach the writer in one
    # batch, instead of a pipe write per wait. flush() and stop() still hand them all over.
    journal = tmp_path / "held.duckdb"
    engine = Engine(journal_path=str(journal), inline_kernel=True, durable_acks=False).start()
    batches: list[tuple[int, int]] = []
    engine.journal.writer.batch_listener = lambda first, last, body: batches.append((first, last))
    settled: list[int] = []
    try:
        for i in range(1, 21):
            engine.submit("trade.executed", _trade(i), key="t:NIFTY")
            assert engine.wait_applied() == engine.store.version
            engine.when_applied(settled.append)
        assert settled == list(range(engine.store.version - 19, engine.store.version + 1))
        assert batches == []  # 20 waits, no hand-off yet
        assert engine.flush() == engine.store.version
        assert len(batches) == 1 and batches[0][1] == engine.store.version
    finally:
        engine.stop()
    trades = [e.payload["trade_id"] for e in JournalReader(journal).events(topic="trade.executed")]
    assert trades == [f"T{i}" for i in range(1, 21)]


def test_an_inline_submit_skips_the_queue_only_when_it_is_empty_and_is_counted(tmp_path):
    # Inline, a submit with nothing queued is applied at once without the queue; with an event
    # queued by another thread (the writer client's announcements: queued, not drained) it is
    # queued too and the same pass applies both (in the queue's fair order across threads). A
    # handler's submits follow their cause, and `submitted_count` (a lockstep's "anything
    # new?") counts every one.
    journal = tmp_path / "direct.duckdb"
    engine = Engine(journal_path=str(journal), inline_kernel=True, durable_acks=False).start()

    def answer(event):
        if event.payload["symbol"] == "A":
            for symbol in ("A1", "A2"):
                engine.submit("mark.updated", {"symbol": symbol, "price": 2.0}, key=symbol)

    engine.bus.subscribe("mark.updated", answer)
    try:
        version, count = engine.store.version, engine.submitted_count
        engine.submit("mark.updated", {"symbol": "A", "price": 1.0}, key="A")
        assert engine.store.version == version + 3
        assert engine.submitted_count == count + 3
        announcer = threading.Thread(
            target=engine._announce, args=("mark.updated", {"symbol": "Q", "price": 3.0})
        )
        announcer.start()
        announcer.join()
        assert engine.store.version == version + 3  # queued, not applied yet
        engine.submit("mark.updated", {"symbol": "B", "price": 4.0}, key="B")
        assert engine.store.version == version + 5
        assert engine.submitted_count == count + 5
    finally:
        engine.stop()
    symbols = [e.payload["symbol"] for e in JournalReader(journal).events(topic="mark.updated")]
    assert symbols[:3] == ["A", "A1", "A2"] and sorted(symbols[3:]) == ["B", "Q"]
