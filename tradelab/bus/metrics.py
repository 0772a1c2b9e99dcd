"""Per-topic counters and event rates for the bus, and their export as Prometheus metrics.

Thread model: each topic's count is an `itertools.count`, whose `next()` is one atomic C call
under the GIL, so concurrent publishers never lose a count. Readers take the counter's read
lock. Rate checkpoints are appended only on the sampled path (1 publish in `sample_every` per
topic, at most one per `CHECKPOINT_EVERY_NS`). `BusCollector.collect` runs on the scraping thread.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from tradelab.bus.core import EventBus

# A checkpoint (time, count) is kept at most every 0.25 s per topic; 64 of them span 16 s, which
# covers the default 10 s recent-rate window.
CHECKPOINT_EVERY_NS = 250_000_000
CHECKPOINTS_KEPT = 64


class TopicCounter:
    """Events seen on one topic, with checkpoints from which a recent rate is derived.

    The hot path only calls `next(counter)` (~30 ns; a library counter's locked `inc()` costs
    ~250 ns, most of a publish). An `itertools.count` tells its position only by advancing, so a
    read advances it once and subtracts the reads made so far: publishes see positions that
    include those reads, which only shifts which publishes are sampled.
    """

    __slots__ = ("_read_lock", "_reads", "checkpoints", "counter", "topic")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.counter = itertools.count()
        self.checkpoints: deque[tuple[int, int]] = deque(maxlen=CHECKPOINTS_KEPT)
        self._reads = 0
        self._read_lock = threading.Lock()

    @property
    def count(self) -> int:
        """Events published on this topic so far (exact)."""
        with self._read_lock:
            position = next(self.counter)
            reads = self._reads
            self._reads = reads + 1
        return position - reads

    def checkpoint(self, now_ns: int, position: int) -> None:
        """Note that the publish at counter `position` happened at `now_ns` (sampled path)."""
        checkpoints = self.checkpoints
        if not checkpoints or now_ns - checkpoints[-1][0] >= CHECKPOINT_EVERY_NS:
            # A read racing this publish can make the count one low: it only feeds a rate.
            checkpoints.append((now_ns, position - self._reads))

    def recent_rate(self, now_ns: int, window_ns: int, count: int) -> float:
        """Events/s from the oldest checkpoint inside the window (or the newest before it) to now.

        Every event after the chosen checkpoint is counted exactly, so the figure is an exact
        average over [checkpoint, now]; the span is the window rounded to checkpoint spacing, and
        longer for a topic too quiet to have reached a sampled publish inside the window.
        """
        chosen: tuple[int, int] | None = None
        for checkpoint in tuple(self.checkpoints):
            if checkpoint[0] >= now_ns - window_ns:
                chosen = checkpoint
                break
            chosen = checkpoint  # the newest one before the window so far
        if chosen is None or now_ns <= chosen[0]:
            return 0.0
        return max(count - chosen[1], 0) * 1e9 / (now_ns - chosen[0])


def rates(
    counters: Iterable[TopicCounter], started_ns: int, window_ns: int
) -> tuple[int, dict[str, int], float, float]:
    """(total, per-topic counts, lifetime events/s, recent events/s) over `counters`."""
    now = time.perf_counter_ns()
    per_topic: dict[str, int] = {}
    recent = 0.0
    for topic_counter in counters:
        n = topic_counter.count
        if n:
            per_topic[topic_counter.topic] = n
            recent += topic_counter.recent_rate(now, window_ns, n)
    total = sum(per_topic.values())
    lifetime = total * 1e9 / max(now - started_ns, 1)
    return total, per_topic, lifetime, recent


class BusCollector(Collector):
    """A Prometheus collector reading one bus when scraped: `registry.register(BusCollector(bus))`.

    Exports `tradelab_bus_events_total{bus,topic}`, `tradelab_bus_handler_failures_total`,
    `tradelab_bus_reentrant_queued_total`, gauges for the history ring and pending async calls,
    and each subscription's call-time histogram `tradelab_bus_handler_call_seconds`. Every series
    carries a `bus` label, so several buses can share one registry.
    """

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def describe(self) -> list[Metric]:
        # Nothing to describe up front: names are checked at scrape time, and an empty
        # description lets several buses register in one registry.
        return []

    def collect(self) -> Iterator[Metric]:
        bus = self.bus
        metrics = bus.metrics()
        name = metrics["name"]
        events = CounterMetricFamily(
            "tradelab_bus_events", "Events delivered by the bus, by topic.", labels=["bus", "topic"]
        )
        for topic, n in metrics["events_per_topic"].items():
            events.add_metric([name, topic], n)
        yield events
        failures = CounterMetricFamily(
            "tradelab_bus_handler_failures",
            "Handler calls that raised, by handler.",
            labels=["bus", "handler"],
        )
        for handler, n in metrics["handler_failures"].items():
            failures.add_metric([name, handler], n)
        yield failures
        yield _one(
            CounterMetricFamily,
            "tradelab_bus_reentrant_queued",
            name,
            metrics,
            "reentrant_queued",
            "Publishes made from a handler, queued until delivery ended.",
        )
        yield _one(
            GaugeMetricFamily,
            "tradelab_bus_history_events",
            name,
            metrics,
            "history_len",
            "Events held in the history ring.",
        )
        yield _one(
            GaugeMetricFamily,
            "tradelab_bus_async_pending",
            name,
            metrics,
            "async_pending",
            "Async handler calls scheduled and not finished.",
        )
        yield _one(
            CounterMetricFamily,
            "tradelab_bus_async_dropped",
            name,
            metrics,
            "async_dropped",
            "Async handler calls skipped while the bound of pending calls was reached.",
        )
        calls = HistogramMetricFamily(
            "tradelab_bus_handler_call_seconds",
            "Sampled handler call times (1 publish in sample_every; every async call).",
            labels=["bus", "handler", "subscription"],
        )
        for sub in bus.subscriptions():
            buckets, sum_seconds = sub.call_time_buckets()
            calls.add_metric([name, sub.name, str(sub.id)], buckets, sum_seconds)
        yield calls


def _one(family: Any, metric: str, bus_name: str, metrics: dict, key: str, doc: str) -> Metric:
    result = family(metric, doc, labels=["bus"])
    result.add_metric([bus_name], metrics[key])
    return result
