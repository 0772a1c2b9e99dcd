"""The submit queue's bound: producers wait, then get OverloadError; nothing accepted is lost;
blocking submitters are not held behind a flood; stop() ends in bounded time under load."""

from __future__ import annotations

import threading
import time

import pytest

from tests.held_kernel import HeldKernel
from tradelab.engine import Engine
from tradelab.engine.submissions import SubmitQueue, Wakeup
from tradelab.errors import LifecycleError, OverloadError
from tradelab.journal import JournalReader


def _mark(i: int) -> dict:
    return {"symbol": "NIFTY", "price": 100.0 + i}


def _full_engine(tmp_path, queued: int, **config) -> tuple[Engine, HeldKernel]:
    """A running engine whose kernel is held in a handler, with `queued` more events waiting
    behind the one it holds (marks priced 100 + i, i = 0..queued)."""
    engine = Engine(
        journal_path=str(tmp_path / "lab.duckdb"), snapshot_every_seconds=0, **config
    ).start()
    stuck = HeldKernel(engine)
    engine.submit("mark.updated", _mark(0))
    assert stuck.entered.wait(10)
    for i in range(1, queued + 1):
        engine.submit("mark.updated", _mark(i))
    return engine, stuck


def test_a_full_queue_makes_a_producer_wait_then_refuses_naming_depth_and_limit(tmp_path):
    path = tmp_path / "lab.duckdb"
    engine, stuck = _full_engine(tmp_path, 50, max_queued_events=50, submit_timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(OverloadError, match="50 events queued, limit 50"):
        engine.submit("mark.updated", _mark(51))
    assert time.monotonic() - started >= 0.25  # it waited for room before refusing
    metrics = engine.metrics()
    assert metrics["queue_depth"] == 50 and metrics["queue_high_water"] == 50
    assert metrics["overload_refusals"] == 1 and metrics["producer_wait_seconds"] > 0.2
    stuck.release.set()
    engine.stop()
    prices = [e.payload["price"] for e in JournalReader(path).events(topic="mark.updated")]
    assert prices == [100.0 + i for i in range(51)]  # every accepted event, in order


def test_a_waiting_producer_gets_room_once_the_kernel_catches_up(tmp_path):
    engine, stuck = _full_engine(tmp_path, 20, max_queued_events=20, submit_timeout_seconds=30)
    threading.Timer(0.2, stuck.release.set).start()
    engine.submit("mark.updated", _mark(21))  # waits, then is accepted
    assert engine.flush() >= 21 and engine.metrics()["producer_waits"] == 1
    engine.stop()


def test_a_critical_event_is_not_held_behind_a_full_queue_of_other_producers(tmp_path):
    engine, stuck = _full_engine(
        tmp_path, 100, max_queued_events=100, kernel_batch_size=10, submit_timeout_seconds=0.2
    )
    acked: list = []
    critical = threading.Thread(
        target=lambda: acked.append(
            engine.submit("pnl.session_reset", {"session_date": "2026-11-25"}, timeout=30)
        )
    )
    critical.start()  # let in despite the full queue: its producer blocks anyway
    time.sleep(0.1)
    stuck.release.set()
    critical.join(30)
    # Served in the first kernel pass after the stall, ahead of most of the flood (10 a pass).
    assert acked and acked[0].seq <= 2 + 10 + 1
    engine.stop()


def test_each_producer_keeps_its_order_and_blocking_lanes_are_served_first():
    queue = SubmitQueue(max_events=1000, wakeup=Wakeup())

    def produce(name: str, n: int, urgent_last: bool) -> None:
        for i in range(n):
            last = urgent_last and i == n - 1
            queue.put((name, i), bounded=not last, urgent=last, timeout=1)

    flooders = [threading.Thread(target=produce, args=(f"f{k}", 300, False)) for k in range(2)]
    for t in flooders:
        t.start()
    for t in flooders:
        t.join()
    blocker = threading.Thread(target=produce, args=("b", 3, True))
    blocker.start()
    blocker.join()
    # The whole blocking lane, up to its blocking item, and nothing else: a short pass.
    assert queue.take(30) == [("b", 0), ("b", 1), ("b", 2)]
    second = queue.take(30)
    taken = second + [item for _ in range(40) for item in queue.take(30)]
    assert len(taken) == 600 and len(queue) == 0
    for name in ("f0", "f1"):
        assert [i for n, i in taken if n == name] == list(range(300))
    # Fair shares: the two flooders alternate rather than one draining first.
    assert [n for n, _ in second].count("f0") == [n for n, _ in second].count("f1") == 15


def test_stop_under_a_flood_is_bounded_and_waiting_producers_are_told(tmp_path):
    engine = Engine(
        journal_path=str(tmp_path / "lab.duckdb"),
        max_queued_events=2_000,
        submit_timeout_seconds=60,
        snapshot_every_seconds=0,
    ).start()
    outcome: list[str] = []

    def flood() -> None:
        i = 0
        try:
            while True:
                engine.submit("mark.updated", _mark(i))
                i += 1
        except LifecycleError:
            outcome.append("stopped")

    threads = [threading.Thread(target=flood) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    started = time.monotonic()
    engine.stop()
    # Generous: the drain is at most max_queued_events (~tens of ms here); 30 s only catches
    # an unbounded drain like the minutes an unbounded queue took.
    assert time.monotonic() - started < 30
    for t in threads:
        t.join(10)
    assert outcome == ["stopped", "stopped"]
    assert engine.metrics()["queue_high_water"] <= 2_000 + 10


def test_lanes_of_ended_producer_threads_are_forgotten():
    queue = SubmitQueue(max_events=100, wakeup=Wakeup())
    threads = [
        threading.Thread(
            target=queue.put, args=(i,), kwargs={"bounded": True, "urgent": False, "timeout": 1}
        )
        for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(queue.take(100)) == list(range(20))
    queue.prune(every_seconds=0)
    assert queue.metrics_lanes() == 0


def test_a_flush_follows_everything_other_threads_queued_before_it(tmp_path):
    engine = Engine(journal_path=str(tmp_path / "lab.duckdb"), snapshot_every_seconds=0).start()
    stuck = HeldKernel(engine)
    engine.submit("mark.updated", _mark(0))
    assert stuck.entered.wait(10)

    def produce() -> None:
        for i in range(1, 301):
            engine.submit("mark.updated", _mark(i))

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join()  # 300 events queued in another thread's lane
    stuck.release.set()
    engine.flush()
    assert engine.store.get("market.marks.NIFTY.price") == 400.0
    engine.stop()


def test_a_producer_waiting_for_room_gets_lifecycle_error_when_the_queue_closes():
    q = SubmitQueue(max_events=1, wakeup=Wakeup())
    q.put("first", bounded=True, urgent=False, timeout=1.0)
    outcome = {}

    def producer():
        try:
            q.put("second", bounded=True, urgent=False, timeout=10.0)
            outcome["result"] = "accepted"
        except LifecycleError as exc:
            outcome["result"] = exc

    t = threading.Thread(target=producer)
    t.start()
    deadline = time.monotonic() + 5
    while q._waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert q._waiting == 1
    q.close("engine is stopping; submit() needs a running engine")
    t.join(5)
    assert isinstance(outcome.get("result"), LifecycleError), outcome
    assert len(q) == 1  # nothing accepted after the close
