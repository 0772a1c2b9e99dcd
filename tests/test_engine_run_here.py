"""A blocking submitter processes its own event when the kernel is free (Kernel.run_here):
the same order, the same store and journal, and bus handlers still on the kernel thread."""

from __future__ import annotations

import threading
import time

from payloads import trade

from tradelab.engine import Engine
from tradelab.journal import JournalReader
from tradelab.journal.verify import verify_journal


def _engine(tmp_path, **kw) -> Engine:
    kw.setdefault("snapshot_every_seconds", 0)
    return Engine(journal_path=str(tmp_path / "lab.duckdb"), **kw)


def test_a_critical_submit_on_an_idle_engine_is_processed_by_its_submitter(tmp_path):
    seen: list[tuple[int, int]] = []  # (seq, thread the handler ran on)
    engine = _engine(tmp_path).start()
    try:
        engine.bus.subscribe(
            "trade.executed", lambda event: seen.append((event.seq, threading.get_ident()))
        )
        # Idle first: the start's own announcements may still be in the kernel's hands (then
        # the submit is queued, rightly), as they were once on a loaded machine.
        engine.wait_applied()
        deadline = time.monotonic() + 30
        while not (engine._kernel.queue.kernel_idle and not len(engine._kernel.queue)):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        before = engine.metrics()["events_processed_by_submitters"]
        event = engine.submit("trade.executed", trade(1), key="T1")
        assert engine.metrics()["events_processed_by_submitters"] == before + 1
        assert engine.store.version >= event.seq  # applied when submit returned
        assert engine.metrics()["durable_seq"] >= event.seq
        # Published by the kernel thread once the submitter synced: wait_applied is behind it.
        engine.wait_applied()
        assert seen == [(event.seq, engine._kernel.ident)]
        assert engine._kernel.ident != threading.get_ident()
    finally:
        engine.stop()


def test_an_event_processed_by_its_submitter_is_published_before_a_stop(tmp_path):
    seen: list[int] = []
    engine = _engine(tmp_path).start()
    engine.bus.subscribe("trade.executed", lambda event: seen.append(event.seq))
    events = [engine.submit("trade.executed", trade(i), key=f"T{i}") for i in range(5)]
    engine.stop()
    assert seen == [e.seq for e in events]


def test_producers_keep_their_order_when_some_submits_run_on_their_own_thread(tmp_path):
    """Ordinary events queued by a producer come before its next critical event, whichever
    thread processes that one; the journal then replays to the very same state."""
    engine = _engine(tmp_path).start()
    producers, rounds = 3, 30

    def produce(p: int) -> None:
        for r in range(rounds):
            for m in range(20):
                engine.submit("mark.updated", {"symbol": f"S{p}", "price": 100.0 + r * 20 + m})
            engine.submit("trade.executed", trade(p * 1000 + r), key=f"P{p}-{r}")
            # Then alone: the queue is often empty, so this one is often processed here.
            engine.submit("trade.executed", trade(p * 1000 + 500 + r), key=f"Q{p}-{r}")

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.stop()
    state_hash = engine.store.state_hash()
    events = JournalReader(tmp_path / "lab.duckdb").events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    for p in range(producers):
        mine = [
            e
            for e in events
            if e.key.startswith((f"P{p}-", f"Q{p}-")) or e.payload.get("symbol") == f"S{p}"
        ]
        prices = [e.payload["price"] for e in mine if e.topic == "mark.updated"]
        assert prices == sorted(prices)  # this producer's marks, in its order
        # Before each of its trades, exactly the 20 marks it submitted ahead of it.
        marks_before = 0
        for e in mine:
            if e.topic == "mark.updated":
                marks_before += 1
            else:
                assert marks_before % 20 == 0 and marks_before // 20 == int(e.key.split("-")[1]) + 1
        trades = [e.key[0] + e.key.split("-")[1] for e in mine if e.topic == "trade.executed"]
        assert trades == [f"{kind}{r}" for r in range(rounds) for kind in "PQ"]
    assert engine.metrics()["events_processed_by_submitters"] > 0
    assert verify_journal(tmp_path / "lab.duckdb").ok
    reopened = _engine(tmp_path).start()
    try:
        assert reopened.recovery_report.state_hash == state_hash
    finally:
        reopened.stop()
