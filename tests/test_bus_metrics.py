"""Bus metrics: exact counts under concurrent reads, and the Prometheus export of counts and
handler call-time histograms (a real prometheus_client registry, scraped as text)."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tradelab.bus import BusCollector, EventBus
from tradelab.events import Event


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    """Every exported sample as {(name, sorted labels): value}, parsed back from the text format."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_reading_metrics_between_publishes_leaves_the_counts_exact():
    with EventBus() as bus:
        for i in range(50):
            bus.publish("market.tick", {})
            for _ in range(i % 3):  # reads interleaved with the publishes
                bus.metrics()
        assert bus.metrics()["events_per_topic"] == {"market.tick": 50}
        assert bus.metrics()["events_total"] == 50  # reading again does not count


def test_counts_are_exact_when_readers_race_concurrent_publishers():
    bus = EventBus(history_size=0)
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            bus.metrics()

    def publish() -> None:
        for i in range(5_000):
            bus.publish_event(Event(0, i, "market.tick", "", {}))

    readers = [threading.Thread(target=read) for _ in range(2)]
    publishers = [threading.Thread(target=publish) for _ in range(3)]
    for t in readers + publishers:
        t.start()
    for t in publishers:
        t.join(timeout=30)
    stop.set()
    for t in readers:
        t.join(timeout=30)
    assert bus.metrics()["events_per_topic"] == {"market.tick": 15_000}
    bus.close()


def test_collector_exports_event_counts_failures_and_handler_histograms():
    registry = CollectorRegistry()
    with EventBus(name="quotes", sample_every=4) as bus:
        registry.register(BusCollector(bus))
        sub = bus.subscribe("market.*", lambda e: None, name="ticks")

        def broken(event: Event) -> None:
            raise ValueError("no")

        bus.subscribe("market.bar", broken, name="broken")
        for _ in range(10):
            bus.publish("market.tick", {})
        bus.publish("market.bar", {})
        samples = scrape(registry)
    ticks = (("bus", "quotes"), ("topic", "market.tick"))
    assert samples[("tradelab_bus_events_total", ticks)] == 10
    assert samples[("tradelab_bus_events_total", (("bus", "quotes"), ("topic", "market.bar")))] == 1
    failures = (("bus", "quotes"), ("handler", "broken"))
    assert samples[("tradelab_bus_handler_failures_total", failures)] == 1
    assert samples[("tradelab_bus_history_events", (("bus", "quotes"),))] == 11 + 1  # + failure
    handler = (("bus", "quotes"), ("handler", "ticks"), ("subscription", str(sub.id)))
    # Sampled: publishes 0, 4, 8 of market.tick and publish 0 of market.bar.
    assert samples[("tradelab_bus_handler_call_seconds_count", handler)] == 4
    inf_bucket = tuple(sorted((*handler, ("le", "+Inf"))))
    assert samples[("tradelab_bus_handler_call_seconds_bucket", inf_bucket)] == 4
    assert 0 < samples[("tradelab_bus_handler_call_seconds_sum", handler)] < 4 * 60


def test_two_buses_export_side_by_side_in_one_registry():
    registry = CollectorRegistry()
    with EventBus(name="a") as a, EventBus(name="b") as b:
        registry.register(BusCollector(a))
        registry.register(BusCollector(b))
        a.publish("market.tick", {})
        b.publish("market.tick", {})
        b.publish("market.tick", {})
        samples = scrape(registry)
    for name, n in (("a", 1), ("b", 2)):
        key = ("tradelab_bus_events_total", (("bus", name), ("topic", "market.tick")))
        assert samples[key] == n


def test_handler_stats_bound_percentiles_by_their_histogram_bucket():
    with EventBus() as bus:
        sub = bus.subscribe("market.tick", lambda e: None)
        for elapsed_ns in (150, 150, 150, 3_000_000):
            sub.record_call_time(elapsed_ns)
        stats = sub.stats()
    assert stats["sampled_calls"] == 4
    assert stats["time_ns_p50"] == 250  # 150 ns falls in the (100 ns, 250 ns] bucket
    assert stats["time_ns_p99"] == stats["time_ns_max"] == 5_000_000
    assert stats["time_ns_histogram"] == {250: 3, 5_000_000: 1}
