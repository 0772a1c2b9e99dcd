"""The Lab journals its key figures as `metrics.sampled` every few seconds (not in a max-speed
replay, whose journal must stay the same run after run), and analytics reads them back as
`metrics_history`."""

from __future__ import annotations

from pathlib import Path

import pytest
from stock_bars import write_stock_bars
from test_lab import wait_for

from tradelab.analytics import Analytics
from tradelab.errors import InvalidInputError
from tradelab.lab import Lab
from tradelab.metrics_sampler import MetricsSampler

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "nifty_sample_1m.csv"


def test_lab_journals_samples_that_metrics_history_reads_back(tmp_path):
    journal = tmp_path / "m.duckdb"
    lab = Lab(
        journal_path=str(journal),
        speed=600.0,
        ticks_per_second=100,
        strategy="none",
        metrics_sample_seconds=0.2,
    )
    seen: list = []
    lab.engine.bus.subscribe("metrics.sampled", seen.append)
    lab.metrics_sampler.add_source("console", lambda: {"sessions": 3, "push_lag_ms_p99": 12.5})
    lab.start()
    try:
        assert wait_for(lambda: len(seen) >= 3, timeout=10)
    finally:
        lab.stop()
    assert not seen[0].critical and seen[0].seq > 0  # journaled, never waited for
    history = Analytics(journal).view("metrics_history")
    assert len(history) == lab.metrics_sampler.samples >= 3
    assert list(history["seq"]) == sorted(history["seq"])
    last = history.iloc[-1]
    assert 0 < last["applied_seq"] < last["seq"]  # the seq applied when it was sampled
    assert last["durable_seq"] <= last["applied_seq"]
    assert last["events_per_s"] > 0 and last["queue_depth"] >= 0
    assert last["commit_p99_ms"] >= last["commit_p50_ms"] > 0
    assert (last["sessions"], last["push_lag_ms_p99"]) == (3, 12.5)
    assert str(history["journal_time"].dtype).startswith("datetime64")


def test_no_sampler_when_off_or_in_a_max_speed_replay(tmp_path):
    off = Lab(journal_path=str(tmp_path / "a.duckdb"), metrics_sample_seconds=0)
    assert off.metrics_sampler is None
    replay = Lab(
        journal_path=str(tmp_path / "b.duckdb"),
        feed="replay",
        replay_path=str(SAMPLE),
        as_fast_as_possible=True,
        strategy="none",
    )
    assert replay.lockstep and replay.metrics_sampler is None
    default = Lab(journal_path=str(tmp_path / "c.duckdb"))
    assert default.metrics_sampler.every_seconds == 10.0
    for lab in (off, replay, default):
        lab.stop()  # never started: closes the broker's account file


def test_a_failing_source_or_engine_costs_one_sample_not_the_sampler():
    class Engine:
        def __init__(self):
            self.submitted = []
            self.bus = self

        def metrics(self):
            return {"version": 5, "durable_seq": 4, "queue_depth": 0, "rate_per_s_recent": 1.0}

        def submit(self, topic, payload, key=""):
            if payload.get("events_per_s") == 2.0:
                raise InvalidInputError("engine is stopping")
            self.submitted.append((topic, payload, key))

    engine = Engine()
    sampler = MetricsSampler(engine, 1.0)
    sampler.add_source("broken", lambda: 1 / 0)
    assert sampler.sample()
    topic, payload, key = engine.submitted[0]
    assert (topic, key, payload["applied_seq"], payload["commit_p99_ms"]) == (
        "metrics.sampled",
        "engine",
        5,
        None,
    )
    engine.metrics = lambda: {"version": 6, "rate_per_s_recent": 2.0}
    assert not sampler.sample()
    assert (sampler.samples, sampler.failures) == (1, 1)
    with pytest.raises(InvalidInputError, match="must be > 0"):
        MetricsSampler(engine, 0)


def test_the_console_charts_a_replayed_files_own_instrument_when_it_holds_no_nifty(tmp_path):
    stock = write_stock_bars(tmp_path)
    labs = [
        Lab(
            journal_path=str(tmp_path / f"{name}.duckdb"),
            feed="replay",
            replay_path=str(path),
            strategy="sma_cross",
        )
        for name, path in (("stock", stock), ("index", SAMPLE))
    ]
    assert [lab.chart_symbol for lab in labs] == ["RELIANCE", "NIFTY"]
    assert [lab.status()["symbol"] for lab in labs] == ["RELIANCE", "NIFTY"]  # `tradelab run`
    labs.append(Lab(journal_path=str(tmp_path / "sim.duckdb")))
    assert labs[-1].chart_symbol == "NIFTY"
    for lab in labs:
        lab.stop()  # never started: closes the broker's account file
