"""While a critical submit is in flight, producers of other threads with a kernel pass of their
own events queued step aside (for a bounded time); a producer without such a backlog, the kernel
thread and the engine's own events never do."""

from __future__ import annotations

import threading
import time

from tests.held_kernel import HeldKernel
from tests.payloads import trade
from tradelab.engine import Engine
from tradelab.engine.submissions import CriticalPriority


def _mark(i: int) -> dict:
    return {"symbol": "NIFTY", "price": 100.0 + i}


def _in_thread(target) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(target()), daemon=True)
    thread.start()
    return thread, out


def test_an_ordinary_producer_waits_until_the_criticals_in_flight_return():
    priority = CriticalPriority(max_wait=30.0, backlog=lambda: 5, min_backlog=5)
    priority.step_aside()  # nothing in flight: returns at once
    assert priority.waits == 0
    priority.begin()
    priority.begin()
    waiter, done = _in_thread(lambda: (priority.step_aside(), time.monotonic())[1])
    time.sleep(0.1)
    priority.end()
    time.sleep(0.1)
    assert not done  # one of the two still in flight
    released = time.monotonic()
    priority.end()
    waiter.join(10)
    assert done and done[0] >= released
    assert priority.waits == 1 and priority.wait_seconds >= 0.15


def test_the_wait_is_bounded_and_zero_turns_it_off():
    priority = CriticalPriority(max_wait=0.2, backlog=lambda: 5, min_backlog=5)
    priority.begin()  # never ends: a critical stuck behind something
    started = time.monotonic()
    priority.step_aside()
    # It waited (counted, and for about max_wait), then went on although the critical never
    # ended. The upper bound is generous: a loaded machine wakes late, never 50x late.
    assert 0.15 <= time.monotonic() - started < 10
    assert priority.waits == 1 and 0.15 <= priority.wait_seconds < 10
    off = CriticalPriority(max_wait=0.0, backlog=lambda: 5, min_backlog=5)
    off.begin()
    started = time.monotonic()
    off.step_aside()
    assert time.monotonic() - started < 0.1 and off.waits == 0


def test_a_producer_without_a_backlog_does_not_wait():
    priority = CriticalPriority(max_wait=30.0, backlog=lambda: 4, min_backlog=5)
    priority.begin()
    started = time.monotonic()
    priority.step_aside()
    assert time.monotonic() - started < 1 and priority.waits == 0


def _engine(tmp_path, priority_ms: float) -> tuple[Engine, HeldKernel]:
    """A running engine (kernel passes of 5) whose kernel is held in a handler."""
    engine = Engine(
        journal_path=str(tmp_path / "lab.duckdb"),
        snapshot_every_seconds=0,
        kernel_batch_size=5,
        critical_priority_ms=priority_ms,
    ).start()
    held = HeldKernel(engine)
    engine.submit("mark.updated", _mark(0))
    assert held.entered.wait(10)
    return engine, held


def _producer(engine: Engine, backlog: int) -> tuple[threading.Thread, list, threading.Event]:
    """A thread that queues `backlog` marks, waits for `go`, then submits one more (price 150)."""
    go, out = threading.Event(), []

    def produce() -> None:
        for i in range(1, backlog + 1):
            engine.submit("mark.updated", _mark(i))
        go.wait(10)
        out.append(engine.submit("mark.updated", _mark(50)))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    return thread, out, go


def test_a_producer_with_a_backlog_waits_while_a_critical_is_in_flight(tmp_path):
    engine, held = _engine(tmp_path, 30_000)
    producer, submitted, go = _producer(engine, backlog=5)  # a kernel pass of its own queued
    critical, acked = _in_thread(lambda: engine.submit("trade.executed", trade(1), key="T1"))
    time.sleep(0.2)  # the critical is queued behind the held kernel
    go.set()
    time.sleep(0.2)
    assert not submitted and engine.metrics()["critical_priority_waits"] == 1
    held.release.set()
    critical.join(10)
    producer.join(10)
    assert acked and submitted == [None]
    assert engine.wait_applied() and engine.flush()
    assert engine.store.get("market.marks.NIFTY.price") == 150.0
    assert engine.metrics()["critical_priority_wait_seconds"] >= 0.15
    engine.stop()


def test_a_producer_without_a_backlog_never_waits_for_another_threads_critical(tmp_path):
    engine, held = _engine(tmp_path, 30_000)
    producer, submitted, go = _producer(engine, backlog=4)  # less than a kernel pass
    critical, acked = _in_thread(lambda: engine.submit("trade.executed", trade(1), key="T1"))
    time.sleep(0.2)
    go.set()
    producer.join(10)
    assert submitted == [None] and not acked  # went on while the critical was still held
    assert engine.metrics()["critical_priority_waits"] == 0
    held.release.set()
    critical.join(10)
    engine.stop()


def test_a_held_ordinary_submit_goes_on_after_the_bound(tmp_path):
    engine, held = _engine(tmp_path, 200)
    producer, submitted, go = _producer(engine, backlog=5)
    critical, _ = _in_thread(lambda: engine.submit("trade.executed", trade(1), key="T1"))
    time.sleep(0.2)
    started = time.monotonic()
    go.set()
    producer.join(10)  # the critical is still held: it waited 0.2 s and went on
    assert submitted == [None] and 0.15 <= time.monotonic() - started < 10
    held.release.set()
    critical.join(10)
    engine.stop()


def test_handlers_on_the_kernel_thread_never_step_aside(tmp_path):
    engine = Engine(
        journal_path=str(tmp_path / "lab.duckdb"),
        snapshot_every_seconds=0,
        kernel_batch_size=5,
        critical_priority_ms=30_000,
    ).start()
    entered, release = threading.Event(), threading.Event()
    follow_ups: list = []

    def handler(event) -> None:  # on the kernel thread, with a critical of another in flight
        if event.payload["price"] == 100.0:
            entered.set()
            release.wait(30)
            for i in range(6):  # a kernel pass queued in its lane, then one more
                follow_ups.append(engine.submit("mark.updated", _mark(10 + i)))

    engine.bus.subscribe("mark.updated", handler)
    engine.submit("mark.updated", _mark(0))
    assert entered.wait(10)
    critical, acked = _in_thread(lambda: engine.submit("trade.executed", trade(1), key="T1"))
    time.sleep(0.2)
    release.set()
    critical.join(10)
    assert acked and follow_ups == [None] * 6
    assert engine.metrics()["critical_priority_waits"] == 0
    engine.stop()
