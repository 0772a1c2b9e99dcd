"""The `tradelab` command line: run a session, serve the console, inspect/verify a journal, bench.

Each command builds its own objects and exits; nothing here is imported by the library itself.
"""

from __future__ import annotations

import click

from tradelab import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tradelab")
def main() -> None:
    """tradelab: a live NIFTY options paper-trading state engine with a DuckDB journal."""


@main.group()
def bench() -> None:
    """Run a benchmark and print its table (add --json for one JSON object)."""


@bench.command("bus")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Interleaved rounds; medians are reported.")
@click.option("--n", "n", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Publishes per round and contender.")
@click.option("--no-peers", is_flag=True, help="Skip pyee and blinker.")
def bench_bus(as_json: bool, rounds: int, n: int, no_peers: bool) -> None:
    """Event bus publishes/s beside a plain call, a naive bus, pyee and blinker."""
    from tradelab.benchmarking.bus import emit

    emit(n, rounds, as_json=as_json, peers=not no_peers)


if __name__ == "__main__":  # pragma: no cover
    main()
