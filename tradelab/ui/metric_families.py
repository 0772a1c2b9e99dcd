"""The Prometheus families `/metrics` is built of (metrics_route.py): the engine's figures and
latencies as tables of (key, name, help), and small constructors for one figure each."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

# engine.metrics() key -> (metric name, kind, help)
ENGINE_FIGURES = (
    ("version", "tradelab_engine_applied_seq", "gauge", "Seq of the last event applied."),
    ("queue_depth", "tradelab_engine_queue_depth", "gauge", "Events waiting for the kernel."),
    ("queue_limit", "tradelab_engine_queue_limit", "gauge", "Bound of the kernel's queue."),
    (
        "queue_high_water",
        "tradelab_engine_queue_high_water",
        "gauge",
        "Deepest the kernel's queue has been.",
    ),
    ("producer_waits", "tradelab_engine_producer_waits", "counter", "Submits that waited."),
    (
        "producer_wait_seconds",
        "tradelab_engine_producer_wait_seconds",
        "counter",
        "Time submitters waited for room in the queue.",
    ),
    (
        "critical_priority_waits",
        "tradelab_engine_critical_priority_waits",
        "counter",
        "Times ordinary submitters stepped aside for a critical event in flight.",
    ),
    (
        "critical_priority_wait_seconds",
        "tradelab_engine_critical_priority_wait_seconds",
        "counter",
        "Time ordinary submitters stepped aside for critical events in flight.",
    ),
    (
        "overload_refusals",
        "tradelab_engine_overload_refusals",
        "counter",
        "Submits refused because the queue stayed full.",
    ),
    ("rejected_events", "tradelab_engine_rejected_events", "counter", "Events reducers refused."),
    ("durable_seq", "tradelab_journal_durable_seq", "gauge", "Seq durable in the journal."),
    ("groups_committed", "tradelab_journal_commits", "counter", "Group commits to DuckDB."),
    (
        "events_committed",
        "tradelab_journal_events_committed",
        "counter",
        "Events committed to DuckDB.",
    ),
    (
        "segment_files",
        "tradelab_journal_segment_files",
        "gauge",
        "Parquet segment files a reader opens (small ones are merged as they accumulate).",
    ),
    (
        "segments_failed",
        "tradelab_journal_segments_failed",
        "gauge",
        "1 once the segment sealer stopped: segment readers see a stale journal until restart.",
    ),
    (
        "writer_pending_high_water",
        "tradelab_journal_writer_pending_high_water",
        "gauge",
        "Most events the journal writer held uncommitted.",
    ),
    (
        "writer_backpressure_waits",
        "tradelab_journal_writer_backpressure_waits",
        "counter",
        "Times the journal writer stopped taking events (DuckDB behind).",
    ),
    (
        "writer_backpressure_seconds",
        "tradelab_journal_writer_backpressure_seconds",
        "counter",
        "Time the journal writer stopped taking events.",
    ),
)


# engine.metrics() key -> (metric name stem, what it times); see tradelab/journal/latency.py
LATENCIES = (
    (
        "journal_commit_latency",
        "tradelab_journal_commit_latency",
        "a batch handed to the journal writer until its DuckDB commit was reported",
    ),
    (
        "journal_critical_ack_latency",
        "tradelab_journal_critical_ack_latency",
        "a batch of critical events handed to the journal writer until its submitters were "
        "released",
    ),
)


def latencies(metrics: dict[str, Any]) -> Iterator[Metric]:
    """Summary-like gauges per latency: p50/p99 (label quantile) and the max over the latest
    `window_limit` batches, and a counter of every batch ever measured."""
    for key, stem, what in LATENCIES:
        summary = metrics.get(key)
        if summary is None:
            continue  # no writer yet
        window = f"the latest {summary['window_limit']} batches"
        quantiles = GaugeMetricFamily(
            f"{stem}_ms", f"Milliseconds from {what}, over {window}.", labels=["quantile"]
        )
        for quantile, field in (("0.5", "p50_ms"), ("0.99", "p99_ms")):
            if summary[field] is not None:
                quantiles.add_metric([quantile], summary[field])
        yield quantiles
        if summary["max_ms"] is not None:
            yield figure(
                "gauge", f"{stem}_max_ms", f"Most milliseconds over {window}.", summary["max_ms"]
            )
        yield figure("counter", f"{stem}_samples", f"Batches timed: {what}.", summary["count"])
    if "journal_latency_unsampled_batches" in metrics:
        yield figure(
            "counter",
            "tradelab_journal_latency_unsampled_batches",
            "Batches left untimed because too many were in flight.",
            metrics["journal_latency_unsampled_batches"],
        )
    if "journal_ack_log_syncs" in metrics:
        yield figure(
            "counter",
            "tradelab_journal_ack_log_syncs",
            "fdatasync calls of the ack log that acknowledged critical events.",
            metrics["journal_ack_log_syncs"],
        )


def trimmed(name: str, doc: str, count: Callable[[str], float]) -> Metric:
    """A counter of orders and fills let go, by kind."""
    family = CounterMetricFamily(name, doc, labels=["kind"])
    for kind in ("orders", "fills"):
        family.add_metric([kind], count(kind))
    return family


def figure(kind: str, name: str, doc: str, value: Any) -> Metric:
    family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return family(name, doc, value=float(value))


def labelled(name: str, doc: str, label: str, current: str) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=[label])
    family.add_metric([str(current)], 1.0)
    return family
