"""`tradelab backtest` runs: users' strategies, Ctrl-C, margin checks, a config file's settings."""

import json

import pytest

from tests.test_backtest import write_bars
from tradelab.errors import InvalidInputError
from tradelab.runner import SmaCross
from tradelab.runner.backtest import run_backtest


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
    assert "trades NIFTY options" in result.stderr
    assert "tradelab run --feed replay FILE --strategy short_straddle" in result.stderr
    assert not journal.exists()


def test_a_users_own_options_strategy_is_refused_for_the_same_reason(tmp_path):
    # It was told the file "holds none (it has NIFTY)", a file that holds six NIFTY options.
    from click.testing import CliRunner

    from tradelab.cli import EXIT_USAGE
    from tradelab.cli import main as cli

    own = tmp_path / "calls.py"
    own.write_text(
        "from tradelab.runner import Strategy\n\n"
        "class LongCalls(Strategy):\n"
        "    def option_chains_needed(self):\n"
        "        return {'NIFTY': 'underlying'}\n"
    )
    args = ["backtest", "data/nifty_sample_1m.csv", "--strategy", f"{own}:LongCalls"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "trades NIFTY options, and a backtest plays one symbol's bars" in result.stderr
    assert "--strategy FILE.py:LongCalls --speed max" in result.stderr


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
    assert note in result.stderr and "--fee-per-fill" in result.stderr
    plain = tmp_path / "plain.yaml"
    plain.write_text("engine:\n  group_commit_ms: 5\n")
    quiet = CliRunner().invoke(cli, [*args, "--json", "--config", str(plain)])
    assert quiet.exit_code == 0 and "does not use" not in quiet.stderr
    helped = CliRunner().invoke(cli, ["backtest", "--help"])
    assert "risk's pre-trade limits are used" in " ".join(helped.output.split())
