"""`tradelab run` flags: --feed replay FILE, --strategy, --param, --speed (N, Nx, max), the
progress line, and usage errors that name the option and what it allows (exit code 2)."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from stock_bars import write_stock_bars

from tradelab.analytics import Analytics
from tradelab.cli import EXIT_USAGE
from tradelab.cli import main as cli
from tradelab.journal import JournalReader
from tradelab.market.clock import ist_date
from tradelab.market.instruments import IST

SAMPLE = "data/nifty_sample_1m.csv"  # one NIFTY session, 1m bars, index + 6 options


def invoke(*args):
    return CliRunner().invoke(cli, ["run", *args])


def test_replay_at_max_speed_trades_the_chosen_strategy_with_its_params(tmp_path):
    journal = tmp_path / "r.duckdb"
    result = invoke(
        "--feed", "replay", SAMPLE, "--speed", "max", "--strategy", "sma_cross",
        "--param", "fast=3", "--param", "slow=8", "--param", "symbol=NIFTY",
        "--journal", str(journal), "--every", "0.2",
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "the replayed session ended" in result.output
    # Progress lines start "seq " (what scripts wait for); the last one shows the session done.
    progress = [line for line in result.output.splitlines() if line.startswith("seq ")]
    assert progress and "[####################] 100%" in progress[-1]
    assert (
        "(this run's strategy: sma_cross)" in result.output
        and "stopped cleanly at seq" in result.output
    )
    reader = JournalReader(journal)
    [started] = [
        e.payload
        for e in reader.events(topic="runner.state_changed")
        if e.payload["state"] == "running"
    ]
    assert started["strategy"] == "sma_cross"
    assert (started["params"]["fast"], started["params"]["slow"]) == (3, 8)
    fills = list(reader.events(topic="trade.executed"))
    assert fills and {f.payload["symbol"] for f in fills} == {"NIFTY"}


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


def test_a_users_own_strategy_file_trades_a_session_with_its_params(tmp_path):
    (tmp_path / "mine.py").write_text(
        "import param\n"
        "from tradelab.runner import Strategy\n\n"
        "S = 'NIFTY25N1824000CE'\n\n"
        "class BuyOnce(Strategy):\n"
        "    strategy_name = 'buy_once'\n"
        "    quantity = param.Integer(default=1)\n\n"
        "    def on_bar(self, ctx, bar):\n"
        "        if bar['symbol'] == S and not ctx.position(S) "
        "and not ctx.working(S):\n"
        "            ctx.buy(S, self.quantity)\n"
    )
    journal = tmp_path / "r.duckdb"
    spec = f"{tmp_path / 'mine.py'}:BuyOnce"
    result = invoke(
        "--feed", "replay", SAMPLE, "--speed", "max", "--strategy", spec,
        "--param", "quantity=75", "--journal", str(journal),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.stderr)
    fills = [e.payload for e in JournalReader(journal).events(topic="trade.executed")]
    assert [(f["strategy"], f["side"], f["quantity"]) for f in fills] == [("buy_once", "BUY", 75)]
    assert "book of this journal (this run's strategy: buy_once): 1 order, 1 fill" in result.output
    assert fills[0]["symbol"] == "NIFTY25N1824000CE"
    wrong = invoke("--strategy", spec, "--param", "qty=2", "--journal", str(tmp_path / "x.duckdb"))
    assert wrong.exit_code == EXIT_USAGE
    assert "has no parameter 'qty'; it has quantity" in wrong.stderr


def test_a_bad_replay_file_is_a_usage_error_naming_the_file(tmp_path):
    bad = tmp_path / "bars.csv"
    bad.write_text("Date,Open\n2024-01-01,1\n")
    result = invoke("--feed", "replay", str(bad), "--journal", str(tmp_path / "j.duckdb"))
    assert result.exit_code == EXIT_USAGE
    assert str(bad) in result.stderr and "timestamp" in result.stderr


def test_max_speed_replay_gives_the_same_trades_and_journal_run_after_run(tmp_path):
    # The feed plays the next timestamp only once the runner has handled everything before it,
    # so thread timing cannot move a fill: same file and strategy, same journal content.
    from tradelab.runner.backtest import content_hash

    runs = []
    for name in ("a", "b"):
        journal = tmp_path / f"{name}.duckdb"
        result = invoke(
            "--feed", "replay", SAMPLE, "--speed", "max", "--strategy", "sma_cross",
            "--param", "fast=3", "--param", "slow=8", "--param", "symbol=NIFTY",
            "--journal", str(journal), "--every", "0.5",
        )  # fmt: skip
        assert result.exit_code == 0, (result.output, result.stderr)
        fills = [e.payload for e in JournalReader(journal).events(topic="trade.executed")]
        runs.append((fills, content_hash(journal)))
    (fills_a, hash_a), (fills_b, hash_b) = runs
    assert len(fills_a) >= 2
    assert fills_a == fills_b
    assert hash_a == hash_b


def test_max_speed_sim_session_runs_in_lockstep_and_gives_the_same_journal_run_after_run(
    tmp_path,
):
    # Unpaced, the simulated feed used to race ahead of the strategy: its fills landed wherever
    # the feed happened to be. In lockstep every tick is handled before the next is played, so
    # the same seed gives the same orders, fills and journal content.
    from tradelab.runner.backtest import content_hash

    runs = []
    for name in ("a", "b"):
        journal = tmp_path / f"{name}.duckdb"
        result = invoke(
            "--speed", "max", "--ticks-per-second", "5", "--strategy", "short_straddle",
            "--journal", str(journal), "--every", "0.5",
        )  # fmt: skip
        assert result.exit_code == 0, (result.output, result.stderr)
        assert "the simulated session ended" in result.output
        fills = [e.payload for e in JournalReader(journal).events(topic="trade.executed")]
        runs.append((fills, content_hash(journal)))
    (fills_a, hash_a), (fills_b, hash_b) = runs
    assert len(fills_a) >= 2  # the straddle's two legs in, and out again
    assert fills_a == fills_b
    assert hash_a == hash_b


@pytest.fixture(scope="module")
def sma_replay(tmp_path_factory) -> JournalReader:
    """The sample replayed at max speed with sma_cross 3/8 on NIFTY: its journal."""
    journal = tmp_path_factory.mktemp("sma") / "r.duckdb"
    result = invoke(
        "--feed", "replay", SAMPLE, "--speed", "max", "--strategy", "sma_cross",
        "--param", "fast=3", "--param", "slow=8", "--param", "symbol=NIFTY",
        "--journal", str(journal),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.stderr)
    return JournalReader(journal)


def test_a_replay_builds_its_files_own_bars_and_sma_cross_trades_one_series(sma_replay):
    # The sample holds 1-minute bars; the session builds 15m and 1h by default. Replayed, it
    # builds 1m bars too, and sma_cross (interval '') trades the first series it sees, the
    # 1m one: with slow=8 its first fill comes within minutes, where 15m bars would take 2 h.
    reader = sma_replay
    bars = [e.payload for e in reader.events(topic="market.bar") if e.payload["symbol"] == "NIFTY"]
    assert {b["interval"] for b in bars} == {"1m", "15m", "1h"}
    first_1m = min(b["start"] for b in bars if b["interval"] == "1m")
    fills = [e.payload for e in reader.events(topic="trade.executed")]
    assert fills
    first_fill_ns = min(f["ts"] for f in fills)
    assert first_fill_ns - first_1m < 30 * 60 * 10**9, "sma_cross waited for 15m bars"
    assert len(fills) > 20  # a day of 1m crosses, not a handful of 15m/1h ones


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


def test_a_strategy_stopped_by_a_refused_order_is_exit_4_with_the_reason(tmp_path):
    # Without symbol=NIFTY, sma_cross trades the options too, 1 unit where a lot is 75.
    result = invoke(
        "--feed", "replay", SAMPLE, "--speed", "max", "--strategy", "sma_cross",
        "--journal", str(tmp_path / "r.duckdb"),
    )  # fmt: skip
    assert result.exit_code == 4, (result.output, result.stderr)
    assert "stopped cleanly at seq" in result.output  # the session itself went on
    assert "strategy sma_cross failed: on_bar raised InvalidOrderError" in result.stderr
    assert "not a multiple of lot size 75" in result.stderr


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


@pytest.mark.parametrize("speed", ["max", "100000"])
def test_a_replay_of_several_days_is_one_session_a_day_with_its_own_daily_pnl(tmp_path, speed):
    rows = ["Date,Open,High,Low,Close"]
    for day in (3, 4, 5):  # 2025-11-03..05, Monday to Wednesday: 30 one-minute bars each
        for minute in range(30):
            price = 100 + (minute // 4 % 2) * 3 + day
            rows.append(f"2025-11-{day:02d} 09:{15 + minute:02d},{price},{price},{price},{price}")
    bars = tmp_path / "acme.csv"
    bars.write_text("\n".join(rows) + "\n")
    journal = tmp_path / "r.duckdb"
    result = invoke(
        "--feed", "replay", str(bars), "--speed", speed, "--strategy", "sma_cross",
        "--param", "fast=2", "--param", "slow=3", "--journal", str(journal),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.stderr)
    reader = JournalReader(journal)
    resets = [e.payload["session_date"] for e in reader.events(topic="pnl.session_reset")]
    assert resets == ["2025-11-03", "2025-11-04", "2025-11-05"]
    opened = [e.payload["session_date"] for e in reader.events(topic="market.session_opened")]
    closed = [e.payload["session_date"] for e in reader.events(topic="market.session_closed")]
    assert opened == closed == resets
    # No bar spans two days: each day's partial bars close with its session.
    for bar in reader.events(topic="market.bar"):
        start, end = bar.payload["start"], bar.payload["end"]
        assert ist_date(start) == ist_date(end - 1)
    store = Analytics(journal).state_at(ts="2025-11-06 00:00")
    assert store.get("pnl.daily")["session_date"] == "2025-11-05"


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


def test_a_max_speed_replay_stamps_a_fill_at_the_quote_it_filled_against(sma_replay):
    # sma_cross orders when a 1m bar closes, i.e. on the first tick of the next minute; the
    # broker fills at once against that tick's quote, so the fill carries that tick's time. The
    # replayed ticks are 15 s apart: a fill stamped with the next tick's time is 15 s late.
    reader = sma_replay
    bar_ends = {
        e.payload["end"]
        for e in reader.events(topic="market.bar")
        if e.payload["symbol"] == "NIFTY" and e.payload["interval"] == "1m"
    }
    fills = [e.payload for e in reader.events(topic="trade.executed")]
    assert len(fills) > 20
    late = [f["ts"] for f in fills if f["ts"] not in bar_ends]
    assert not late, f"{len(late)} of {len(fills)} fills stamped after the quote they took"


def test_a_halted_journal_says_so_and_run_resume_trading_lifts_it_as_the_user(tmp_path):
    from tradelab.lab import Lab

    journal = tmp_path / "h.duckdb"
    lab = Lab(journal_path=str(journal), strategy="none").start()
    lab.risk.halt(by="desk", reason="checking the feed")
    lab.stop()
    halted = invoke("--journal", str(journal), "--duration", "0.3", "--every", "0.1")
    assert halted.exit_code == 0, (halted.output, halted.stderr)
    progress = [line for line in halted.output.splitlines() if line.startswith("seq ")]
    assert progress and all(line.endswith("risk HALTED") for line in progress)
    assert "risk: halted (checking the feed)" in halted.output
    assert "--resume-trading REASON" in halted.output
    resumed = invoke("--journal", str(journal), "--duration", "0", "--resume-trading", "checked")
    assert resumed.exit_code == 0, (resumed.output, resumed.stderr)
    assert "risk: was halted; trading resumed by" in resumed.output
    lines = resumed.output.splitlines()  # what was recovered first, then what the run did
    recovered = next(i for i, line in enumerate(lines) if line.startswith("recovered "))
    assert recovered < next(i for i, line in enumerate(lines) if "trading resumed by" in line)
    assert "risk: halted" not in resumed.output
    [event] = JournalReader(journal).events(topic="risk.resumed")
    assert event.payload["reason"] == "checked" and "(tradelab run)" in event.payload["by"]
    again = invoke("--journal", str(journal), "--duration", "0", "--resume-trading", "again")
    assert "nothing to resume" in again.output


def test_duration_ends_the_run_though_the_next_progress_update_is_later(tmp_path):
    import time

    started = time.monotonic()
    result = invoke("--journal", str(tmp_path / "d.duckdb"), "--duration", "0.5", "--every", "30")
    assert result.exit_code == 0, (result.output, result.stderr)
    # Generous (start-up and stop take a few seconds on a loaded machine); waiting for the
    # progress update would take 30 s.
    assert time.monotonic() - started < 20


def test_a_run_ends_by_naming_the_differences_with_the_broker_left_unfixed(tmp_path):
    from tradelab.lab import Lab

    journal = tmp_path / "r.duckdb"
    lab = Lab(journal_path=str(journal), strategy="none").start()
    lab.broker.faults.hold_outside_position(lab.feed.symbols[2], 75, 100.0)  # flagged, kept
    lab.stop()
    # At max speed the reconciler's run on start is done before the session plays at all.
    args = ("--journal", str(journal), "--strategy", "none", "--speed", "max", "--duration", "0")
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "reconciliation: 1 difference with the broker not fixed (unknown_position)" in (
        result.output
    )


def test_a_blank_resume_trading_reason_is_refused_before_the_session_starts(tmp_path):
    journal = tmp_path / "h.duckdb"
    result = invoke("--journal", str(journal), "--duration", "0", "--resume-trading", "   ")
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "--resume-trading needs a reason" in result.stderr
    assert not journal.exists()  # refused before anything ran or was journaled


def test_a_replay_dated_before_1970_plays_every_bar_and_trades_and_resumes(tmp_path):
    """A clock before 1970 is negative: "nothing journaled yet" must not read as a time."""
    rows = ["timestamp,symbol,open,high,low,close,volume"]
    for i in range(120):
        hour, minute = divmod(9 * 60 + 15 + i, 60)
        close = 100 + 10 * math.sin(i / 4)
        rows.append(
            f"1962-11-12T{hour:02d}:{minute:02d}:00+05:30,OLD,"
            f"{close:.2f},{close + 1:.2f},{close - 1:.2f},{close:.2f},5"
        )
    bars = tmp_path / "old.csv"
    bars.write_text("\n".join(rows) + "\n")
    journal = tmp_path / "old.duckdb"
    args = ["--feed", "replay", str(bars), "--strategy", "sma_cross", "--param", "fast=3"]
    args += ["--param", "slow=8", "--speed", "max", "--journal", str(journal)]
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.stderr)
    fills = JournalReader(journal).events(topic="trade.executed")
    assert len(fills) >= 2 and fills[0].payload["ts"] < 0
    again = invoke(*args)  # the restart resumes after the last mark: nothing played twice
    assert again.exit_code == 0, (again.output, again.stderr)
    assert len(JournalReader(journal).events(topic="trade.executed")) == len(fills)


def _signalling_strategy(tmp_path, hook):
    """A strategy file whose `hook` (on_start or on_stop) signals its own process as a user
    would (Ctrl-C, then Ctrl-C and SIGTERM again), each a moment apart so each is handled."""
    path = tmp_path / "signals.py"
    path.write_text(
        "import os, signal, time\n"
        "from tradelab.runner import Strategy\n\n"
        "class Signals(Strategy):\n"
        "    strategy_name = 'signals'\n\n"
        f"    def {hook}(self, ctx):\n"
        "        for signum in (signal.SIGINT, signal.SIGTERM):\n"
        "            os.kill(os.getpid(), signum)\n"
        "            time.sleep(0.3)\n"
    )
    return f"{path}:Signals"


def _run_in_own_process(*args):
    run = subprocess.run(
        [sys.executable, "-m", "tradelab.cli", "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,  # a process group of its own, like a terminal's job
    )
    return run.returncode, run.stdout, run.stderr


@pytest.mark.parametrize("hook", ["on_start", "on_stop"])
def test_ctrl_c_in_start_up_or_again_while_stopping_still_stops_cleanly_with_exit_0(tmp_path, hook):
    journal = tmp_path / "s.duckdb"
    args = ["--strategy", _signalling_strategy(tmp_path, hook), "--journal", str(journal)]
    code, out, err = _run_in_own_process(*args, "--duration", "3")
    assert code == 0, (out, err)
    assert "Aborted" not in err and "Traceback" not in err, err
    assert "stopped cleanly" in out, out
    if hook == "on_start":  # the Ctrl-C came while it started: it stops once started
        assert "stopping..." in out and "still stopping" in out, out
    else:  # --duration ended it; the signals came while it stopped
        assert out.count("still stopping; ") == 1, out
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(("-wal", "-shm"))]
    assert leftovers == [] and not (tmp_path / "s.acklog").exists()


def test_after_a_signalled_stop_a_late_signal_cannot_change_the_exit_code():
    # Python's own handlers go back to the default while the interpreter shuts down: a signal
    # then ended a clean stop with 130 (143 for SIGTERM). Ignored at the C level, it cannot.
    import signal

    from tradelab.cli_run import StopSignals

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with StopSignals() as signals:
            signal.raise_signal(signal.SIGINT)  # the Ctrl-C that stops the session
            assert signals.stop_requested
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


ON_STOP_BUYER = """
from tradelab.runner import Strategy


class OnStopBuyer(Strategy):
    strategy_name = "on_stop_buyer"

    def on_stop(self, ctx):
        try:
            ctx.buy("ACME", 1, order_type="LIMIT", limit_price=600.0)
        except Exception as exc:
            ctx.log.warning("on_stop order refused: %s", exc)
"""


def ist_time(ts_ns):
    return datetime.fromtimestamp(ts_ns / 1e9, tz=IST)


def five_minute_bars(path, until, days=("2024-03-04",)):
    rows = ["Datetime,Open,High,Low,Close,Volume"]
    for day in days:
        minute = 9 * 60 + 15
        while minute <= until:
            price = 500 + (minute % 7)
            hhmm = f"{minute // 60:02d}:{minute % 60:02d}"
            rows.append(f"{day} {hhmm}:00,{price},{price},{price},{price},100")
            minute += 5
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def test_a_restart_plays_more_of_a_day_a_file_closed_and_an_order_after_the_close_is_refused(
    tmp_path,
):
    strategy = tmp_path / "buyer.py"
    strategy.write_text(ON_STOP_BUYER)
    morning, day = tmp_path / "a" / "ACME.csv", tmp_path / "b" / "ACME.csv"
    five_minute_bars(morning, 12 * 60)
    five_minute_bars(day, 15 * 60 + 25)
    journal = tmp_path / "r.duckdb"
    for bars in (morning, morning, day):
        result = invoke(
            "--feed", "replay", str(bars), "--speed", "max", "--journal", str(journal),
            "--strategy", f"{strategy}:OnStopBuyer",
        )  # fmt: skip
        assert result.exit_code == 0, (result.output, result.stderr)
        # Each run ends with the session closed: its on_stop order is after hours.
        assert "on_stop order refused: market is closed at 2024-03-04 15:30:00 IST" in (
            result.output + result.stderr
        )
    sessions = [
        (e.topic.rsplit("_", 1)[1], f"{ist_time(e.payload['ts']):%H:%M}")
        for e in JournalReader(journal).events()
        if e.topic.startswith("market.session_")
    ]
    # The morning file closed the day at its last bar; the same file again played nothing
    # more; the whole day's file opened it again for what the morning had not had.
    assert sessions == [("opened", "09:15"), ("closed", "12:05"), ("opened", "12:05"),
                        ("closed", "15:30")]  # fmt: skip


def test_a_run_whose_strategies_did_not_stop_says_so_and_never_stopped_cleanly(
    tmp_path, monkeypatch
):
    from tradelab.runner.runner import StrategyRunner

    stop = StrategyRunner.stop

    def stuck_stop(self, *args, **kwargs):  # as a hook still running after the timeout would
        stop(self, *args, **kwargs)
        self.stopped_in_time = False
        return False

    monkeypatch.setattr(StrategyRunner, "stop", stuck_stop)
    journal = tmp_path / "r.duckdb"
    result = invoke("--feed", "replay", SAMPLE, "--speed", "max", "--journal", str(journal))
    assert result.exit_code == 4
    assert "stopped cleanly" not in result.output
    assert "journal closed at seq" in result.output
    assert "the strategies did not stop" in result.output + result.stderr


def sessions_of(journal):
    return [
        (e.topic.rsplit("_", 1)[1], f"{ist_time(e.payload['ts']):%d %H:%M}")
        for e in JournalReader(journal).events()
        if e.topic.startswith("market.session_")
    ]


@pytest.mark.parametrize("speed", ["max", "100000"])
def test_a_restart_whose_file_goes_on_to_later_days_opens_each_and_closes_it_at_1530(
    tmp_path, speed
):
    first_day, three_days = tmp_path / "a" / "ACME.csv", tmp_path / "b" / "ACME.csv"
    five_minute_bars(first_day, 15 * 60 + 25)
    five_minute_bars(three_days, 15 * 60 + 20, days=("2024-03-04", "2024-03-05", "2024-03-06"))
    journal = tmp_path / "r.duckdb"
    for bars in (first_day, three_days):
        result = invoke(
            "--feed", "replay", str(bars), "--speed", speed, "--journal", str(journal),
            "--strategy", "none",
        )  # fmt: skip
        assert result.exit_code == 0, (result.output, result.stderr)
    # Each later day is opened (its P&L started) and closed at the exchange's close, not at
    # its last tick (15:25); the last day at the file's end.
    assert sessions_of(journal) == [
        ("opened", "04 09:15"), ("closed", "04 15:30"), ("opened", "05 09:15"),
        ("closed", "05 15:30"), ("opened", "06 09:15"), ("closed", "06 15:25"),
    ]  # fmt: skip
    resets = [e.payload["session_date"] for e in JournalReader(journal).events()
              if e.topic == "pnl.session_reset"]  # fmt: skip
    assert resets == ["2024-03-04", "2024-03-05", "2024-03-06"]


def test_a_feed_the_engine_keeps_refusing_ends_the_run_with_exit_3_naming_why(
    tmp_path, monkeypatch
):
    """A feed refused by the engine (its submit queue full past the timeout: a writer that does
    not keep up) used to die in its thread with a traceback while `run` printed "the replayed
    session ended" and exited 0."""
    from tradelab.errors import OverloadError
    from tradelab.lab import Lab

    route, calls = Lab._route, []

    def refused_after_a_while(self, tick):
        calls.append(tick)
        if len(calls) > 200:
            raise OverloadError("engine submit queue is full: 10001 events queued, limit 10000")
        route(self, tick)

    monkeypatch.setattr(Lab, "_route", refused_after_a_while)
    journal = tmp_path / "r.duckdb"
    result = invoke("--feed", "replay", SAMPLE, "--speed", "100000", "--journal", str(journal))
    assert result.exit_code == 3, (result.output, result.stderr)
    assert "session ended" not in result.output
    assert "the feed stopped before the session's end: engine submit queue is full" in (
        result.output + result.stderr
    )
    assert "Traceback" not in result.output + result.stderr


def test_a_stop_that_cannot_finish_is_one_line_and_exit_3_not_a_traceback(tmp_path, monkeypatch):
    from tradelab.errors import LifecycleError
    from tradelab.lab import Lab

    stop = Lab.stop

    def kernel_never_finished(self, *args, **kwargs):  # as a writer that never answers made it
        stop(self, *args, **kwargs)
        raise LifecycleError("the engine kernel did not finish within 60.0 s")

    monkeypatch.setattr(Lab, "stop", kernel_never_finished)
    result = invoke("--journal", str(tmp_path / "d.duckdb"), "--duration", "0.5")
    assert result.exit_code == 3, (result.output, result.stderr)
    assert "the session did not stop cleanly: the engine kernel did not finish" in (
        result.output + result.stderr
    )
    assert "stopped cleanly at seq" not in result.output


def test_a_negative_seed_is_a_usage_error_before_anything_is_journaled(tmp_path):
    journal = tmp_path / "s.duckdb"
    result = invoke("--journal", str(journal), "--seed", "-5", "--duration", "1")
    assert result.exit_code == EXIT_USAGE, (result.output, result.stderr)
    assert "--seed" in result.output + result.stderr
    assert not journal.exists()


def test_a_feed_that_fails_is_exit_3_naming_the_error_not_a_session_that_ended(
    tmp_path, monkeypatch
):
    from tradelab.lab import Lab

    route, calls = Lab._route, []

    def broken(self, tick):
        calls.append(tick)
        if len(calls) > 100:
            raise ValueError("expected non-negative integer")
        route(self, tick)

    monkeypatch.setattr(Lab, "_route", broken)
    result = invoke(
        "--feed", "replay", SAMPLE, "--speed", "100000", "--journal", str(tmp_path / "f.duckdb")
    )
    said = result.output + result.stderr
    assert result.exit_code == 3, said
    assert "session ended" not in result.output
    assert "the feed stopped before the session's end: ValueError: expected non-negative" in said


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
