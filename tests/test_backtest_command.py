"""`tradelab backtest` as a command: the report's tables and totals, its progress line, --html."""

import io
import logging
import os
import sys

import pandas as pd
import pytest

from tests.test_backtest import write_bars
from tradelab.errors import InvalidInputError
from tradelab.runner import SmaCross
from tradelab.runner.backtest import run_backtest


def test_the_command_prints_fills_and_round_trips_as_tables_with_their_dates(tmp_path):
    from click.testing import CliRunner

    from tradelab.cli import main as cli

    bars = write_bars(tmp_path / "ABC.csv")
    args = ["backtest", str(bars), "--strategy", "sma_cross", "--param", "fast=2"]
    result = CliRunner().invoke(cli, [*args, "--param", "slow=3", "--cash", "10000"])
    assert result.exit_code == 0, (result.output, result.stderr)
    lines = result.output.splitlines()
    # The hand-computed fills (see the table at the top): bar 4, 6 and 9 opens, dated.
    fills = lines[lines.index("fills (3)") + 2 : lines.index("fills (3)") + 5]
    assert [line.split()[:4] for line in fills] == [
        ["2024-03-05", "BT-F000001", "SELL", "1"],
        ["2024-03-07", "BT-F000002", "BUY", "2"],
        ["2024-03-10", "BT-F000003", "SELL", "2"],
    ]
    trips = lines[lines.index("round trips (2)") + 2 : lines.index("round trips (2)") + 4]
    assert [line.split()[:3] for line in trips] == [
        ["2024-03-05", "2024-03-07", "SHORT"],
        ["2024-03-07", "2024-03-10", "LONG"],
    ]
    assert "10 bars of ABC (1d)" in result.output and "final equity" in result.output


def test_progress_is_told_while_the_bars_play_and_shown_on_one_line(tmp_path, monkeypatch, capsys):
    from tradelab.cli_backtest import BarProgress
    from tradelab.runner import backtest_play

    monkeypatch.setattr(backtest_play, "PROGRESS_EVERY", 3)
    told = []
    result = run_backtest(
        write_bars(tmp_path / "ABC.csv"),
        SmaCross(fast=2, slow=3),
        progress=lambda played, bars: told.append((played, bars)),
    )
    assert told == [(0, 10), (3, 10), (6, 10), (9, 10), (10, 10)]
    assert len(result.fills) == 3  # the same run as without it
    shown = BarProgress()
    shown(5, 10)
    shown(6, 10)  # within 0.25 s of the last: not redrawn
    shown(10, 10)  # done: the line is cleared for the report
    assert capsys.readouterr().err == "\rbacktest: 5 of 10 bars (50%)\x1b[K\r\x1b[K"


def test_html_writes_the_price_fills_and_equity_page_without_keeping_a_journal(
    tmp_path, monkeypatch
):
    from click.testing import CliRunner

    from tradelab.cli import main as cli

    bars = write_bars(tmp_path / "ABC.csv")
    page = tmp_path / "bt.html"
    args = ["backtest", str(bars), "--strategy", "sma_cross", "--param", "fast=2"]
    out = CliRunner().invoke(cli, [*args, "--param", "slow=3", "--html", str(page), "--json"])
    assert out.exit_code == 0, (out.output, out.stderr)
    text = page.read_text()
    assert "<title>ABC (1d), 3 fills</title>" in text
    assert "Fills on ABC" in text and "drawdown" in text
    # What was run, to run it again, and the figures a reader looks for first.
    assert "strategy sma_cross (fast=2, size=1, slow=3)" in text and "file ABC.csv" in text
    assert "round trips won" in text and "Round trips (2)" in text
    assert "https://cdn.bokeh.org" not in text  # BokehJS inline: the page opens offline
    assert 'src="static/' not in text  # nor asks for a server's file (Panel's shim, unused)
    assert '"journal": null' in out.stdout and not list(tmp_path.glob("*.duckdb"))
    out = CliRunner().invoke(
        cli, [*args, "--param", "slow=3", "--html", str(tmp_path / "no/x.html")]
    )
    # Found out before the run: no report printed for a page that cannot be written.
    assert out.exit_code == 2 and "its folder does not exist" in out.stderr
    assert "final equity" not in out.stdout
    # The page never replaces what the run reads or writes: the bar file, the journal.
    before = bars.read_bytes()
    out = CliRunner().invoke(cli, [*args, "--param", "slow=3", "--html", str(bars)])
    assert out.exit_code == 2 and "it is the bar file" in out.stderr
    assert bars.read_bytes() == before
    kept = tmp_path / "kept.duckdb"
    for page_path in (kept, tmp_path / "kept.duckdb.hwm"):
        out = CliRunner().invoke(
            cli, [*args, "--journal", str(kept), "--html", str(page_path), "--param", "slow=3"]
        )
        assert out.exit_code == 2 and "it is the journal or one of its files" in out.stderr
        assert not kept.exists() and not page_path.exists()
    out = CliRunner().invoke(
        cli, [*args, "--journal", str(kept), "--html", str(tmp_path / "kept.segments")]
    )
    assert out.exit_code == 2 and "it is the journal or one of its files" in out.stderr
    # Nor another input: the bar file through a hard link, the config file, the strategy's file.
    linked = tmp_path / "linked.csv"
    os.link(bars, linked)
    config = tmp_path / "t.yaml"
    config.write_text("risk:\n  max_order_quantity: 10\n")
    for flags, page_path in [
        ([], linked),
        (["--config", str(config)], config),
    ]:
        out = CliRunner().invoke(
            cli, [*args, *flags, "--param", "slow=3", "--html", str(page_path)]
        )
        assert out.exit_code == 2, (page_path, out.output, out.stderr)
    assert bars.read_bytes() == before and config.read_text().startswith("risk:")
    mine = tmp_path / "mine.py"
    mine.write_text("from tradelab.runner import SmaCross\n\nclass Mine(SmaCross):\n    pass\n")
    out = CliRunner().invoke(
        cli, ["backtest", str(bars), "--strategy", f"{mine}:Mine", "--html", str(mine)]
    )
    assert out.exit_code == 2 and "an input of the run" in out.stderr
    assert "class Mine" in mine.read_text()
    # A page that fails only when written (a full disk): the run's report is still printed.
    import tradelab.cli_backtest

    def full_disk(result, path, details):
        raise InvalidInputError(f"cannot write the chart to {path!r}: no space left")

    monkeypatch.setattr(tradelab.cli_backtest, "write_html_report", full_disk)
    out = CliRunner().invoke(cli, [*args, "--param", "slow=3", "--html", str(page)])
    assert out.exit_code == 2 and "cannot write the chart to" in out.stderr
    assert "final equity" in out.stdout and "chart:" not in out.stdout


def test_the_report_shows_the_ends_of_long_tables_and_the_run_at_a_glance(tmp_path):
    from tradelab.cli_backtest import ROWS_SHOWN, backtest_report

    # A close that zigzags every 3 bars: sma_cross (1/2) crosses each time, ~50 fills.
    closes = [10 + (i // 3 % 2) * 2 + i * 0.01 for i in range(160)]
    bars = tmp_path / "ZIG.csv"
    dates = pd.date_range("2024-01-01", periods=len(closes), freq="D")
    pd.DataFrame(
        {"Date": dates, "Open": closes, "High": closes, "Low": closes, "Close": closes}
    ).to_csv(bars, index=False)
    result = run_backtest(bars, SmaCross(fast=1, slow=2), cash=1000.0)
    assert len(result.fills) > 3 * ROWS_SHOWN
    text = backtest_report(result)
    hidden = len(result.fills) - 2 * ROWS_SHOWN
    assert f"({hidden} fills not shown at the '...'; --json lists every one)" in text
    assert text.count("BT-F") == 2 * ROWS_SHOWN  # the first and the last fills only
    won = sum(t["net_pnl"] > 0 for t in result.trades)
    assert f"{len(result.trades)} round trips, {won} won" in text
    assert result.max_drawdown < 0 and f"max drawdown {result.max_drawdown:,.2f}" in text
    change = (result.final_equity - 1000.0) / 1000.0
    assert f"({change:+.2%} on cash 1,000.00)" in text
    # The run's rate is of the loop; the whole wait (file read, engine start, this report's
    # reading back) is told beside it, never hidden.
    assert result.wall_seconds > result.seconds > 0
    assert f"{result.wall_seconds:.2f} s with the file read and this report" in text


def test_max_drawdown_is_the_deepest_fall_of_the_equity_view(tmp_path):
    from tradelab.analytics import Analytics

    journal = tmp_path / "bt.duckdb"
    result = run_backtest(
        write_bars(tmp_path / "ABC.csv"), SmaCross(fast=2, slow=3), journal_path=journal
    )
    drawdown = Analytics(journal).sql("SELECT drawdown FROM equity")["drawdown"]
    assert result.max_drawdown == pytest.approx(drawdown.min()) and result.max_drawdown < 0


def test_orders_refused_for_margin_are_counted_in_the_report_and_listed_in_json(tmp_path):
    import json

    from click.testing import CliRunner

    from tradelab.cli import main as cli

    bars = write_bars(tmp_path / "ABC.csv")
    args = ["backtest", str(bars), "--strategy", "sma_cross", "--param", "fast=2"]
    args += ["--param", "slow=3", "--param", "size=100000", "--cash", "1000"]
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0, (text.output, text.stderr)
    assert "0 fills" in text.output
    assert "3 orders refused (none of them traded); the first, SELL 100000 ABC: insufficient" in (
        text.output
    )
    report = json.loads(CliRunner().invoke(cli, [*args, "--json"]).stdout)
    assert [(o["side"], o["status"]) for o in report["refused_orders"]] == [
        ("SELL", "rejected"),
        ("BUY", "rejected"),
        ("SELL", "rejected"),
    ]
    assert all(o["reason"].startswith("insufficient margin") for o in report["refused_orders"])


def test_an_order_refused_as_malformed_is_summed_up_without_a_none(tmp_path):
    from click.testing import CliRunner

    from tradelab.cli import EXIT_STRATEGY_FAILED
    from tradelab.cli import main as cli

    (tmp_path / "half.py").write_text(
        "from tradelab.runner import Strategy\n\n"
        "class Half(Strategy):\n"
        "    def on_bar(self, ctx, bar):\n"
        "        ctx.buy(bar['symbol'], 1.5)\n"
    )
    spec = f"{tmp_path / 'half.py'}:Half"
    bars = str(write_bars(tmp_path / "ABC.csv"))
    result = CliRunner().invoke(cli, ["backtest", bars, "--strategy", spec])
    assert result.exit_code == EXIT_STRATEGY_FAILED, (result.output, result.stderr)
    assert "the first, BUY ABC: quantity 1.5 for ABC is not a whole number" in result.output


def test_a_long_runs_counts_are_printed_with_thousands_grouped_everywhere():
    from tradelab.cli_backtest import backtest_report
    from tradelab.runner.backtest import BacktestResult

    start = 1_709_264_700 * 10**9
    fills = [
        {"ts": start + i * 60 * 10**9, "trade_id": f"T{i}", "side": "BUY", "quantity": 1}
        | {"price": 100.0, "fee": 0.0, "realized_pnl": 0.0}
        for i in range(1200)
    ]
    trades = [
        {"opened_ts": start, "closed_ts": start + 60 * 10**9, "direction": "LONG"}
        | {
            "quantity": 1,
            "entry_price": 100.0,
            "exit_price": 101.0,
            "net_pnl": 1.0 if i % 10 else -1.0,
        }
        for i in range(1199)
    ]
    result = BacktestResult(
        symbol="ABC", interval="1m", bars=5000, cash=1e6, fills=fills, trades=trades,
        realized_pnl=0.0, unrealized_pnl=0.0, fees=0.0, final_equity=1e6, open_positions={},
        content_hash="x", journal=None, seconds=1.0, bars_per_second=5000.0,
    )  # fmt: skip
    report = backtest_report(result)
    assert "fills (1,200)" in report and "round trips (1,199)" in report
    assert "1,200 fills, 1,199 round trips, 1,079 won (90%)" in report
    assert "(1,180 fills not shown" in report


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_failure_or_warning_on_a_terminal_starts_its_own_line_not_after_the_progress(
    monkeypatch,
):
    from tradelab.cli import fail
    from tradelab.cli_backtest import BarProgress
    from tradelab.cli_progress import StderrHandler

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    BarProgress()(35, 100)
    StderrHandler().emit(logging.makeLogRecord({"msg": "an order was refused"}))
    BarProgress()(36, 100)
    with pytest.raises(SystemExit):
        fail("backtest interrupted (Ctrl-C)", 130)
    shown = terminal.getvalue()
    assert "(35%)\x1b[K\r\x1b[Kan order was refused" in shown
    assert "(36%)\x1b[K\r\x1b[Ktradelab: error: backtest interrupted" in shown
