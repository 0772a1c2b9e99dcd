"""Order placement under concurrency: `ExecutionDesk.place_order` latency with N threads.

Each round starts a real Engine (default config: writer process + ack log) on a temp journal and
a paper broker whose deep quotes fill every market order at once; --threads threads each place
--orders market orders back to back. Every call returns once its fill is durable. Reported per
tree: place_order latency p50 / p99 / max (medians over rounds), orders/s, and the fraction of
calls whose order was already filled in the store when the call returned. With --baseline
PATH, the same measurement runs on the tradelab tree at PATH (e.g. a checkout of main) in a
child process, interleaved round by round, and the ratios are taken in this same run.

Usage: PYTHONPATH=. .venv/bin/python benchmarks/orders.py [--threads 8] [--orders 40]
       [--rounds 3] [--baseline /work/main] [--json]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

import click


def measure(threads: int, orders: int) -> dict[str, float]:
    from tradelab.broker import PaperBroker, PaperBrokerConfig
    from tradelab.engine import Engine
    from tradelab.market.clock import SimulatedClock
    from tradelab.market.instruments import IST
    from tradelab.trading.execution import ExecutionDesk

    symbols = ("NIFTY25NOV24000CE", "NIFTY25NOV24000PE", "NIFTY25NOV24100CE", "NIFTY25NOV24100PE")
    open_ns = int(datetime(2025, 11, 12, 10, tzinfo=IST).timestamp()) * 10**9
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(journal_path=os.path.join(tmp, "orders.duckdb")).start()
        try:
            broker = PaperBroker(PaperBrokerConfig(capital=1e12), clock=SimulatedClock(open_ns))
            for symbol in symbols:
                broker.set_quote(symbol, 100.0, 101.0, size=10**9)
            desk = ExecutionDesk(broker, engine.submit)
            latencies: list[float] = []
            filled_at_return = [0]
            lock = threading.Lock()

            def trade(n: int) -> None:
                mine, filled = [], 0
                for i in range(orders):
                    started = time.perf_counter()
                    oid = desk.place_order(symbols[(n + i) % 4], "BUY" if i % 2 else "SELL", 75)
                    mine.append(time.perf_counter() - started)
                    # Applied in the store when the call returned (a fill is applied before it
                    # is durable): a fast return that left its fill behind is not a win.
                    order = engine.store.get(f"trading.orders.{oid}", None) or {}
                    filled += order.get("status") == "filled"
                with lock:
                    latencies.extend(mine)
                    filled_at_return[0] += filled

            workers = [threading.Thread(target=trade, args=(n,)) for n in range(threads)]
            started = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            elapsed = time.perf_counter() - started
        finally:
            engine.stop()
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        "max_ms": latencies[-1] * 1e3,
        "orders_per_s": len(latencies) / elapsed,
        "filled_in_store_at_return": filled_at_return[0] / len(latencies),
    }


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def child_round(tree: str, threads: int, orders: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": tree}
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--one-round",
            "--threads",
            str(threads),
            "--orders",
            str(orders),
        ],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@click.command()
@click.option("--threads", default=8, show_default=True, help="Threads placing orders.")
@click.option("--orders", default=40, show_default=True, help="Market orders per thread.")
@click.option("--rounds", default=3, show_default=True, help="Interleaved rounds per tree.")
@click.option("--baseline", default=None, help="Path of another tradelab tree to compare with.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--one-round", is_flag=True, hidden=True)
def main(threads, orders, rounds, baseline, as_json, one_round) -> None:
    if one_round:
        # A child: measure the tree on PYTHONPATH, print one JSON line.
        click.echo(json.dumps(measure(threads, orders)))
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results: dict[str, list] = {"this": [], "baseline": []}
    for _ in range(rounds):
        if baseline:
            results["baseline"].append(child_round(baseline, threads, orders))
        results["this"].append(child_round(here, threads, orders))
    report = {
        "threads": threads,
        "orders_per_thread": orders,
        "rounds": rounds,
        "this": median_of(results["this"]),
    }
    if baseline:
        report["baseline"] = median_of(results["baseline"])
        report["baseline_path"] = baseline
        report["p50_ratio_baseline_over_this"] = (
            report["baseline"]["p50_ms"] / report["this"]["p50_ms"]
        )
        report["p99_ratio_baseline_over_this"] = (
            report["baseline"]["p99_ms"] / report["this"]["p99_ms"]
        )
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{threads} threads x {orders} market orders, median of {rounds} rounds")
    click.echo(
        f"{'tree':10} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'orders/s':>9} {'filled':>7}"
    )
    for name in ("baseline", "this"):
        if name in report:
            r = report[name]
            click.echo(
                f"{name:10} {r['p50_ms']:9.2f} {r['p99_ms']:9.2f} {r['max_ms']:9.1f} "
                f"{r['orders_per_s']:9.0f} {r['filled_in_store_at_return']:7.0%}"
            )


if __name__ == "__main__":
    main()
