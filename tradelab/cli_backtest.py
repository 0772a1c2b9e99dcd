"""`tradelab backtest`: the run, its progress line on a terminal, and how the result is shown:
the fills and the round trips as tables with their times, then the totals (or --json), and with
--html a page with the price, the fills, the equity and its drawdown."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import click
import pandas as pd

from tradelab.cli_progress import count_of
from tradelab.runner.backtest import BacktestResult, run_backtest
from tradelab.runner.backtest_tables import fills_table, round_trips_table


def backtest_report(result: BacktestResult) -> str:
    """The fills, the round trips and the totals of `result`, as text."""
    parts = []
    if result.fills:
        parts += [f"fills ({len(result.fills):,})", _shown(fills_table(result), "fill")]
    if result.trades:
        parts += [
            f"round trips ({len(result.trades):,})",
            _shown(round_trips_table(result), "round trip"),
        ]
    won = sum(1 for t in result.trades if t["net_pnl"] > 0)
    parts += [
        f"{count_of(result.bars, 'bar')} of {result.symbol} ({result.interval}) in "
        f"{result.seconds:.2f} s ({result.bars_per_second:,.0f} bars/s; "
        f"{result.wall_seconds:.2f} s with the file read and this report); "
        f"{count_of(len(result.fills), 'fill')}, {count_of(len(result.trades), 'round trip')}"
        + (f", {won:,} won ({won / len(result.trades):.0%})" if result.trades else ""),
        f"realized {result.realized_pnl:,.2f}  unrealized {result.unrealized_pnl:,.2f}  "
        f"fees {result.fees:,.2f}  final equity {result.final_equity:,.2f} "
        f"({(result.final_equity - result.cash) / result.cash:+.2%} on cash "
        f"{result.cash:,.2f})  max drawdown {result.max_drawdown:,.2f}",
        f"journal content hash {result.content_hash}",
    ]
    if result.refused_orders:
        first = result.refused_orders[0]
        # A quantity the desk refused as malformed is not in the order's record: the reason
        # names it.
        order = " ".join(
            str(first[k]) for k in ("side", "quantity", "symbol") if first[k] is not None
        )
        parts.append(
            f"{count_of(len(result.refused_orders), 'order')} refused (none of them traded); "
            f"the first, {order}: {first['reason']}"
        )
    if result.unfilled_orders:
        parts.append(
            f"{count_of(len(result.unfilled_orders), 'order')} still working when the bars ran "
            f"out, not filled: {', '.join(result.unfilled_orders[:5])}"
        )
    return "\n".join(parts)


ROWS_SHOWN = 10  # at each end of a long table; --json holds every row


def _shown(table: pd.DataFrame, row: str) -> str:
    """`table` as text: whole up to 3 * ROWS_SHOWN rows, else its first and last ROWS_SHOWN."""
    if len(table) <= 3 * ROWS_SHOWN:
        return table.to_string(index=False)
    gap = pd.DataFrame([["..."] * table.shape[1]], columns=table.columns)
    shown = pd.concat([table.head(ROWS_SHOWN), gap, table.tail(ROWS_SHOWN)], ignore_index=True)
    hidden = len(table) - 2 * ROWS_SHOWN
    return (
        f"{shown.to_string(index=False)}\n"
        f"({count_of(hidden, row)} not shown at the '...'; --json lists every one)"
    )


class BarProgress:
    """A backtest's progress on a terminal: one stderr line rewritten, cleared at the end."""

    def __init__(self) -> None:
        self._shown_at = 0.0

    def end(self) -> None:
        """Clear the line: the report (or an error) follows."""
        self._write("\r\x1b[K")

    def __call__(self, played: int, bars: int) -> None:
        if played >= bars:
            self.end()
        elif time.monotonic() - self._shown_at >= 0.25:
            self._shown_at = time.monotonic()
            self._write(f"\rbacktest: {played:,} of {bars:,} bars ({played / bars:.0%})\x1b[K")

    @staticmethod
    def _write(text: str) -> None:
        sys.stderr.write(text)  # as is: only ever shown on a terminal
        sys.stderr.flush()


def backtest_command(
    file: str,
    strategy_name: str,
    params: dict[str, str],
    *,
    symbol: str | None,
    cash: float,
    commission: float,
    fee_per_fill: float,
    journal: str | None,
    as_json: bool,
    config_file: str | None,
    html: str | None,
) -> None:
    """The command's work; every failure ends in `fail` with its documented exit code."""
    from tradelab.cli import EXIT_STRATEGY_FAILED, exit_code_for, fail
    from tradelab.errors import TradelabError
    from tradelab.runner import make_strategy
    from tradelab.settings import risk_limits, set_but_unused_by_backtest

    try:
        unused = set_but_unused_by_backtest(config_file) if config_file is not None else []
    except TradelabError as exc:  # a bad file: said as the run would say it
        fail(exc, exit_code_for(exc))
    if unused:
        click.echo(
            f"tradelab: note: a backtest does not use {', '.join(unused)} of {config_file} "
            "(a live session's: give --strategy, --param, --cash, --commission and "
            "--fee-per-fill; a backtest charges no fee unless given one)",
            err=True,
        )

    inputs = [config_file] if config_file else []
    if strategy_name.partition(":")[0].endswith(".py"):  # FILE.py:Class
        inputs.append(strategy_name.partition(":")[0])
    if html and (why := _an_input(Path(html), file, journal, inputs) or _unwritable(Path(html))):
        from tradelab.cli import EXIT_USAGE

        fail(f"--html {html!r}: {why}", EXIT_USAGE)
    with tempfile.TemporaryDirectory(prefix="tradelab-bt-") as scratch:
        # The page is drawn from the journal: without --journal, one kept until it is written.
        kept = journal or (str(Path(scratch) / "bt.duckdb") if html else None)
        progress = BarProgress() if sys.stderr.isatty() else None
        try:
            strategy = make_strategy(strategy_name, params)
            result = run_backtest(
                file,
                strategy,
                symbol=symbol,
                cash=cash,
                commission=commission,
                fee_per_fill=fee_per_fill,
                journal_path=kept,
                engine_overrides=_backtest_engine_settings(config_file),
                progress=progress,
                risk=risk_limits(config_file) if config_file else None,
            )
        except TradelabError as exc:
            fail(exc, exit_code_for(exc))
        except KeyboardInterrupt as exc:  # Ctrl-C (or a strategy raising it): no result
            from tradelab.cli import EXIT_INTERRUPTED
            from tradelab.runner.backtest_interrupt import InterruptedWhileStopping

            if isinstance(exc, InterruptedWhileStopping):
                when, held = "after the last bar, while stopping its strategies", "every bar"
            else:
                when, held = "before the last bar", "the bars played so far"
            # Interrupted before the engine made it, there is no journal to speak of.
            made = journal is not None and Path(journal).exists()
            where = f"; the journal {journal} holds {held}" if made else ""
            fail(f"backtest interrupted (Ctrl-C) {when}{where}", EXIT_INTERRUPTED)
        if progress is not None:
            progress.end()  # a run a failed strategy stopped short ends before its last bar
        chart_error = None
        if html:
            try:
                write_html_report(
                    result, html, _what_was_run(strategy, file, cash, commission, fee_per_fill)
                )
            except TradelabError as exc:  # the report is still printed, then this
                chart_error = exc
        if journal is None:
            result.journal = None  # the scratch journal is gone with this block
    if as_json:
        click.echo(json.dumps(result.to_dict(), default=str))
    else:
        click.echo(backtest_report(result))
        if html and chart_error is None:
            click.echo(f"chart: {html}")
    # A crashed strategy first: it is why the run (and so its chart) may hold nothing.
    for name, why in result.failed_strategies.items():  # a crashed strategy is no result
        extra = f" (and the chart: {chart_error})" if chart_error is not None else ""
        fail(f"strategy {name} failed: {why}; the figures stop there{extra}", EXIT_STRATEGY_FAILED)
    if chart_error is not None:
        fail(chart_error, exit_code_for(chart_error))


def _what_was_run(
    strategy, file: str, cash: float, commission: float, fee_per_fill: float
) -> dict[str, str]:
    """The page's line under its title: enough to run it again."""
    params = ", ".join(f"{k}={v!r}" for k, v in strategy.parameters().items() if v != "")
    return {
        "strategy": f"{strategy.name} ({params})" if params else strategy.name,
        "file": Path(file).name,
        "cash": f"{cash:,.2f}",
        "commission": f"{commission:g}",
        "fee per fill": f"{fee_per_fill:,.2f}",
    }


def _an_input(page: Path, file: str, journal: str | None, others: list[str]) -> str:
    """Why the page must not be written at `page` ('' when it may): it would replace a file the
    run reads (the bar file, `others`: the config file, the strategy's file) or the journal it
    writes (or one of the journal's side files and folders). Same file by inode too: a link."""
    for what, path in [("the bar file", file)] + [("an input of the run", o) for o in others]:
        if page.resolve() == Path(path).resolve() or _same_file(page, Path(path)):
            return f"it is {what} ({path}); name another file for the page"
    if journal is not None:
        kept = Path(journal).resolve()
        stem = kept.with_suffix("").name if kept.suffix else kept.name
        near = page.resolve().parent == kept.parent
        named = page.name.startswith((kept.name + ".", stem + ".segments", stem + ".acklog"))
        if page.resolve() == kept or (near and named):
            return "it is the journal or one of its files; name another file for the page"
    return ""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _unwritable(path: Path) -> str:
    """Why the chart could not be written at `path` ('' when it can): tried by opening it for
    appending, so a folder a user may not write in (or /proc) is said before a long run."""
    if not path.resolve().parent.is_dir():
        return "its folder does not exist"
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as exc:
        return f"it cannot be written: {exc.strerror or exc}"
    if not existed:
        path.unlink(missing_ok=True)
    return ""


def write_html_report(
    result: BacktestResult, path: str, details: dict[str, str] | None = None
) -> None:
    """A standalone page of the run (see `tradelab.runner.backtest_page`)."""
    from tradelab.runner.backtest_page import write_backtest_page

    write_backtest_page(result, path, details)


def _backtest_engine_settings(config_file: str | None) -> dict | None:
    """The file's engine settings but its snapshot pace: that is a live session's (one
    tradelab.yaml serves every command), and a backtest snapshots only at its end."""
    from tradelab.settings import engine_settings

    if config_file is None:
        return None
    settings = engine_settings(config_file)
    for key in ("snapshot_every_seconds", "snapshot_every_events"):
        settings.pop(key, None)
    return settings
