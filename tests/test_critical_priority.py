"""While a critical submit is in flight, ordinary producers of other threads step aside (for a
bounded time); the kernel thread and the engine's own events never do."""

from __future__ import annotations

import threading
import time

from tradelab.engine import Engine
from tradelab.engine.submissions import CriticalPriority


def _mark(i: int) -> dict:
    return {"symbol": "NIFTY", "price": 100.0 + i}


def _trade(i: int) -> dict:
    return {
        "position_id": "s:NIFTY",
        "strategy": "s",
        "symbol": "NIFTY",
        "lot_size": 1,
        "quantity": 1,
        "side": "BUY",
        "price": 100.0,
        "fee": 0.0,
        "trade_id": f"T{i}",
    }


def _in_thread(target) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(target()), daemon=True)
    thread.start()
    return thread, out


def test_an_ordinary_producer_waits_until_the_criticals_in_flight_return():
    priority = CriticalPriority(max_wait=30.0)
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
    priority = CriticalPriority(max_wait=0.2)
    priority.begin()  # never ends: a critical stuck behind something
    started = time.monotonic()
    priority.step_aside()
    assert 0.15 <= time.monotonic() - started < 10
    off = CriticalPriority(max_wait=0.0)
    off.begin()
    started = time.monotonic()
    off.step_aside()
    assert time.monotonic() - started < 0.1 and off.waits == 0


class _HeldKernel:
    """Holds the kernel thread in a bus handler until released, so a critical stays in flight."""

    def __init__(self, engine: Engine) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        engine.bus.subscribe("mark.updated", self)

    def __call__(self, event) -> None:
        if event.payload["price"] == 100.0:
            self.entered.set()
            self.release.wait(30)


def test_an_engine_holds_ordinary_submits_while_a_critical_is_in_flight(tmp_path):
    engine = Engine(
        journal_path=str(tmp_path / "lab.duckdb"),
        snapshot_every_seconds=0,
        critical_priority_ms=30_000,
    ).start()
    held = _HeldKernel(engine)
    engine.submit("mark.updated", _mark(0))
    assert held.entered.wait(10)
    critical, acked = _in_thread(lambda: engine.submit("trade.executed", _trade(1), key="T1"))
    time.sleep(0.2)  # the critical is queued behind the held kernel
    ordinary, submitted = _in_thread(lambda: engine.submit("mark.updated", _mark(1)))
    time.sleep(0.2)
    assert not submitted and engine.metrics()["critical_priority_waits"] == 1
    held.release.set()
    critical.join(10)
    ordinary.join(10)
    assert acked and submitted == [None]
    assert engine.wait_applied() and engine.store.get("market.marks.NIFTY.price") == 101.0
    assert engine.metrics()["critical_priority_wait_seconds"] >= 0.15
    engine.stop()


def test_a_held_ordinary_submit_goes_on_after_the_bound(tmp_path):
    engine = Engine(
        journal_path=str(tmp_path / "lab.duckdb"),
        snapshot_every_seconds=0,
        critical_priority_ms=200,
    ).start()
    held = _HeldKernel(engine)
    engine.submit("mark.updated", _mark(0))
    assert held.entered.wait(10)
    critical, _ = _in_thread(lambda: engine.submit("trade.executed", _trade(1), key="T1"))
    time.sleep(0.2)
    started = time.monotonic()
    engine.submit("mark.updated", _mark(1))  # the critical is still held: waits 0.2 s, goes on
    assert 0.15 <= time.monotonic() - started < 10
    held.release.set()
    critical.join(10)
    engine.stop()


def test_handlers_on_the_kernel_thread_never_step_aside(tmp_path):
    engine = Engine(
        journal_path=str(tmp_path / "lab.duckdb"),
        snapshot_every_seconds=0,
        critical_priority_ms=30_000,
    ).start()
    entered, release = threading.Event(), threading.Event()
    follow_ups: list = []

    def handler(event) -> None:  # on the kernel thread, with a critical of another in flight
        if event.payload["price"] == 100.0:
            entered.set()
            release.wait(30)
            follow_ups.append(engine.submit("mark.updated", _mark(5)))

    engine.bus.subscribe("mark.updated", handler)
    engine.submit("mark.updated", _mark(0))
    assert entered.wait(10)
    critical, acked = _in_thread(lambda: engine.submit("trade.executed", _trade(1), key="T1"))
    time.sleep(0.2)
    release.set()
    critical.join(10)
    assert acked and follow_ups == [None]
    assert engine.metrics()["critical_priority_waits"] == 0
    engine.stop()
