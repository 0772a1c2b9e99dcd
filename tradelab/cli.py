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


if __name__ == "__main__":  # pragma: no cover
    main()
