"""EventBus across threads: concurrent publishers and subscribers, per-thread re-entrancy, and
coroutine handlers on the bus's loop thread."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import Counter

import pytest

from tradelab.bus import HANDLER_FAILED, EventBus
from tradelab.events import Event, TopicRegistry, TopicSpec

PUBLISHERS = 4
EVENTS_PER_PUBLISHER = 3_000


@pytest.fixture(autouse=True)
def frequent_thread_switches():
    """Switch threads every 10 µs instead of 5 ms so the threads really interleave."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(previous)


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def test_concurrent_publishers_with_churning_subscribers_lose_and_duplicate_nothing():
    bus = EventBus(registry=TopicRegistry(), history_size=100)
    exact: list[tuple[int, int]] = []
    wildcard: list[tuple[int, int]] = []
    bus.subscribe("market.tick", lambda e: exact.append((e.payload["p"], e.payload["i"])))
    bus.subscribe("market.*", lambda e: wildcard.append((e.payload["p"], e.payload["i"])))
    stop = threading.Event()
    churned = Counter()
    start = threading.Barrier(PUBLISHERS + 2)

    def churn(pattern: str) -> None:
        start.wait()
        while not stop.is_set():
            sub = bus.subscribe(pattern, lambda e: None)
            churned[pattern] += 1
            sub.unsubscribe()

    def publish(p: int) -> None:
        start.wait()
        for i in range(EVENTS_PER_PUBLISHER):
            bus.publish("market.tick", {"p": p, "i": i})

    churners = [threading.Thread(target=churn, args=(pat,)) for pat in ("market.tick", "*")]
    publishers = [threading.Thread(target=publish, args=(p,)) for p in range(PUBLISHERS)]
    for t in churners + publishers:
        t.start()
    for t in publishers:
        t.join(timeout=60)
    stop.set()
    for t in churners:
        t.join(timeout=10)

    expected = {(p, i) for p in range(PUBLISHERS) for i in range(EVENTS_PER_PUBLISHER)}
    for got in (exact, wildcard):
        assert len(got) == len(expected)  # nothing duplicated...
        assert set(got) == expected  # ...and nothing lost
        for p in range(PUBLISHERS):  # each publisher's events arrive in its own order
            assert [i for q, i in got if q == p] == list(range(EVENTS_PER_PUBLISHER))
    assert churned["market.tick"] > 0 and churned["*"] > 0
    assert bus.metrics()["events_per_topic"] == {"market.tick": len(expected)}
    assert len(bus.subscriptions()) == 2
    bus.close()


def test_publishes_from_handlers_are_queued_per_thread():
    # mark.updated is journaled in the default registry; here it stands for any transient topic.
    bus = EventBus(
        registry=TopicRegistry(
            [TopicSpec("market.tick", transient=True), TopicSpec("mark.updated", transient=True)]
        )
    )
    log: list[tuple[str, str, str, int]] = []
    lock = threading.Lock()

    def marker(event: Event) -> None:
        with lock:
            log.append((event.key, "marker", event.topic, event.payload["i"]))
        if event.topic == "market.tick":
            bus.publish("mark.updated", event.payload, key=event.key)

    def watcher(event: Event) -> None:
        with lock:
            log.append((event.key, "watcher", event.topic, event.payload["i"]))

    bus.subscribe("*", marker)
    bus.subscribe("*", watcher)

    def feed(name: str) -> None:
        for i in range(500):
            bus.publish("market.tick", {"i": i}, key=name)

    threads = [threading.Thread(target=feed, args=(f"feed{k}",)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for k in range(3):
        mine = [entry[1:] for entry in log if entry[0] == f"feed{k}"]
        expected = []
        for i in range(500):
            expected += [
                ("marker", "market.tick", i),
                ("watcher", "market.tick", i),
                ("marker", "mark.updated", i),
                ("watcher", "mark.updated", i),
            ]
        assert mine == expected
    bus.close()


def test_async_handler_runs_on_the_bus_loop_thread_without_blocking_the_publisher():
    bus = EventBus(name="quotes")
    release = threading.Event()
    seen: list[tuple[str, int]] = []

    async def slow_consumer(event: Event) -> None:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 60)
        seen.append((threading.current_thread().name, event.payload["i"]))

    sub = bus.subscribe("market.tick", slow_consumer)
    assert sub.is_async
    started = time.monotonic()
    for i in range(3):
        bus.publish("market.tick", {"i": i})
    # The publisher did not wait for the handler, which waits up to 60 s for `release`; the
    # bound is generous so a loaded machine cannot fail it, and still far below 60 s.
    assert time.monotonic() - started < 10
    assert seen == []
    release.set()
    assert wait_until(lambda: len(seen) == 3)
    assert sorted(i for _, i in seen) == [0, 1, 2]
    assert {name for name, _ in seen} == {"quotes-async-handlers"}
    assert wait_until(lambda: bus.metrics()["async_pending"] == 0)
    assert bus.metrics()["handlers"][0]["sampled_calls"] == 3
    bus.close()


def test_async_handler_failure_is_isolated_and_published_like_a_sync_one():
    bus = EventBus()
    failures: list[Event] = []
    after: list[int] = []

    async def broken(event: Event) -> None:
        await asyncio.sleep(0)
        raise ConnectionError("websocket closed")

    bus.subscribe("order.filled", broken, name="async-broken")
    bus.subscribe("order.filled", lambda e: after.append(e.payload["i"]))
    bus.subscribe(HANDLER_FAILED, failures.append)
    bus.publish("order.filled", {"i": 1})
    assert after == [1]
    assert wait_until(lambda: len(failures) == 1)
    assert failures[0].payload["handler"] == "async-broken"
    assert failures[0].payload["error_type"] == "ConnectionError"
    assert bus.metrics()["handler_failures"] == {"async-broken": 1}
    bus.close()


@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt])
def test_an_async_handler_raising_base_exception_is_isolated_and_later_calls_still_run(raised):
    # It used to escape and stop the bus's loop: every later call of every async handler was
    # silently never run, no failure counted, and closing stalled.
    bus = EventBus()
    ran: list[int] = []

    async def handler(event: Event) -> None:
        if event.payload["i"] == 1:
            raise raised()
        ran.append(event.payload["i"])

    bus.subscribe("order.filled", handler, name="async-exits")
    for i in range(4):
        bus.publish("order.filled", {"i": i})
    assert wait_until(lambda: sorted(ran) == [0, 2, 3])
    assert bus.metrics()["handler_failures"] == {"async-exits": 1}
    assert wait_until(lambda: bus.metrics()["async_pending"] == 0)  # none left to cancel
    bus.close()


def test_close_cancels_async_handlers_still_running_after_the_timeout_and_stops_the_loop():
    bus = EventBus(name="closing")
    cancelled = threading.Event()

    async def never_finishes(event: Event) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    bus.subscribe("market.tick", never_finishes)
    bus.publish("market.tick", {})
    assert wait_until(
        lambda: any(t.name == "closing-async-handlers" for t in threading.enumerate())
    )
    started = time.monotonic()
    bus.close(timeout=0.2)
    assert time.monotonic() - started < 3
    assert cancelled.is_set()
    assert not any(t.name == "closing-async-handlers" for t in threading.enumerate())


def test_no_loop_thread_is_started_without_async_handlers():
    before = {t.name for t in threading.enumerate()}
    with EventBus(name="sync-only") as bus:
        bus.subscribe("*", lambda e: None)
        bus.publish("market.tick", {})
        assert {t.name for t in threading.enumerate()} - before == set()


@pytest.mark.parametrize("subscribers", [1, 3])
def test_history_and_counts_stay_consistent_under_concurrent_publishers(subscribers):
    bus = EventBus(history_size=PUBLISHERS * 1000)
    for _ in range(subscribers):
        bus.subscribe("market.*", lambda e: None)

    def publish(p: int) -> None:
        for i in range(1000):
            bus.publish_event(Event(0, i, "market.tick", str(p), {"i": i}))

    threads = [threading.Thread(target=publish, args=(p,)) for p in range(PUBLISHERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    history = bus.history()
    assert len(history) == PUBLISHERS * 1000
    assert Counter(e.key for e in history) == {str(p): 1000 for p in range(PUBLISHERS)}
    assert bus.metrics()["events_total"] == PUBLISHERS * 1000
    bus.close()


def test_an_async_handler_slower_than_its_topic_skips_events_past_its_bound_and_counts_them():
    # Unbounded, 200K publishes to a handler 1 ms behind held ~1 GB of pending tasks.
    bus = EventBus(name="slow")
    bus._async.max_pending = 5
    release = threading.Event()

    async def stuck(event: Event) -> None:
        while not release.is_set():
            await asyncio.sleep(0.005)

    seen = []

    async def quick(event: Event) -> None:
        seen.append(event.payload["price"])

    bus.subscribe("mark.updated", stuck, name="stuck")
    bus.subscribe("mark.updated", quick, name="quick")  # its events are its own
    for i in range(50):
        bus.publish("mark.updated", {"symbol": "NIFTY", "price": 100.0 + i})
        time.sleep(0.001)
    assert wait_until(lambda: len(seen) == 50)
    metrics = bus.metrics()
    assert metrics["async_pending"] == 5 and metrics["async_dropped"] == 45
    assert metrics["async_dropped_by_handler"] == {"stuck": 45}
    release.set()
    assert wait_until(lambda: bus.metrics()["async_pending"] == 0)
    bus.close()
