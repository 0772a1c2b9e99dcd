"""The `tradelab` command line: run a session, serve the console, inspect/verify a journal, bench.

Each command builds its own objects and exits; nothing here is imported by the library itself.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from tradelab import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tradelab")
def main() -> None:
    """tradelab: a live NIFTY options paper-trading state engine with a DuckDB journal."""


@main.group()
def bench() -> None:
    """Run a benchmark and print its table (add --json for one JSON object)."""


def bench_options(n_default: int, n_help: str) -> Callable[[Callable], Callable]:
    """The options every benchmark command takes: --json, --rounds, --n."""

    def decorate(command: Callable) -> Callable:
        for option in reversed(
            (
                click.option(
                    "--json", "as_json", is_flag=True, help="Print one JSON object, not a table."
                ),
                click.option(
                    "--rounds",
                    type=click.IntRange(min=1),
                    default=5,
                    show_default=True,
                    help="Interleaved rounds; medians are reported.",
                ),
                click.option(
                    "--n",
                    "n",
                    type=click.IntRange(min=1),
                    default=n_default,
                    show_default=True,
                    help=n_help,
                ),
            )
        ):
            command = option(command)
        return command

    return decorate


@bench.command("bus")
@bench_options(1_000_000, "Publishes per round and contender.")
@click.option("--no-peers", is_flag=True, help="Skip pyee and blinker.")
def bench_bus(as_json: bool, rounds: int, n: int, no_peers: bool) -> None:
    """Event bus publishes/s beside a plain call, a naive bus, pyee and blinker."""
    from tradelab.benchmarking.bus import emit

    emit(n, rounds, as_json=as_json, peers=not no_peers)


@bench.command("store")
@bench_options(100_000, "mark.updated events per round and contender.")
@click.option(
    "--rate-hz",
    type=click.FloatRange(min=0.1, max=1000),
    default=20.0,
    show_default=True,
    help="Refresh rate of the reactive layer.",
)
def bench_store(as_json: bool, rounds: int, n: int, rate_hz: float) -> None:
    """StateStore applies/s alone and with the reactive param layer, beside dict/param floors."""
    from tradelab.benchmarking.store import emit, run_store_benchmark

    emit(run_store_benchmark(n, rounds, rate_hz), as_json)


@main.command("run")
@click.option(
    "--journal",
    default="data/lab.duckdb",
    show_default=True,
    help="DuckDB journal; an existing one is recovered and the session resumed.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Simulated market seed.")
@click.option(
    "--ticks-per-second",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="Ticks per wall-clock second.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0.001),
    default=60.0,
    show_default=True,
    help="Simulated seconds per wall second (60: one session hour per minute).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop after this many wall seconds (default: when the session closes).",
)
@click.option(
    "--every",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between status lines.",
)
def run_cmd(
    journal: str,
    seed: int,
    ticks_per_second: int,
    speed: float,
    duration: float | None,
    every: float,
) -> None:
    """Run a paper session headless: simulated NIFTY market + paper broker, journaled.

    Ctrl-C (or SIGTERM) stops cleanly: the queue is drained, a snapshot taken, the file closed.
    """
    import signal
    import time

    from tradelab.errors import TradelabError
    from tradelab.lab import Lab, LabConfig

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    config = LabConfig(
        journal_path=journal, seed=seed, ticks_per_second=ticks_per_second, speed=speed
    )
    lab = Lab(config)
    try:
        lab.start()
    except TradelabError as exc:
        raise click.ClickException(str(exc)) from None
    report = lab.engine.recovery_report
    click.echo(report.summary())
    started = time.monotonic()
    try:
        while not lab.session_finished.wait(every):
            s = lab.status()
            pnl = "-" if s["daily_pnl"] is None else f"{s['daily_pnl']:,.2f}"
            click.echo(
                f"seq {s['seq']:>9}  {s['exchange_time']:%H:%M:%S} IST  "
                f"NIFTY {s['index'] or 0:>9.2f}  ticks {s['ticks']:>8}  "
                f"bars {s['bars']:>4}  open positions {s['open_positions']}  "
                f"day P&L {pnl}"
            )
            if duration is not None and time.monotonic() - started >= duration:
                break
        else:
            click.echo("the simulated session closed")
    except KeyboardInterrupt:
        click.echo("stopping...")
    finally:
        lab.stop()
    click.echo(
        f"stopped cleanly at seq {lab.store.version}; state hash "
        f"{lab.store.state_hash()[:16]}; inspect with: tradelab inspect {journal}"
    )


_JOURNAL_PATH = click.Path(dir_okay=False, exists=True)


@main.command("inspect")
@click.argument("path", type=_JOURNAL_PATH)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def inspect_cmd(path: str, as_json: bool) -> None:
    """Counts by topic, seq range, snapshots and state hash of a journal.

    DuckDB lets one process write a file or many read it, never both: while an engine runs on
    PATH this falls back to its sealed Parquet segments (events only, up to the last seal).
    """
    import json

    from tradelab.errors import TradelabError
    from tradelab.journal import JournalReader
    from tradelab.journal.schema import LOCK_HINT
    from tradelab.journal.verify import inspect_journal

    try:
        info = inspect_journal(path)
    except TradelabError as exc:
        if "locked" not in str(exc):
            raise click.ClickException(str(exc)) from None
        reader = JournalReader(path)
        topics = reader.counts_by_topic()
        info = {
            "path": path,
            "source": "segments",
            "note": reader.note,
            "events": sum(topics.values()),
            "last_seq": reader.last_seq(),
            "topics": topics,
        }
        click.echo(f"journal {path} is in use by a running engine ({LOCK_HINT})", err=True)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"journal    {info['path']}")
    click.echo(f"events     {info['events']}  seq {info.get('first_seq', 1)}..{info['last_seq']}")
    for topic, count in info["topics"].items():
        click.echo(f"  {topic:28s} {count:>10}")
    for snap in info.get("snapshots", []):
        click.echo(
            f"snapshot   {snap['id']:>4}  seq {snap['last_seq']:>10}  "
            f"sha256 {snap['sha256'][:16]}  {snap['size_bytes']} bytes"
        )
    if "state_hash" in info:
        click.echo(f"state hash {info['state_hash']}")


@main.command("verify")
@click.argument("path", type=_JOURNAL_PATH)
def verify_cmd(path: str) -> None:
    """Check a journal: contiguous seqs, tail mark, every snapshot's hash, replay == recovery.

    Exits 1 when a check fails, 2 when the journal cannot be opened (e.g. an engine is running on
    it: DuckDB allows no reader beside the writer; stop it, or read segments with JournalReader).
    """
    from tradelab.errors import TradelabError
    from tradelab.journal.verify import verify_journal

    try:
        result = verify_journal(path)
    except TradelabError as exc:
        click.echo(f"cannot verify: {exc}", err=True)
        raise SystemExit(2) from None
    for line in result.lines:
        click.echo(line)
    click.echo(f"{'journal is whole' if result.ok else 'journal has problems'}: {path}")
    if not result.ok:
        raise SystemExit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
