"""A replay's memory and start-up on a long bar file: `ReplayFeed.ticks()` merging its ticks
lazily (a heap of the bars that overlap in time) beside the same ticks built and sorted as one
list first (how it worked before), in the same run.

Figures (each contender in a fresh process, so its peak RSS is its own; medians of --rounds):
  first_tick_s       seconds from asking for the ticks to the first one
  all_ticks_s        seconds to play every tick (no engine: the feed alone)
  rss_growth_mb      peak RSS over the process's RSS once the file is loaded (the feed's own)
  ratio              materialized / lazy, for each figure

Usage: PYTHONPATH=. .venv/bin/python benchmarks/replay_memory.py [--bars 200000] [--rounds 3]
       [--json]
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import pandas as pd

CONTENDERS = ("lazy", "materialized")


def write_bars(path: Path, bars: int) -> None:
    """One symbol's 1-minute bars, a random walk (prices to the paisa)."""
    ts = pd.date_range("2020-01-01 09:15", periods=bars, freq="1min")
    close = 100 + np.abs(np.cumsum(np.random.default_rng(2).normal(0, 0.05, bars)))
    open_ = np.r_[close[0], close[:-1]]
    frame = pd.DataFrame(
        {
            "Date": ts,
            "Open": open_.round(2),
            "High": (np.maximum(open_, close) + 0.01).round(2),
            "Low": (np.minimum(open_, close) - 0.01).round(2),
            "Close": close.round(2),
        }
    )
    frame.to_csv(path, index=False)


def materialized(feed) -> object:
    """The ticks as the feed built them before: every tick of the file in one sorted list."""
    size = feed.config.quote_size
    from tradelab.market.ticks import Tick

    pending = []
    order = 0
    rows = zip(feed.bars.itertuples(index=False), feed._spans(), strict=True)
    for (ts, symbol, o, h, low, c, v), span in rows:
        path = (o, low, h, c) if c >= o else (o, h, low, c)
        for k, price in enumerate(path):
            at = int(ts) + k * int(span) // 4
            volume = int(v) if k == 3 else 0
            pending.append((at, order, Tick(symbol, at, price, price, price, size, size, volume)))
            order += 1
    pending.sort(key=lambda item: (item[0], item[1]))
    return (tick for _, _, tick in pending)


def one_run(path: str, contender: str) -> dict[str, float]:
    """Runs in a child process: load the file, then time and measure the contender."""
    from tradelab.market.feeds.replay import ReplayFeed, ReplayFeedConfig

    feed = ReplayFeed(ReplayFeedConfig(path=path, as_fast_as_possible=True))
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    ticks = feed.ticks() if contender == "lazy" else materialized(feed)
    next(ticks)
    first = time.perf_counter() - started
    count = 1 + sum(1 for _ in ticks)
    return {
        "first_tick_s": first,
        "all_ticks_s": time.perf_counter() - started,
        "rss_growth_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - loaded,
        "ticks": count,
    }


@click.command()
@click.option("--bars", default=200_000, show_default=True, help="Bars in the file.")
@click.option("--rounds", default=3, show_default=True, help="Interleaved rounds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option("--child", nargs=2, hidden=True)
def main(bars: int, rounds: int, as_json: bool, child: tuple[str, str] | None) -> None:
    if child:
        click.echo(json.dumps(one_run(*child)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "bars.csv"
        write_bars(path, bars)
        runs: dict[str, list[dict]] = {c: [] for c in CONTENDERS}
        for _ in range(rounds):
            for contender in CONTENDERS:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(path), contender],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                runs[contender].append(json.loads(out.strip().splitlines()[-1]))
    result: dict[str, object] = {"bars": bars, "rounds": rounds}
    for contender, figures in runs.items():
        for key in ("first_tick_s", "all_ticks_s", "rss_growth_mb"):
            result[f"{contender}.{key}"] = statistics.median(f[key] for f in figures)
        result[f"{contender}.ticks"] = figures[0]["ticks"]
    for key in ("first_tick_s", "all_ticks_s", "rss_growth_mb"):
        lazy = result[f"lazy.{key}"]
        result[f"ratio.{key}"] = result[f"materialized.{key}"] / lazy if lazy else None
    if as_json:
        click.echo(json.dumps(result))
        return
    for key, value in result.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
        click.echo(f"{key:32} {shown}")


if __name__ == "__main__":
    main()
