"""`tradelab backtest` as a command: the report's tables and totals, its progress line, and the
--html page."""

import io
import json
import logging
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
    assert "https://cdn.bokeh.org" not in text  # BokehJS inline: the page opens offline
    assert '"journal": null' in out.stdout and not list(tmp_path.glob("*.duckdb"))
    out = CliRunner().invoke(
        cli, [*args, "--param", "slow=3", "--html", str(tmp_path / "no/x.html")]
    )
    # Found out before the run: no report printed for a page that cannot be written.
    assert out.exit_code == 2 and "its folder does not exist" in out.stderr
    assert "final equity" not in out.stdout
    # A page that fails only when written (a full disk): the run's report is still printed.
    import tradelab.cli_backtest

    def full_disk(result, path):
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


def test_the_command_backtests_a_users_own_strategy_from_its_file(tmp_path):
    from click.testing import CliRunner

    from tradelab.cli import EXIT_USAGE
    from tradelab.cli import main as cli

    (tmp_path / "mine.py").write_text(
        "import param\n"
        "from tradelab.runner import Strategy\n\n"
        "class BuyFirst(Strategy):\n"
        "    size = param.Integer(default=1)\n\n"
        "    def on_bar(self, ctx, bar):\n"
        "        if not ctx.position(bar['symbol']) and not ctx.working(bar['symbol']):\n"
        "            ctx.buy(bar['symbol'], self.size)\n"
    )
    bars = str(write_bars(tmp_path / "ABC.csv"))
    (tmp_path / "leaves.py").write_text("raise SystemExit(7)\n")  # would end the command
    spec = f"{tmp_path / 'mine.py'}:BuyFirst"
    args = ["backtest", bars, "--strategy", spec, "--param", "size=3", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (result.output, result.stderr)
    import json

    fills = json.loads(result.stdout)["fills"]
    assert [(f["side"], f["quantity"]) for f in fills] == [("BUY", 3)]  # at bar 2's open
    for bad, says in [
        (f"{tmp_path / 'mine.py'}:Nope", "has no Strategy subclass named 'Nope'"),
        (f"{tmp_path / 'none.py'}:BuyFirst", "no file"),
        ("no_such_module_here:X", "failed to import: ModuleNotFoundError"),
        ("none", "known: sma_cross, short_straddle, or your own"),  # 'none' is run's alone
        (f"{tmp_path / 'leaves.py'}:X", "failed to import: SystemExit: 7"),
    ]:
        refused = CliRunner().invoke(cli, ["backtest", bars, "--strategy", bad])
        assert refused.exit_code == EXIT_USAGE and says in refused.stderr, refused.stderr


def backtest_interrupted(tmp_path, source, class_name):
    """`tradelab backtest` of the strategy `source` defines, kept in a journal; the run must
    end as interrupted (exit 130). Returns (its stderr, the journal)."""
    from click.testing import CliRunner

    from tradelab.cli import EXIT_INTERRUPTED
    from tradelab.cli import main as cli

    (tmp_path / "interrupted.py").write_text(source)
    journal = tmp_path / "bt.duckdb"
    spec = f"{tmp_path / 'interrupted.py'}:{class_name}"
    args = ["backtest", str(write_bars(tmp_path / "ABC.csv")), "--strategy", spec]
    result = CliRunner().invoke(cli, [*args, "--journal", str(journal)])
    assert result.exit_code == EXIT_INTERRUPTED, (result.output, result.stderr)
    assert "Aborted" not in result.output
    return result.stderr, journal


def test_ctrl_c_in_a_backtest_is_exit_130_naming_the_journal_left_whole(tmp_path):
    from tradelab.journal.verify import verify_journal

    stderr, journal = backtest_interrupted(
        tmp_path,
        "from tradelab.runner import Strategy\n\n"
        "class CtrlC(Strategy):\n"
        "    def on_bar(self, ctx, bar):\n"
        "        raise KeyboardInterrupt  # as Ctrl-C lands in a hook on the caller's thread\n",
        "CtrlC",
    )
    assert "backtest interrupted (Ctrl-C)" in stderr and str(journal) in stderr
    assert verify_journal(journal).ok


def test_ctrl_c_in_on_stop_after_every_bar_says_so_and_calls_on_stop_once(tmp_path):
    from tradelab.journal.verify import verify_journal

    calls = tmp_path / "on_stop.txt"
    stderr, journal = backtest_interrupted(
        tmp_path,
        "from tradelab.runner import Strategy\n\n"
        "class CtrlCAtStop(Strategy):\n"
        "    def on_stop(self, ctx):\n"
        f"        with open({str(calls)!r}, 'a') as f:\n"
        "            f.write('on_stop\\n')\n"
        "        raise KeyboardInterrupt\n",
        "CtrlCAtStop",
    )
    assert (
        "backtest interrupted (Ctrl-C) after the last bar, while stopping its strategies; "
        f"the journal {journal} holds every bar" in stderr
    )
    assert calls.read_text() == "on_stop\n"  # not called again while the run was torn down
    assert verify_journal(journal).ok


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


def test_short_straddle_is_refused_by_a_backtest_saying_to_replay_its_options(tmp_path):
    # A backtest plays one symbol's bars: the straddle's options would never be quoted, and its
    # orders were refused one by one ("no quote for NIFTY...CE") in a run of 0 fills.
    from click.testing import CliRunner

    from tradelab.cli import EXIT_USAGE
    from tradelab.cli import main as cli

    journal = tmp_path / "bt.duckdb"
    args = ["backtest", "data/nifty_sample_1m.csv", "--strategy", "short_straddle"]
    result = CliRunner().invoke(cli, [*args, "--journal", str(journal)])
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "sells NIFTY options" in result.stderr
    assert "tradelab run --feed replay FILE --strategy short_straddle" in result.stderr
    assert not journal.exists()


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
    from tradelab.cli import _StderrHandler, fail
    from tradelab.cli_backtest import BarProgress

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    BarProgress()(35, 100)
    _StderrHandler().emit(logging.makeLogRecord({"msg": "an order was refused"}))
    BarProgress()(36, 100)
    with pytest.raises(SystemExit):
        fail("backtest interrupted (Ctrl-C)", 130)
    shown = terminal.getvalue()
    assert "(35%)\x1b[K\r\x1b[Kan order was refused" in shown
    assert "(36%)\x1b[K\r\x1b[Ktradelab: error: backtest interrupted" in shown


def test_a_config_files_risk_limits_deny_a_backtests_orders_as_in_a_session(tmp_path, caplog):
    # The risk section was silently ignored: orders over the limits filled.
    import json

    from click.testing import CliRunner

    from tradelab.cli import main as cli
    from tradelab.trading.risk_config import RiskConfig

    bars = write_bars(tmp_path / "ABC.csv")
    config = tmp_path / "risk.yaml"
    config.write_text("risk:\n  max_order_quantity: 1\n  daily_loss_limit: 5000\n")
    args = ["backtest", str(bars), "--strategy", "sma_cross", "--param", "fast=2"]
    args += ["--param", "slow=3", "--json", "--config", str(config)]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, (out.output, out.stderr)
    report = json.loads(out.stdout)
    # The short of 1 passes; the reversal (2 units) is over the limit of 1, so the short is
    # still held at the next cross down and nothing more is ordered.
    assert [f["quantity"] for f in report["fills"]] == [1]
    assert [(o["side"], o["quantity"], o["status"]) for o in report["refused_orders"]] == [
        ("BUY", 2, "denied")
    ]
    assert all("max_order_quantity" in o["reason"] for o in report["refused_orders"])
    assert "daily_loss_limit 5000 is not applied in a backtest" in out.stderr
    # The same from Python; no limit set: no gate, every order through.
    result = run_backtest(bars, SmaCross(fast=2, slow=3), risk=RiskConfig(max_order_quantity=1))
    assert len(result.fills) == 1 and len(result.refused_orders) == 1
    assert len(run_backtest(bars, SmaCross(fast=2, slow=3), risk=RiskConfig()).fills) == 3
    with pytest.raises(InvalidInputError, match=r"must be a tradelab\.trading\.risk\.RiskConfig"):
        run_backtest(bars, SmaCross(fast=2, slow=3), risk={"max_order_quantity": 1})
    from tradelab.trading.risk import RiskConfig as Named  # the name it gives can be imported

    assert Named is RiskConfig


def test_a_strategy_that_trades_on_ticks_only_is_told_a_backtest_plays_bars(tmp_path, caplog):
    from tradelab.runner import Strategy

    class TicksOnly(Strategy):
        def on_tick(self, ctx, tick):
            ctx.buy(tick["symbol"], 1)

    result = run_backtest(write_bars(tmp_path / "ABC.csv"), TicksOnly())
    assert result.fills == []
    assert "defines on_tick but not on_bar" in caplog.text and "--feed replay" in caplog.text
    caplog.clear()
    run_backtest(write_bars(tmp_path / "ABC.csv"), SmaCross(fast=2, slow=3))
    assert "on_tick" not in caplog.text


def test_the_margin_check_counts_the_orders_commission(tmp_path):
    # 10 units at 12.50 need 125.00 and a 5 % commission 6.25 more: with 126 in cash the buy
    # used to be taken, and its fill drove the cash below zero.
    from test_backtest import write_bars_from

    from tradelab.runner import Strategy
    from tradelab.runner.backtest import run_backtest

    class BuysTen(Strategy):
        def on_bar(self, ctx, bar):
            if not ctx.position(bar["symbol"]):
                ctx.buy(bar["symbol"], 10)

    write_bars_from(tmp_path / "ABC.csv", [12.5] * 4)
    short = run_backtest(tmp_path / "ABC.csv", BuysTen(), cash=126.0, commission=0.05)
    assert short.fills == []
    assert "needs 131.25, available 126.00" in short.refused_orders[0]["reason"]
    enough = run_backtest(tmp_path / "ABC.csv", BuysTen(), cash=131.25, commission=0.05)
    [fill] = enough.fills
    assert enough.final_equity == 131.25 - fill["fee"]  # cash 0, the units at 12.50


def test_the_margin_check_counts_the_working_orders_commission_too(tmp_path):
    # Two buys in one bar: the first still working held no room for its own commission, so
    # both were taken and the second fill overdrew the cash.
    from test_backtest import write_bars_from

    from tradelab.runner import Strategy
    from tradelab.runner.backtest import run_backtest

    class BuysTwice(Strategy):
        def on_bar(self, ctx, bar):
            if not ctx.position(bar["symbol"]) and not getattr(self, "sent", False):
                self.sent = True
                ctx.buy(bar["symbol"], 10)
                ctx.buy(bar["symbol"], 10)

    write_bars_from(tmp_path / "ABC.csv", [12.5] * 4)
    result = run_backtest(tmp_path / "ABC.csv", BuysTwice(), cash=256.25, commission=0.05)
    assert len(result.fills) == 1
    assert "needs 131.25, available 125.00" in result.refused_orders[0]["reason"]


def test_a_config_files_snapshot_pace_does_not_change_a_backtests_journal(tmp_path):
    """One tradelab.yaml serves every command: its engine section (snapshots every N events or
    seconds, for live sessions) used to reach backtests whole, defaults included, and a
    snapshot announced mid-run shifted the seqs in every later order id, so the content hash
    changed with the file and, with timed snapshots, run to run."""
    from click.testing import CliRunner

    from tradelab.cli import main as cli

    bars = str(write_bars(tmp_path / "ABC.csv"))
    config = tmp_path / "tradelab.yaml"
    config.write_text("engine:\n  snapshot_every_events: 3\n  snapshot_every_seconds: 0.01\n")
    args = ["backtest", bars, "--strategy", "sma_cross", "--param", "fast=2", "--param", "slow=3"]

    def content_hash(*extra):
        result = CliRunner().invoke(cli, [*args, *extra, "--json"])
        assert result.exit_code == 0, (result.output, result.stderr)
        return json.loads(result.output)["content_hash"]

    assert content_hash("--config", str(config)) == content_hash()
    with pytest.raises(InvalidInputError, match="engine.snapshot_every_events: a backtest"):
        run_backtest(bars, SmaCross(fast=2, slow=3), engine_overrides={"snapshot_every_events": 3})


def test_engine_settings_are_the_ones_a_file_changes(tmp_path):
    from tradelab.settings import engine_settings

    config = tmp_path / "tradelab.yaml"
    config.write_text("engine:\n  kernel_batch_size: 300\n")
    assert engine_settings(config) == {"kernel_batch_size": 300}


def test_a_strategy_failing_before_any_bar_with_html_is_exit_4_naming_it(tmp_path):
    """The empty chart's error came first: exit 2, "no marks or fills", the failure unsaid."""
    from click.testing import CliRunner

    from tradelab.cli import EXIT_STRATEGY_FAILED
    from tradelab.cli import main as cli

    strategy = tmp_path / "boom.py"
    strategy.write_text(
        "from tradelab.runner import Strategy\n\n"
        "class Boom(Strategy):\n"
        "    def on_start(self, ctx):\n"
        "        raise RuntimeError('boom in on_start')\n"
    )
    bars = str(write_bars(tmp_path / "ABC.csv"))
    args = ["backtest", bars, "--strategy", f"{strategy}:Boom", "--html", str(tmp_path / "p.html")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == EXIT_STRATEGY_FAILED, (result.output, result.stderr)
    assert "strategy boom failed: on_start raised RuntimeError: boom in on_start" in result.stderr


def test_ctrl_c_before_the_journal_is_made_does_not_say_it_holds_bars(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tradelab import cli_backtest
    from tradelab.cli import EXIT_INTERRUPTED
    from tradelab.cli import main as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_backtest, "run_backtest", interrupted)
    journal = tmp_path / "bt.duckdb"
    bars = str(write_bars(tmp_path / "ABC.csv"))
    args = ["backtest", bars, "--strategy", "sma_cross", "--journal", str(journal)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == EXIT_INTERRUPTED, (result.output, result.stderr)
    assert "interrupted (Ctrl-C) before the last bar" in result.stderr
    assert "holds" not in result.stderr and not journal.exists()


def test_a_config_files_live_session_settings_a_backtest_does_not_use_are_named(tmp_path):
    # Its strategy parameters and broker costs were dropped without a word (the help said only
    # the engine section was used, though risk's limits are too).
    from click.testing import CliRunner

    from tradelab.cli import main as cli

    bars = str(write_bars(tmp_path / "ABC.csv"))
    config = tmp_path / "tradelab.yaml"
    config.write_text(
        "lab:\n  strategy: sma_cross\n  strategy_params: {fast: 3, slow: 5}\n"
        "broker:\n  brokerage_per_fill: 50\n"
    )
    args = ["backtest", bars, "--strategy", "sma_cross", "--param", "fast=2", "--param", "slow=3"]
    result = CliRunner().invoke(cli, [*args, "--json", "--config", str(config)])
    assert result.exit_code == 0, (result.output, result.stderr)
    note = "a backtest does not use lab.strategy, lab.strategy_params, broker.brokerage_per_fill"
    assert note in result.stderr
    plain = tmp_path / "plain.yaml"
    plain.write_text("engine:\n  group_commit_ms: 5\n")
    quiet = CliRunner().invoke(cli, [*args, "--json", "--config", str(plain)])
    assert quiet.exit_code == 0 and "does not use" not in quiet.stderr
    helped = CliRunner().invoke(cli, ["backtest", "--help"])
    assert "risk's pre-trade limits are used" in " ".join(helped.output.split())
