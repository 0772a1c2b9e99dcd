"""Backtest throughput: `sma_cross` on a generated bar file through tradelab's backtest (Engine,
runner, paper broker, book; journal on, every event durable at the end) beside backtesting.py
running the same strategy (strict SMA crossover, market orders filled at the next open) on the
same bars, in the same run.

Figures (medians over --rounds, interleaved): bars/s of each, the ratio tradelab / peer (of
the bars' loop and the journal's close, `tradelab_bars_per_s`; and of the whole call as the
command waits for it, `tradelab_call_bars_per_s`: the file read, the engine started, the report
read back; the peer's figure is its whole `run()`, statistics included),
tradelab's CPU seconds (its process and the journal writer's), the fills each made (they should
agree), and tradelab's time split (feed, strategy, kernel: applying to the store and the rest,
durable waits, runner, journal close). tradelab runs both of its paths: synchronous (the
default: kernel inline, runner unthreaded, one thread) and threaded (kernel and runner threads,
the live arrangement); `tradelab_*` figures are the synchronous path's, `tradelab_threaded_*`
the other's.

`--decompose` also runs, in each round, two variants of sma_cross on the same bars: its orders
dropped (bars only, never a position) and one long position held from the first bar (bars
with a position to mark). From the three runs: µs per bar without a position, µs more per
bar with one, µs per trade (everything a round of order, fill and book costs), and the
trades' own seconds against backtesting.py's whole run: what bounds the ratio from above.

Usage: .venv/bin/python benchmarks/backtest.py [--bars 100000] [--rounds 3] [--fast 10]
       [--slow 30] [--no-peer] [--no-threaded] [--decompose] [--tuned-collector] [--json]
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from pathlib import Path
from resource import RUSAGE_CHILDREN, RUSAGE_SELF, getrusage
from typing import Any

import click
import numpy as np
import pandas as pd

from tradelab.benchmarking import format_table, machine_info, median
from tradelab.benchmarking.options import tuned_collector_option
from tradelab.runner import SmaCross
from tradelab.runner.backtest import run_backtest


def make_bars(n: int, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 1000.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate(([1000.0], close[:-1])) * (1 + rng.normal(0, 0.0005, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.001, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.001, n)))
    index = pd.date_range("2020-01-01 09:15", periods=n, freq="1min", tz="UTC")
    return pd.DataFrame(
        {
            "Open": open_.round(2),
            "High": high.round(2),
            "Low": low.round(2),
            "Close": close.round(2),
            "Volume": rng.integers(100, 10_000, n),
        },
        index=index,
    )


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its ended children (the journal writer)."""
    own, children = (getrusage(who) for who in (RUSAGE_SELF, RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class _NoOrders:
    """A context whose orders go nowhere: sma_cross's signals without their trades."""

    @staticmethod
    def target(symbol: str, quantity: int) -> None:
        return None


class SignalsOnly(SmaCross):
    """sma_cross with its orders dropped: what the bars cost without a position."""

    strategy_name = "sma_cross_signals_only"

    def on_bar(self, ctx: Any, bar: Any) -> None:
        super().on_bar(_NoOrders, bar)


class HoldOne(SignalsOnly):
    """SignalsOnly plus one long unit bought on the first bar and held: every later bar marks
    an open position, with one trade in the whole run."""

    strategy_name = "sma_cross_hold_one"

    def on_bar(self, ctx: Any, bar: Any) -> None:
        if not getattr(self, "_bought", False):
            self._bought = True
            ctx.target(bar["symbol"], 1)
        super().on_bar(ctx, bar)


def run_tradelab(
    csv: Path, fast: int, slow: int, synchronous: bool = True, variant: type[SmaCross] = SmaCross
) -> dict[str, Any]:
    cpu = _cpu_seconds()
    result = run_backtest(
        csv, variant(fast=fast, slow=slow, size=1), cash=10_000_000.0, synchronous=synchronous
    )
    return {
        # Less swayed by other load than wall time; includes the run's setup and reading back.
        "cpu_seconds": _cpu_seconds() - cpu,
        "seconds": result.seconds,
        "bars_per_s": result.bars_per_second,
        # The whole call, as `tradelab backtest` waits for it (file read, engine start, the
        # report read back from the journal); backtesting.py's figure is its whole run() too.
        "call_bars_per_s": result.bars / result.wall_seconds,
        "fills": len(result.fills),
        "split": result.time_split,
        "content_hash": result.content_hash,
    }


def run_peer(frame: pd.DataFrame, fast: int, slow: int) -> dict[str, Any]:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    def sma(values, n):
        return pd.Series(values).rolling(n).mean().to_numpy()

    class Cross(Strategy):
        def init(self):
            self.fast = self.I(sma, self.data.Close, fast)
            self.slow = self.I(sma, self.data.Close, slow)

        def next(self):
            if crossover(self.fast, self.slow):
                self.position.close()
                self.buy(size=1)
            elif crossover(self.slow, self.fast):
                self.position.close()
                self.sell(size=1)

    bt = Backtest(frame, Cross, cash=10_000_000, commission=0.0, finalize_trades=True)
    started = time.perf_counter()
    stats = bt.run()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "bars_per_s": len(frame) / seconds, "trades": len(stats._trades)}


@click.command()
@click.option("--bars", type=click.IntRange(min=100), default=100_000, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--fast", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--slow", type=click.IntRange(min=2), default=30, show_default=True)
@click.option("--no-peer", is_flag=True, help="Skip backtesting.py.")
@click.option("--no-threaded", is_flag=True, help="Skip tradelab's threaded path.")
@click.option(
    "--decompose", is_flag=True, help="Also time bars alone, bars with a position, and trades."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, not a table.")
@tuned_collector_option
def main(
    bars: int,
    rounds: int,
    fast: int,
    slow: int,
    no_peer: bool,
    no_threaded: bool,
    decompose: bool,
    as_json: bool,
) -> None:
    frame = make_bars(bars)
    ours, threaded, peer = [], [], []
    parts: dict[str, list[dict[str, Any]]] = {"signals_only": [], "hold_one": []}
    with tempfile.TemporaryDirectory(prefix="tradelab-bench-bt-") as tmp:
        csv = Path(tmp) / "bars.csv"
        frame.rename_axis("Date").to_csv(csv)
        for _ in range(rounds):
            ours.append(run_tradelab(csv, fast, slow))
            if not no_threaded:
                threaded.append(run_tradelab(csv, fast, slow, synchronous=False))
            if not no_peer:
                peer.append(run_peer(frame, fast, slow))
            if decompose:
                parts["signals_only"].append(run_tradelab(csv, fast, slow, variant=SignalsOnly))
                parts["hold_one"].append(run_tradelab(csv, fast, slow, variant=HoldOne))
    result: dict[str, Any] = {
        "bars": bars,
        "rounds": rounds,
        "tradelab_bars_per_s": median([r["bars_per_s"] for r in ours]),
        "tradelab_call_bars_per_s": median([r["call_bars_per_s"] for r in ours]),
        "tradelab_fills": ours[0]["fills"],
        "tradelab_cpu_s": median([r["cpu_seconds"] for r in ours]),
        "tradelab_split_s": {k: median([r["split"][k] for r in ours]) for k in ours[0]["split"]},
        "machine": machine_info(),
        # --tuned-collector (this whole process, the peer's run too): (50000, 20, 20)
        "collector_thresholds": gc.get_threshold(),
    }
    if threaded:
        result["tradelab_threaded_bars_per_s"] = median([r["bars_per_s"] for r in threaded])
        result["tradelab_threaded_fills"] = threaded[0]["fills"]
        result["tradelab_threaded_split_s"] = {
            k: median([r["split"][k] for r in threaded]) for k in threaded[0]["split"]
        }
        result["same_journal_both_paths"] = all(
            a["content_hash"] == b["content_hash"] for a, b in zip(ours, threaded, strict=True)
        )
        result["ratio_synchronous_to_threaded"] = (
            result["tradelab_bars_per_s"] / result["tradelab_threaded_bars_per_s"]
        )
    if peer:
        result["backtesting_py_bars_per_s"] = median([r["bars_per_s"] for r in peer])
        result["backtesting_py_trades"] = peer[0]["trades"]
        result["ratio_tradelab_to_backtesting_py"] = (
            result["tradelab_bars_per_s"] / result["backtesting_py_bars_per_s"]
        )
        result["ratio_call_to_backtesting_py"] = (
            result["tradelab_call_bars_per_s"] / result["backtesting_py_bars_per_s"]
        )
    if decompose:
        result["decomposition"] = decomposition(ours, parts, peer, bars)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    rows = [
        ["tradelab backtest", result["tradelab_bars_per_s"], result["tradelab_fills"]],
        [
            "… the whole call (file, start, report)",
            result["tradelab_call_bars_per_s"],
            result["tradelab_fills"],
        ],
    ]
    if threaded:
        rows.append(
            [
                "tradelab backtest, threaded",
                result["tradelab_threaded_bars_per_s"],
                result["tradelab_threaded_fills"],
            ]
        )
    if peer:
        rows.append(
            ["backtesting.py", result["backtesting_py_bars_per_s"], result["backtesting_py_trades"]]
        )
    click.echo(format_table(["contender", "bars/s", "fills / trades"], rows))
    if peer:
        click.echo(
            f"ratio tradelab / backtesting.py: {result['ratio_tradelab_to_backtesting_py']:.2f}"
            f" (the whole call: {result['ratio_call_to_backtesting_py']:.2f})"
        )
    click.echo(
        "tradelab time split (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in result["tradelab_split_s"].items())
    )
    if decompose:
        click.echo(
            "decomposition: "
            + ", ".join(f"{k} {v:.3g}" for k, v in result["decomposition"].items())
        )


def decomposition(ours: list, parts: dict, peer: list, bars: int) -> dict[str, float]:
    """Per-bar and per-trade costs from the three tradelab runs of each round (medians of the
    per-round figures, so a round's variants share its machine state)."""
    rows = []
    for i, cross in enumerate(ours):
        flat, held = parts["signals_only"][i], parts["hold_one"][i]
        trades = cross["fills"] - held["fills"]
        row = {
            "bar_us_no_position": flat["seconds"] / bars * 1e6,
            "bar_us_more_with_position": (held["seconds"] - flat["seconds"]) / bars * 1e6,
            "trade_us": (cross["seconds"] - held["seconds"]) / trades * 1e6,
        }
        row["trades_s"] = row["trade_us"] * trades / 1e6
        if peer:
            row["trades_s_vs_backtesting_py_run"] = row["trades_s"] / peer[i]["seconds"]
        rows.append(row)
    return {k: median([r[k] for r in rows]) for k in rows[0]}


if __name__ == "__main__":
    main()
