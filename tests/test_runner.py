"""StrategyRunner: a strategy that raises, exits or misuses its context stops; the rest go on."""

import threading

import param
import pytest

from tradelab.errors import InvalidInputError
from tradelab.journal import JournalReader
from tradelab.runner import SmaCross, Strategy
from tradelab.runner.backtest import run_backtest
from tradelab.runner.runner import StrategyRunner


class Boom(Strategy):
    strategy_name = "boom"
    after = param.Integer(default=3)

    def on_start(self, ctx):
        self.seen = 0
        self.threads = set()

    def on_bar(self, ctx, bar):
        self.threads.add(threading.current_thread().name)
        self.seen += 1
        if self.seen == self.after:
            raise RuntimeError("boom on purpose")


def write_bars(path, n=40):
    lines = ["Date,Open,High,Low,Close"]
    for i in range(n):
        c = 100 + (i % 10) - (5 if (i // 10) % 2 else 0)
        lines.append(f"2024-01-01T09:{15 + i:02d}:00+05:30,{c},{c + 1},{c - 1},{c}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("synchronous", [True, False])
def test_a_raising_strategy_is_stopped_and_reported_while_the_run_goes_on(
    tmp_path, caplog, synchronous
):
    bars = write_bars(tmp_path / "X.csv")
    boom = Boom(after=3)
    journal = tmp_path / "bt.duckdb"
    result = run_backtest(
        bars,
        [SmaCross(fast=2, slow=5), boom],
        journal_path=journal,
        synchronous=synchronous,
        stop_at_failure=False,
    )
    assert boom.seen == 3, "a failed strategy got more bars"
    # Threaded: the runner's own thread (never the kernel's); synchronous: the caller's.
    assert boom.threads == {threading.current_thread().name if synchronous else "backtest-thread"}
    assert len(result.fills) > 0, "the other strategy stopped trading"
    states = [
        (e.payload["strategy"], e.payload["state"], e.payload["who"])
        for e in JournalReader(journal).events(topic="runner.state_changed")
    ]
    assert ("boom", "failed", "runner") in states
    assert ("sma_cross", "stopped", "backtest") in states
    failed = next(
        e.payload
        for e in JournalReader(journal).events(topic="runner.state_changed")
        if e.payload["state"] == "failed"
    )
    assert "RuntimeError: boom on purpose" in failed["reason"]
    assert "boom on purpose" in caplog.text and "Traceback" in caplog.text


class NanThreshold(Strategy):
    strategy_name = "nan_threshold"
    threshold = param.Number(default=float("nan"))


def test_parameters_json_cannot_hold_are_refused_before_the_strategy_is_added(tmp_path):
    bars = write_bars(tmp_path / "X.csv")
    with pytest.raises(InvalidInputError, match=r"'nan_threshold'.*params\.threshold is nan"):
        run_backtest(bars, [SmaCross(fast=2, slow=5), NanThreshold()])
    result = run_backtest(bars, SmaCross(fast=2, slow=5), journal_path=tmp_path / "ok.duckdb")
    assert result.fills  # the same run without it trades
    from tradelab.broker import PaperBroker
    from tradelab.engine import Engine
    from tradelab.trading.execution import ExecutionDesk

    engine = Engine(journal_path=str(tmp_path / "j.duckdb")).start()
    try:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit))
        runner.add(NanThreshold(threshold=1.0))
        runner.start(who="test")
        with pytest.raises(InvalidInputError, match=r"params\.threshold is inf"):
            runner.set_params("nan_threshold", {"threshold": float("inf")})
        assert runner.strategies["nan_threshold"].threshold == 1.0
        runner.stop(who="test")
    finally:
        engine.stop()


class Exits(Strategy):
    strategy_name = "exits"

    def on_bar(self, ctx, bar):
        raise SystemExit("a strategy called sys.exit")


def test_a_strategy_calling_sys_exit_is_failed_while_the_runner_goes_on(tmp_path):
    bars = write_bars(tmp_path / "X.csv")
    journal = tmp_path / "bt.duckdb"
    result = run_backtest(
        bars,
        [Exits(), SmaCross(fast=2, slow=5)],
        journal_path=journal,
        synchronous=False,
        stop_at_failure=False,
    )
    assert len(result.fills) > 0, "the runner's thread ended with the exiting strategy"
    failed = [
        e.payload["reason"]
        for e in JournalReader(journal).events(topic="runner.state_changed")
        if e.payload["state"] == "failed"
    ]
    assert failed == ["on_bar raised SystemExit: a strategy called sys.exit"]


class Scribbles(Strategy):
    strategy_name = "scribbles"

    def on_bar(self, ctx, bar):
        bar["close"] = 1.0


class Reads(Strategy):
    strategy_name = "reads"

    def on_start(self, ctx):
        self.closes = []

    def on_bar(self, ctx, bar):
        self.closes.append(bar["close"])


def test_a_strategy_cannot_change_the_bar_the_next_one_sees(tmp_path):
    bars = write_bars(tmp_path / "X.csv", n=5)
    journal = tmp_path / "bt.duckdb"
    reads = Reads()
    run_backtest(bars, [Scribbles(), reads], journal_path=journal, stop_at_failure=False)
    assert 1.0 not in reads.closes and len(reads.closes) == 5
    failed = [
        e.payload["reason"]
        for e in JournalReader(journal).events(topic="runner.state_changed")
        if e.payload["state"] == "failed"
    ]
    assert len(failed) == 1 and "does not support item assignment" in failed[0]


class ExitsEarly(Strategy):
    strategy_name = "exits_early"

    def on_start(self, ctx):
        self.outcomes = []

    def on_bar(self, ctx, bar):
        symbol = bar["symbol"]
        if self.outcomes:
            return
        try:
            ctx.set_exit(symbol, stop=50.0)  # flat, nothing working: refused
        except InvalidInputError as exc:
            self.outcomes.append(str(exc))
        ctx.set_exit(symbol)  # clearing is always fine
        ctx.buy(symbol, 1)
        ctx.set_exit(symbol, stop=50.0)  # the position the working order opens: kept
        self.outcomes.append("kept")


def test_exit_levels_need_a_position_or_a_working_order(tmp_path):
    strategy = ExitsEarly()
    run_backtest(write_bars(tmp_path / "X.csv", n=3), strategy)
    refused, kept = strategy.outcomes
    assert "holds no position and no working order in 'X'" in refused and kept == "kept"
