"""`tradelab bench ...`: the benchmarks that ship with the package, with the scripts' options.

Registered on the main command group by cli.py; each command imports its benchmark lazily.
"""

from __future__ import annotations

import click

from tradelab.benchmarking.options import bench_options, rate_hz_option


@click.group()
def bench() -> None:
    """Run a benchmark and print its table (add --json for one JSON object)."""


@bench.command("bus")
@bench_options(1_000_000, "Publishes per round and contender.")
@click.option("--no-peers", is_flag=True, help="Skip pyee and blinker.")
def bench_bus(as_json: bool, rounds: int, n: int, no_peers: bool) -> None:
    """Event bus publishes/s beside a plain call, a naive bus, pyee and blinker."""
    from tradelab.benchmarking.bus import emit

    emit(n, rounds, as_json=as_json, peers=not no_peers)


@bench.command("store")
@bench_options(100_000, "mark.updated events per round and contender.")
@rate_hz_option
def bench_store(as_json: bool, rounds: int, n: int, rate_hz: float) -> None:
    """StateStore applies/s alone and with the reactive param layer, beside dict/param floors."""
    from tradelab.benchmarking.store import emit, run_store_benchmark

    emit(run_store_benchmark(n, rounds, rate_hz), as_json)
