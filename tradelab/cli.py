"""The `tradelab` command line: run a session, serve the console, inspect/verify a journal, bench.

Each command builds its own objects and exits; nothing here is imported by the library itself.
Exit codes: 0 ok; 1 the journal is damaged (verify found a problem, or a file, table or row
cannot be read); 2 usage (bad option, no such file); 3 the journal cannot be used here (in use
by an engine, not a tradelab journal, newer format, unwritable) or its writer failed during
`run`, or the paper broker's account file could not be written (disk full); 4 a strategy
raised during `backtest` or `run` and was stopped (the report is printed);
130 interrupted by Ctrl-C (a backtest: no report, its journal whole up to the bar it reached;
verify, inspect).
A run stopped by Ctrl-C or SIGTERM (during start-up too; a repeat while stopping is ignored)
stops cleanly: 0.
A failure prints one line, `tradelab: error: ...`, to stderr (--debug adds tracebacks).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import NoReturn

import click

from tradelab import __version__
from tradelab.cli_bench import bench
from tradelab.cli_journal import inspect_cmd, verify_cmd
from tradelab.cli_options import NumberRange, config_option
from tradelab.cli_progress import NoTracebacks, StderrHandler, clear_progress_line
from tradelab.cli_serve import serve
from tradelab.journal.journal_file import is_interrupt

EXIT_OK = 0
EXIT_DAMAGED = 1
EXIT_USAGE = 2
EXIT_UNUSABLE = 3
EXIT_STRATEGY_FAILED = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command Ctrl-C ended


MAX_ERROR_CHARS = 2_000


def fail(message: object, code: int) -> NoReturn:
    """Print `tradelab: error: <message>` (one line) to stderr and exit with `code`; under
    `tradelab --debug`, the traceback of the error behind it first (`message` itself, or the
    one being handled)."""
    context = click.get_current_context(silent=True)
    if context is not None and context.find_root().params.get("debug"):
        cause = message if isinstance(message, BaseException) else sys.exc_info()[1]
        if cause is not None:
            click.echo("".join(traceback.format_exception(cause)).rstrip(), err=True)
    text = " ".join(str(message).split())
    if len(text) > MAX_ERROR_CHARS:  # a huge value quoted in it (a config's) is not one line
        text = f"{text[:MAX_ERROR_CHARS]}... ({len(text):,} characters)"
    clear_progress_line()
    click.echo(f"tradelab: error: {text}", err=True)
    raise SystemExit(code)


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an error a command stops on."""
    from tradelab.errors import InvalidInputError, RecoveryError

    if isinstance(exc, RecoveryError):
        return EXIT_DAMAGED
    if isinstance(exc, InvalidInputError):
        return EXIT_USAGE
    return EXIT_UNUSABLE


def _speed_type() -> click.ParamType:
    from tradelab.cli_run import SpeedType

    return SpeedType()


class _Commands(click.Group):
    """The command group; a Ctrl-C no command answered itself (verify, inspect, a backtest's
    start-up) is exit 130 with one line, not click's "Aborted!" and exit 1 (journal damaged)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            fail("interrupted (Ctrl-C)", EXIT_INTERRUPTED)
        except Exception as exc:
            if not is_interrupt(exc):  # DuckDB's form of a Ctrl-C that came mid-query
                raise
            fail("interrupted (Ctrl-C)", EXIT_INTERRUPTED)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tradelab")
@click.option(
    "--debug", is_flag=True, help="Show tracebacks: of the error a command stops on, and in logs."
)
def main(debug: bool) -> None:
    """tradelab: a live NIFTY options paper-trading state engine with a DuckDB journal.

    Exit codes: 0 ok, 1 journal damaged, 2 usage, 3 journal unusable or writer failed,
    4 a strategy failed in a backtest or a run, 130 interrupted by Ctrl-C (a backtest,
    verify, inspect; a run or serve stopped by Ctrl-C stops cleanly: 0).
    """
    if debug:  # the journal writer process, a child, shows its tracebacks too
        os.environ["TRADELAB_DEBUG"] = "1"
    handler = StderrHandler()
    fmt = "tradelab: %(levelname)s: %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if debug else NoTracebacks(fmt))
    logger = logging.getLogger("tradelab")
    logger.handlers = [h for h in logger.handlers if not isinstance(h, StderrHandler)]
    logger.addHandler(handler)


@main.command("config")
@config_option("its values replace the defaults", flags=False)
def config_cmd(config_file: str | None) -> None:
    """Print the effective settings (defaults, then --config FILE) as a documented tradelab.yaml:
    every setting with its doc and what it allows. Its output is itself a valid settings file.
    """
    from tradelab.errors import TradelabError
    from tradelab.settings import load_settings
    from tradelab.settings_dump import dump_settings

    try:
        text = dump_settings(load_settings(config_file))
    except TradelabError as exc:
        fail(exc, exit_code_for(exc))
    click.echo(text, nl=False)


@main.command("run")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@config_option("every section is used")
@click.option(
    "--feed",
    type=click.Choice(["sim", "replay"]),
    default="sim",
    show_default=True,
    help="'sim': the seeded simulated NIFTY session; 'replay FILE': a bar file (CSV/Parquet with "
    "timestamp or Date, open, high, low, close, optional symbol and volume, any case).",
)
@click.option(
    "--strategy",
    "strategy_name",
    default="short_straddle",
    show_default=True,
    help="sma_cross, short_straddle, your own Strategy as FILE.py:Class or module:Class, or "
    "'none' (the market only).",
)
@click.option("--param", "params", multiple=True, help="Strategy parameter name=value (repeat).")
@click.option(
    "--journal",
    default="data/lab.duckdb",
    show_default=True,
    help="DuckDB journal; an existing one is recovered and the session resumed.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=7,
    show_default=True,
    help="Simulated market seed.",
)
@click.option(
    "--ticks-per-second",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="Ticks per wall-clock second (sim feed).",
)
@click.option(
    "--speed",
    type=_speed_type(),
    default="60",
    show_default=True,
    help="Market seconds per wall second: 1 (real time), N or Nx, or max (no pacing).",
)
@click.option(
    "--duration",
    type=NumberRange(min=0),
    default=None,
    help="Stop after this many wall seconds (default: when the session ends).",
)
@click.option(
    "--every",
    type=NumberRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between progress updates.",
)
@click.option(
    "--accept-lost-tail",
    is_flag=True,
    help="Go on with a journal whose last committed events were lost (a torn WAL tail; refused "
    "as damaged otherwise), from the last seq it holds, the loss recorded in it.",
)
@click.option(
    "--resume-trading",
    "resume_reason",
    metavar="REASON",
    default=None,
    help="Lift the journal's risk halt on start, journaled with your user name and REASON.",
)
def run_cmd(
    file: str | None,
    config_file: str | None,
    feed: str,
    strategy_name: str,
    params: tuple[str, ...],
    journal: str,
    seed: int,
    ticks_per_second: int,
    speed: float | None,
    duration: float | None,
    every: float,
    accept_lost_tail: bool,
    resume_reason: str | None,
) -> None:
    """Run a session headless: a simulated (or replayed) NIFTY market, a strategy, the paper
    broker, journaled; with a progress line (rewritten in place on a terminal).

    Ctrl-C (or SIGTERM) stops cleanly: the queue is drained, a snapshot taken, the file closed.
    If the journal writer fails (its process killed, the disk full) the session stops with exit
    code 3 and says up to which seq events are durable; a restart on the journal recovers them.
    A risk halt (the daily loss limit, or an operator's) outlives a restart: lift it with
    --resume-trading REASON (or the console's Resume trading).
    """
    from tradelab.cli_run import flags_given, run_session
    from tradelab.cli_signals import StopSignals

    given = flags_given(
        click.get_current_context(),
        feed=feed,
        strategy_name=strategy_name,
        journal=journal,
        seed=seed,
        ticks_per_second=ticks_per_second,
        speed=speed,
        accept_lost_tail=accept_lost_tail,
    )
    with StopSignals() as signals:  # before anything opens: a Ctrl-C in start-up stops cleanly
        run_session(
            file=file,
            config_file=config_file,
            given=given,
            params=_params(params),
            duration=duration,
            every=every,
            resume_reason=resume_reason,
            # The stderr handlers this command installed: quietened once the writer failed.
            log_handlers=[
                h for h in logging.getLogger("tradelab").handlers if isinstance(h, StderrHandler)
            ],
            signals=signals,
        )


def _params(assignments: tuple[str, ...]) -> dict[str, str]:
    """`name=value` options as a dict; a malformed one is a usage error naming it."""
    out = {}
    for text in assignments:
        name, sep, value = text.partition("=")
        if not sep or not name:
            fail(f"--param {text!r} is not name=value (e.g. --param fast=5)", EXIT_USAGE)
        name = name.strip()
        if name in out:
            fail(f"--param {name} is given twice ({out[name]!r}, {value.strip()!r})", EXIT_USAGE)
        out[name] = value.strip()
    return out


@main.command("backtest")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--strategy",
    "strategy_name",
    required=True,
    help="sma_cross, or your own Strategy: FILE.py:Class or module:Class (short_straddle "
    "trades options: replay them with tradelab run --feed replay).",
)
@click.option("--param", "params", multiple=True, help="Strategy parameter name=value (repeat).")
@click.option(
    "--symbol",
    default=None,
    help="Symbol to trade when FILE holds several; a file without a Symbol column trades "
    "under this name (default: its file name).",
)
@click.option(
    "--cash", type=NumberRange(min=0, min_open=True), default=1_000_000.0, show_default=True
)
@click.option(
    "--commission",
    type=NumberRange(0, 0.1),
    default=0.0,
    show_default=True,
    help="Fraction of traded value charged per fill.",
)
@click.option(
    "--fee-per-fill",
    type=NumberRange(min=0),
    default=0.0,
    show_default=True,
    help="Flat fee charged per fill (e.g. 20, a discount broker's rupees), beside --commission.",
)
@click.option("--journal", default=None, help="New journal file to keep (default: temporary).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--html",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a page to open in a browser: the price with the fills, equity, drawdown.",
)
@config_option(
    "its engine section and risk's pre-trade limits are used; its lab strategy and broker are "
    "a live session's (a note names any it sets)"
)
def backtest_cmd(
    file: str,
    strategy_name: str,
    params: tuple[str, ...],
    symbol: str | None,
    cash: float,
    commission: float,
    fee_per_fill: float,
    journal: str | None,
    as_json: bool,
    html: str | None,
    config_file: str | None,
) -> None:
    """Replay a CSV/Parquet bar file (Date, Open, High, Low, Close[, Volume]) through a strategy,
    the paper broker and the book, as fast as possible; print fills, trades, P&L and equity.

    A market order placed on a bar fills at the next bar's open; open positions are valued at
    the last close. The same inputs give the same journal content hash (a config file's snapshot
    settings are a live session's: a backtest snapshots only at its end).
    """
    from tradelab.cli_backtest import backtest_command

    backtest_command(
        file,
        strategy_name,
        _params(params),
        symbol=symbol,
        cash=cash,
        commission=commission,
        fee_per_fill=fee_per_fill,
        journal=journal,
        as_json=as_json,
        config_file=config_file,
        html=html,
    )


main.add_command(bench)
main.add_command(inspect_cmd)
main.add_command(verify_cmd)
main.add_command(serve)


def entry() -> None:
    """The `tradelab` command: `main` in a process tuned to run a session (collector.py)."""
    from tradelab.collector import tune_collector

    tune_collector()
    main()


if __name__ == "__main__":  # pragma: no cover
    entry()
