"""Market data through the engine: SimulatedFeed -> MarketDataRouter -> Engine (+ PaperBroker quotes).

Figures (medians over interleaved rounds, all measured in this run):
  baseline_ticks_per_s     feed + router + broker quotes, submit/publish are no-ops (the ceiling
                           without the engine)
  engine_max_ticks_per_s   the same, flat out, into a real Engine (DuckDB journal in a temp dir),
                           until everything submitted is durable; ratio to the baseline
  paced_ticks_per_s        the feed paced at --rate ticks/s (10K by default) into the Engine:
                           achieved rate, kernel events/s journaled (bars + coalesced marks),
                           and the process's CPU share (all threads, % of one core)

Usage: .venv/bin/python benchmarks/feed.py [--rate 10000] [--seconds 3] [--ticks 50000]
       [--rounds 3] [--speed 60] [--json]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from tradelab.benchmarking import format_table, machine_info, median
from tradelab.benchmarking.options import bench_options, command, positive_float
from tradelab.broker import PaperBroker
from tradelab.engine import Engine
from tradelab.market.feeds import SimulatedFeed, SimulatedFeedConfig
from tradelab.market.router import MarketDataRouter


@dataclass(frozen=True)
class FeedRun:
    """The command-line settings every run of this benchmark reads."""

    rate: int
    seconds: int
    ticks: int
    speed: float
    strikes: int


def make_feed(args: FeedRun, *, paced: bool, seed: int) -> SimulatedFeed:
    return SimulatedFeed(
        SimulatedFeedConfig(
            seed=seed,
            ticks_per_second=args.rate,
            speed=args.speed,
            strikes_each_side=args.strikes,
            as_fast_as_possible=not paced,
        )
    )


def run_baseline(args: FeedRun, seed: int) -> dict[str, float]:
    feed = make_feed(args, paced=False, seed=seed)
    broker = PaperBroker(clock=feed.clock)
    submitted = [0]

    def submit(topic: str, payload: Any, **_: Any) -> None:
        submitted[0] += 1

    router = MarketDataRouter(submit, lambda *a, **k: None, quote_sinks=[broker.on_quote])
    started = time.perf_counter()
    sent = feed.run(router.on_tick, max_ticks=args.ticks)
    elapsed = time.perf_counter() - started
    return {"ticks_per_s": sent / elapsed, "events": submitted[0]}


def run_engine(args: FeedRun, directory: Path, seed: int, *, paced: bool) -> dict[str, float]:
    feed = make_feed(args, paced=paced, seed=seed)
    broker = PaperBroker(clock=feed.clock)
    engine = Engine(journal_path=str(directory / f"feed-{seed}-{paced}.duckdb"))
    engine.start()
    try:
        router = MarketDataRouter(
            engine.submit, engine.publish_transient, quote_sinks=[broker.on_quote]
        )
        first_seq = engine.flush()
        max_ticks = args.rate * args.seconds if paced else args.ticks
        cpu0, started = time.process_time(), time.perf_counter()
        sent = feed.run(router.on_tick, max_ticks=max_ticks)
        last_seq = engine.flush()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    finally:
        engine.stop()
    return {
        "ticks_per_s": sent / elapsed,
        "kernel_events_per_s": (last_seq - first_seq) / elapsed,
        "events": last_seq - first_seq,
        "cpu_share_pct": 100.0 * cpu / elapsed,
    }


@command(__doc__)
@bench_options(50_000, "Ticks per flat-out run.", rounds_default=3, n_name="--ticks")
@click.option(
    "--rate",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Paced ticks per second.",
)
@click.option(
    "--seconds",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Length of each paced run.",
)
@positive_float("--speed", 60.0, "Simulated seconds per second.")
@click.option(
    "--strikes",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Strikes each side of ATM.",
)
def main(
    as_json: bool, rounds: int, ticks: int, rate: int, seconds: int, speed: float, strikes: int
) -> None:
    args = FeedRun(rate=rate, seconds=seconds, ticks=ticks, speed=speed, strikes=strikes)

    baseline, engine_max, paced = [], [], []
    with tempfile.TemporaryDirectory(prefix="tradelab-feed-bench-") as tmp:
        directory = Path(tmp)
        for round_ in range(rounds):  # interleaved: drift hits every case alike
            baseline.append(run_baseline(args, seed=round_))
            engine_max.append(run_engine(args, directory, seed=round_, paced=False))
            paced.append(run_engine(args, directory, seed=round_, paced=True))

    def med(rows: list[dict[str, float]], name: str) -> float:
        return median([r[name] for r in rows])

    figures = {
        "baseline_ticks_per_s": med(baseline, "ticks_per_s"),
        "engine_max_ticks_per_s": med(engine_max, "ticks_per_s"),
        "engine_max_kernel_events_per_s": med(engine_max, "kernel_events_per_s"),
        "engine_max_cpu_share_pct": med(engine_max, "cpu_share_pct"),
        "paced_target_ticks_per_s": args.rate,
        "paced_ticks_per_s": med(paced, "ticks_per_s"),
        "paced_kernel_events_per_s": med(paced, "kernel_events_per_s"),
        "paced_cpu_share_pct": med(paced, "cpu_share_pct"),
    }
    figures["engine_vs_baseline_ratio"] = (
        figures["engine_max_ticks_per_s"] / figures["baseline_ticks_per_s"]
    )
    result = {
        "benchmark": "feed",
        "config": {
            **{k: v for k, v in asdict(args).items() if k != "strikes"},
            "rounds": rounds,
            "strikes_each_side": strikes,
            "instruments": 1 + 2 * (2 * strikes + 1),
        },
        "figures": figures,
        "samples": {"baseline": baseline, "engine_max": engine_max, "paced": paced},
        "machine": machine_info(),
    }
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    rows = [
        ["baseline (no engine), flat out", figures["baseline_ticks_per_s"], None, None],
        [
            "engine, flat out",
            figures["engine_max_ticks_per_s"],
            figures["engine_max_kernel_events_per_s"],
            figures["engine_max_cpu_share_pct"],
        ],
        [
            f"engine, paced at {args.rate}/s",
            figures["paced_ticks_per_s"],
            figures["paced_kernel_events_per_s"],
            figures["paced_cpu_share_pct"],
        ],
    ]
    print(format_table(["case", "ticks/s", "kernel events/s", "CPU % of a core"], rows))
    print(f"engine / baseline (flat out): {figures['engine_vs_baseline_ratio']:.2f}")


if __name__ == "__main__":
    main()
