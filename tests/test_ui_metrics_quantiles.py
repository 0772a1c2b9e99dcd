"""/metrics' latency quantiles are the figures they are labelled."""

from __future__ import annotations

from tradelab.ui.metric_families import latencies


def test_the_latency_quantiles_carry_p50_and_p99():
    summary = {"window_limit": 512, "p50_ms": 1.5, "p99_ms": 9.25, "max_ms": 12.0, "count": 40}
    families = {f.name: f for f in latencies({"journal_commit_latency": summary})}
    quantiles = families["tradelab_journal_commit_latency_ms"]
    assert {s.labels["quantile"]: s.value for s in quantiles.samples} == {"0.5": 1.5, "0.99": 9.25}
