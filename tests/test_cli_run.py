"""`tradelab run` options and the usage errors (exit 2) that name the option or file at fault."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from stock_bars import write_stock_bars

from tests.run_command import SAMPLE, invoke
from tradelab.cli import EXIT_USAGE
from tradelab.cli import main as cli
from tradelab.journal import JournalReader


@pytest.mark.parametrize("speed", ["1", "60x", "2.5×", "max"])
def test_speed_takes_a_factor_or_max(tmp_path, speed):
    result = invoke("--speed", speed, "--duration", "0", "--journal", str(tmp_path / "j.duckdb"))
    assert result.exit_code == 0, (result.output, result.stderr)


@pytest.mark.parametrize(
    ("args", "named", "allowed"),
    [
        (["--speed", "fast"], "'--speed'", "or max"),
        (["--speed", "0"], "'--speed'", "0.001 to 1000000"),
        (["--speed", "10xx"], "'--speed'", "or max"),
        (
            ["--strategy", "nope"],
            "--strategy: no strategy named 'nope'",
            "known: sma_cross, short_straddle, none, or your own",
        ),
        (["--strategy", "mine.py:Mine"], "--strategy: strategy 'mine.py:Mine'", "no file"),
        (["--feed", "live"], "'--feed'", "'sim', 'replay'"),
        (["--feed", "replay"], "--feed replay", "needs a bar FILE"),
        (["--param", "fast"], "--param 'fast'", "name=value"),
        (["--param", "lots=1", "--param", "lots=2"], "--param lots", "given twice ('1', '2')"),
        (["--param", "fast=3"], "--param", "it has underlying, entry_time"),
        (["--strategy", "sma_cross", "--param", "fast=x"], "--param", "is not an integer"),
        (["--param", "entry_time=25:00"], "entry_time '25:00'", "a time of day HH:MM"),
        (["--param", "entry_time=15:20"], "entry_time 15:20", "before exit_time 15:15"),
        (["--strategy", "none", "--param", "lots=2"], "--param lots", "--strategy none"),
        (["--duration", "-1"], "'--duration'", ">=0"),
        (["nifty.csv"], "FILE 'nifty.csv'", "only read with --feed replay"),
        (["--feed", "replay", SAMPLE, "--seed", "3"], "--seed set the sim", "plays its FILE"),
        (["--feed", "replay", SAMPLE, "--ticks-per-second", "9"], "--ticks-per-second", "FILE"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_option_and_what_is_allowed(
    tmp_path, args, named, allowed
):
    journal = tmp_path / "j.duckdb"
    duration = [] if "--duration" in args else ["--duration", "0"]
    result = invoke(*args, "--journal", str(journal), *duration)
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert named in result.stderr and allowed in result.stderr
    assert "Traceback" not in result.stderr
    assert not journal.exists(), "a usage error opened the journal"


@pytest.mark.parametrize("command", ["run", "backtest"])
def test_a_strategy_whose_constructor_raises_is_a_usage_error_not_a_traceback(
    tmp_path, monkeypatch, command
):
    # A user's own __init__ failing (its setup, a rule of its own): it used to end in a traceback and exit 1 (which
    # says "the journal is damaged").
    (tmp_path / "picky.py").write_text(
        "import param\n"
        "from tradelab.runner import Strategy\n\n"
        "class Picky(Strategy):\n"
        "    level = param.Integer(default=1)\n"
        "    def __init__(self, **params):\n"
        "        super().__init__(**params)\n"
        "        raise RuntimeError('no data vendor key')\n"
    )
    bars = str(Path(SAMPLE).resolve())
    monkeypatch.chdir(tmp_path)
    journal = tmp_path / "j.duckdb"
    args = ["--strategy", "picky.py:Picky", "--journal", str(journal)]
    if command == "run":
        result = invoke(*args, "--duration", "0")
        # With a --param too: the parameters' check builds it first.
        with_param = invoke(*args, "--param", "level=2", "--duration", "0")
        assert with_param.exit_code == EXIT_USAGE, (with_param.output, with_param.stderr)
        assert "could not be made: RuntimeError: no data vendor key" in with_param.stderr
    else:
        result = CliRunner().invoke(cli, ["backtest", bars, "--symbol", "NIFTY", *args])
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "picky.py:Picky' could not be made: RuntimeError: no data vendor key" in (result.stderr)
    assert "Traceback" not in result.stderr


def test_a_bad_replay_file_is_a_usage_error_naming_the_file(tmp_path):
    bad = tmp_path / "bars.csv"
    bad.write_text("Date,Open\n2024-01-01,1\n")
    result = invoke("--feed", "replay", str(bad), "--journal", str(tmp_path / "j.duckdb"))
    assert result.exit_code == EXIT_USAGE
    assert str(bad) in result.stderr and "timestamp" in result.stderr


def test_an_empty_bar_interval_list_is_a_usage_error_before_the_journal_opens(tmp_path):
    config = tmp_path / "t.yaml"
    config.write_text("lab:\n  bar_intervals: []\n")
    journal = tmp_path / "j.duckdb"
    result = invoke("--config", str(config), "--duration", "0", "--journal", str(journal))
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert (
        "lab.bar_intervals in" in result.stderr
        and "is empty" in result.stderr
        and "1m, 5m, 15m, 1h" in result.stderr
    )
    assert not journal.exists()


def test_a_strategy_reading_bars_the_session_does_not_build_is_a_usage_error(tmp_path):
    journal = tmp_path / "j.duckdb"
    result = invoke(
        "--strategy", "sma_cross", "--param", "interval=5m", "--duration", "0",
        "--journal", str(journal),
    )  # fmt: skip
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "interval='5m'" in result.stderr and "lab.bar_intervals" in result.stderr
    assert "(it has 15m, 1h)" in result.stderr
    assert not journal.exists()
    # A rule between two parameters is checked on the whole set: slow=8 alone is fine beside
    # fast=3 (the replay test above runs it), refused beside fast=9.
    result = invoke(
        "--strategy", "sma_cross", "--param", "fast=9", "--param", "slow=8", "--duration", "0",
        "--journal", str(journal),
    )  # fmt: skip
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "lab.strategy_params: fast 9 must be less than slow 8" in result.stderr
    assert not journal.exists()


def test_a_replay_of_a_file_without_the_strategys_instrument_is_a_usage_error(tmp_path):
    stock = write_stock_bars(tmp_path)
    journal = tmp_path / "j.duckdb"
    # short_straddle (the default) needs NIFTY; it would run the session without one order.
    result = invoke("--feed", "replay", str(stock), "--journal", str(journal))
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "underlying='NIFTY'" in result.stderr and "(it has RELIANCE)" in result.stderr
    assert not journal.exists()
    result = invoke(
        "--feed", "replay", str(stock), "--strategy", "sma_cross", "--speed", "max",
        "--journal", str(journal),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "RELIANCE" in result.output  # the progress line shows the replayed instrument
    assert " 12 Nov " in result.output + result.stderr  # the market day: a replay may span days


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "has no bars"),
        (["2024-03-01 09:15,10,11,9,10", "2024-03-01 09:15,10,11,9,10"], "same time"),
    ],
)
def test_a_replay_file_without_bars_or_with_a_repeated_bar_is_a_usage_error(
    tmp_path, rows, message
):
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(["Date,Open,High,Low,Close", *rows]) + "\n")
    result = invoke("--feed", "replay", str(bad), "--journal", str(tmp_path / "j.duckdb"))
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_refused_journal_leaves_no_broker_account_behind(tmp_path):
    journal = tmp_path / "text.duckdb"
    journal.write_text("not a journal\n")
    result = invoke("--journal", str(journal), "--duration", "0")
    assert result.exit_code == 1, (result.output, result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.duckdb"]


def test_trading_a_file_with_no_bar_in_exchange_hours_is_a_usage_error(tmp_path):
    daily = tmp_path / "acme.csv"
    rows = [f"2025-11-{day:02d},10,11,9,10" for day in range(3, 8)]  # 00:00 IST each
    daily.write_text("\n".join(["Date,Open,High,Low,Close", *rows]) + "\n")
    journal = tmp_path / "j.duckdb"
    args = ["--feed", "replay", str(daily), "--speed", "max", "--journal", str(journal)]
    result = invoke(*args, "--strategy", "sma_cross")
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "no bar within exchange hours (09:15-15:30 IST" in result.stderr
    assert "tradelab backtest" in result.stderr and not journal.exists()
    result = invoke(*args, "--strategy", "none")  # replayed, not traded: allowed
    assert result.exit_code == 0, (result.output, result.stderr)


def test_a_session_on_a_backtests_journal_is_refused_and_leaves_it_as_it_was(tmp_path):
    from tests.test_backtest import write_bars
    from tradelab.runner import SmaCross
    from tradelab.runner.backtest import content_hash, run_backtest

    journal = tmp_path / "bt.duckdb"
    run_backtest(write_bars(tmp_path / "ABC.csv"), SmaCross(fast=2, slow=3), journal_path=journal)
    before = (content_hash(journal), JournalReader(journal).last_seq())
    result = invoke("--strategy", "none", "--speed", "max", "--journal", str(journal))
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "holds a backtest" in result.stderr
    assert (content_hash(journal), JournalReader(journal).last_seq()) == before
    assert not (tmp_path / "bt.duckdb.broker.sqlite").exists()
    # Moved on its own (its segments left behind): still a backtest's, still refused.
    moved = tmp_path / "kept" / "bt.duckdb"
    moved.parent.mkdir()
    journal.rename(moved)
    result = invoke("--strategy", "none", "--speed", "max", "--journal", str(moved))
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "holds a backtest" in result.stderr
    assert JournalReader(moved).last_seq() == before[1]


def test_a_blank_resume_trading_reason_is_refused_before_the_session_starts(tmp_path):
    journal = tmp_path / "h.duckdb"
    result = invoke("--journal", str(journal), "--duration", "0", "--resume-trading", "   ")
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "--resume-trading needs a reason" in result.stderr
    assert not journal.exists()  # refused before anything ran or was journaled


def test_a_negative_seed_is_a_usage_error_before_anything_is_journaled(tmp_path):
    journal = tmp_path / "s.duckdb"
    result = invoke("--journal", str(journal), "--seed", "-5", "--duration", "1")
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "--seed" in result.output + result.stderr
    assert not journal.exists()


def test_a_replay_without_the_option_chain_short_straddle_sells_is_a_usage_error(tmp_path):
    """A file of the index alone was played all day: one rejected order, a warning, exit 0."""
    import pandas as pd

    sample = pd.read_csv(SAMPLE)
    index_only = tmp_path / "nifty_only.csv"
    sample[sample["symbol"] == "NIFTY"].to_csv(index_only, index=False)
    journal = tmp_path / "r.duckdb"
    args = ["--feed", "replay", str(index_only), "--strategy", "short_straddle", "--speed", "max"]
    result = invoke(*args, "--journal", str(journal))
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "trades options on underlying='NIFTY'" in result.stderr and "holds none" in result.stderr
    assert not journal.exists()
