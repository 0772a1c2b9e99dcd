"""How a `tradelab run` ends: signals, halts, refused orders, failed feeds and their exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.run_command import SAMPLE, invoke
from tradelab.journal import JournalReader


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


def test_strategies_an_inbox_overflow_stopped_are_said_and_exit_4(tmp_path, caplog):
    # They were stopped silently: "stopped cleanly", exit 0, and only sma_cross's own warning
    # that it never had its bars, which sent the user after its parameters.
    config = tmp_path / "t.yaml"
    config.write_text("runner:\n  inbox_limit: 5\n")  # a replay's minute quotes 7 symbols
    result = invoke(
        "--config", str(config), "--feed", "replay", SAMPLE, "--speed", "max",
        "--strategy", "sma_cross", "--param", "symbol=NIFTY", "--param", "slow=4",
        "--param", "fast=2", "--journal", str(tmp_path / "r.duckdb"),
    )  # fmt: skip
    assert result.exit_code == 4, (result.output, result.stderr)
    assert "sma_cross stopped after seq" in result.stderr
    assert "the runner's inbox overflowed (raise runner.inbox_limit)" in result.stderr
    assert any("its inbox overflowed (inbox_limit 5;" in r.getMessage() for r in caplog.records)


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

    from tradelab.cli_signals import StopSignals

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


@pytest.mark.parametrize("flag", ["--duration", "--every"])
def test_a_number_flag_given_nan_is_a_usage_error_not_a_run_for_ever(tmp_path, flag):
    # NaN passed click's range check (every comparison with it is False): --duration nan ran
    # until the session ended, --every nan showed no progress.
    journal = tmp_path / "r.duckdb"
    result = invoke(flag, "nan", "--journal", str(journal))
    assert result.exit_code == 2
    assert f"Invalid value for '{flag}': 'nan' is not a finite number" in result.output
    assert not journal.exists()


def test_a_stop_whose_final_snapshot_failed_does_not_say_stopped_cleanly(tmp_path, monkeypatch):
    # It logged an ERROR and then said "stopped cleanly": the snapshot a start reads from was
    # not taken (the journal's events are all there, a start replays further).
    from tradelab.engine.engine import Engine
    from tradelab.errors import JournalError

    snapshot_now = Engine.snapshot_now

    def fails_at_the_stop(self, *args, **kwargs):
        if self.state == "stopping":
            raise JournalError("snapshot insert failed: out of range")
        return snapshot_now(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "snapshot_now", fails_at_the_stop)
    journal = tmp_path / "s.duckdb"
    result = invoke("--journal", str(journal), "--duration", "0.5")
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "at the stop, the final snapshot failed (snapshot insert failed" in result.output
    assert "stopped cleanly" not in result.output and "journal closed at seq" in result.output
    monkeypatch.undo()
    again = invoke("--journal", str(journal), "--duration", "0.5")  # whole: it goes on
    assert again.exit_code == 0 and "stopped cleanly" in again.output
