"""Ctrl-C in a backtest: a KeyboardInterrupt raised anywhere on the thread playing the bars (a
strategy's hook, the progress callback, a bus subscriber inside the engine's kernel, the SIGINT
itself) ends the run at once with KeyboardInterrupt: no more bars are played, nothing waits, and
the journal verifies, holding the bars played so far."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tradelab.journal import JournalReader
from tradelab.journal.verify import verify_journal
from tradelab.runner import SmaCross, Strategy, backtest_play
from tradelab.runner import backtest as backtest_module
from tradelab.runner.backtest import run_backtest

BARS = 3000
STOP_AT = 50  # the bar whose handling is interrupted


def write_minute_bars(path: Path, count: int = BARS) -> Path:
    times = pd.date_range("2024-03-01 09:15", periods=count, freq="1min")
    closes = [100 + (i % 17) - (i % 7) for i in range(count)]
    pd.DataFrame(
        {"Date": times, "Open": closes, "High": closes, "Low": closes, "Close": closes}
    ).to_csv(path, index=False)
    return path


class InterruptAt(Strategy):
    """Trades every bar (so fills and orders are in flight) and interrupts at bar STOP_AT."""

    def on_start(self, ctx) -> None:
        self.seen = 0

    def on_bar(self, ctx, bar) -> None:
        self.seen += 1
        ctx.buy(bar["symbol"], 1)
        if self.seen == STOP_AT:
            self.interrupt()

    def interrupt(self) -> None:
        raise KeyboardInterrupt


class SigintAt(InterruptAt):
    def interrupt(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered to this (main) thread


def bars_journaled(journal: Path) -> int:
    return JournalReader(journal).counts_by_topic().get("market.bar", 0)


def assert_ended_promptly_and_whole(run, journal: Path, most_bars: int) -> None:
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run()
    assert time.monotonic() - started < 20  # not every bar played, no minute-long wait
    assert bars_journaled(journal) <= most_bars
    verified = verify_journal(journal)
    assert verified.ok, verified.lines


@pytest.mark.timeout(120)
@pytest.mark.parametrize("strategy", [InterruptAt, SigintAt])
def test_ctrl_c_in_a_strategy_ends_the_backtest_at_that_bar(tmp_path, strategy):
    bars, journal = write_minute_bars(tmp_path / "ABC.csv"), tmp_path / "bt.duckdb"
    assert_ended_promptly_and_whole(
        lambda: run_backtest(bars, strategy(), journal_path=journal), journal, STOP_AT + 1
    )


@pytest.mark.timeout(120)
def test_ctrl_c_in_a_threaded_backtest_stops_its_runner_playing_on(tmp_path):
    # The SIGINT reaches the main thread, waiting for the bars; the runner's thread plays them.
    bars, journal = write_minute_bars(tmp_path / "ABC.csv"), tmp_path / "bt.duckdb"
    assert_ended_promptly_and_whole(
        lambda: run_backtest(bars, SigintAt(), journal_path=journal, synchronous=False),
        journal,
        STOP_AT + 5,  # the runner's thread may have played a bar or two ahead of the stop
    )


@pytest.mark.timeout(120)
def test_ctrl_c_in_the_progress_callback_ends_the_backtest(tmp_path, monkeypatch):
    monkeypatch.setattr(backtest_play, "PROGRESS_EVERY", 10)
    bars, journal = write_minute_bars(tmp_path / "ABC.csv"), tmp_path / "bt.duckdb"

    def progress(played: int, total: int) -> None:
        if played == STOP_AT:
            raise KeyboardInterrupt

    assert_ended_promptly_and_whole(
        lambda: run_backtest(bars, InterruptAt(), journal_path=journal, progress=progress),
        journal,
        STOP_AT,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("before_the_runner", [True, False])
@pytest.mark.parametrize("how", ["raised", "sigint"])
def test_ctrl_c_in_the_engines_kernel_ends_the_backtest_not_logged_and_played_on(
    tmp_path, monkeypatch, caplog, before_the_runner, how
):
    # A bus subscriber runs inside the inline kernel's processing of a bar: Ctrl-C lands there
    # as often as anywhere (the engine's history, the store). Subscribed before the runner, the
    # runner never sees that bar; after it, the runner has it queued.
    bars, journal = write_minute_bars(tmp_path / "ABC.csv"), tmp_path / "bt.duckdb"
    first_ns = pd.Timestamp("2024-03-01 09:15", tz="Asia/Kolkata").value
    interrupt_at = first_ns + STOP_AT * 60 * 10**9

    def interrupt(event) -> None:
        if event.payload["start"] == interrupt_at:
            if how == "sigint":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise KeyboardInterrupt

    class InterruptingEngine(backtest_module.Engine):
        def start(self):
            if before_the_runner:
                self.bus.subscribe("market.bar", interrupt)
            return super().start()

    class LateSubscriber(SmaCross):
        def on_start(self, ctx) -> None:
            super().on_start(ctx)
            if not before_the_runner:
                ctx._runner.engine.bus.subscribe("market.bar", interrupt)

    monkeypatch.setattr(backtest_module, "Engine", InterruptingEngine)
    assert_ended_promptly_and_whole(
        lambda: run_backtest(bars, LateSubscriber(fast=2, slow=3), journal_path=journal),
        journal,
        STOP_AT + 1,
    )
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # nothing logged instead


@pytest.mark.timeout(120)
def test_sigint_to_the_backtest_command_exits_130_with_the_journal_whole(tmp_path):
    (tmp_path / "ctrl_c.py").write_text(
        "import os, signal\n"
        "from tradelab.runner import Strategy\n\n"
        "class CtrlC(Strategy):\n"
        "    def on_start(self, ctx):\n"
        "        self.seen = 0\n\n"
        "    def on_bar(self, ctx, bar):\n"
        "        self.seen += 1\n"
        "        ctx.buy(bar['symbol'], 1)\n"
        f"        if self.seen == {STOP_AT}:\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
    )
    bars, journal = write_minute_bars(tmp_path / "ABC.csv"), tmp_path / "bt.duckdb"
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "tradelab.cli", "backtest", str(bars)]
    command += ["--strategy", f"{tmp_path / 'ctrl_c.py'}:CtrlC", "--journal", str(journal)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=90,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 130, done.stderr
    assert "backtest interrupted (Ctrl-C)" in done.stderr and "ERROR" not in done.stderr
    assert done.stdout == ""  # no report
    assert bars_journaled(journal) <= STOP_AT + 1
    assert verify_journal(journal).ok
