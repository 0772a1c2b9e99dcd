"""A strategy pauses or stops itself (`ctx.pause(reason)`, `ctx.stop(reason)`): journaled with
the strategy as who and its reason, carried out once the hook returns, kept across a restart
as an operator's would be, and a missing reason is refused naming the call."""

import time

import pytest

from tests.test_strategy_signals import write_bars
from tradelab.broker import PaperBroker
from tradelab.engine import Engine
from tradelab.journal import JournalReader
from tradelab.runner import Strategy
from tradelab.runner.backtest import run_backtest
from tradelab.runner.runner import StrategyRunner
from tradelab.trading.execution import ExecutionDesk


class HoldsAtBarThree(Strategy):
    """Buys 1 on bar 1, rests a limit buy far below on bar 2, pauses or stops itself on bar 3."""

    strategy_name = "holder"

    def __init__(self, how="pause", reason="three bars are enough", **params):
        super().__init__(**params)
        self.how, self.reason = how, reason

    def on_start(self, ctx):
        self.bars, self.stops, self.after_hold = 0, 0, []

    def on_bar(self, ctx, bar):
        self.bars += 1
        if self.bars == 1:
            ctx.buy(bar["symbol"], 1)
        elif self.bars == 2:
            self.resting = ctx.buy(bar["symbol"], 1, order_type="LIMIT", limit_price=50.0)
        elif self.bars == 3:
            getattr(ctx, self.how)(self.reason)
            self.after_hold.append("same hook goes on")  # it takes effect after the hook

    def on_stop(self, ctx):
        self.stops += 1


def states(journal):
    return [
        (e.payload["state"], e.payload["who"], e.payload["reason"])
        for e in JournalReader(journal).events(topic="runner.state_changed")
    ]


@pytest.mark.parametrize("how", ["pause", "stop"])
def test_a_strategy_holds_itself_with_its_reason_and_gets_no_more_bars(tmp_path, how):
    journal = tmp_path / "bt.duckdb"
    strategy = HoldsAtBarThree(how)
    result = run_backtest(write_bars(tmp_path / "ABC.csv"), strategy, journal_path=journal)
    assert strategy.bars == 3 and strategy.after_hold == ["same hook goes on"]
    held = "paused" if how == "pause" else "stopped"
    assert (held, "holder", "three bars are enough") in states(journal)
    assert strategy.stops == 1  # a stop's on_stop comes after the hook, not again at the end
    # Its position stays; a stop cancels the resting order that would add to it, a pause not.
    assert result.open_positions == {"ABC": 1}
    orders = {
        e.payload["order_id"]: e.topic
        for e in JournalReader(journal).events()
        if e.topic in ("order.cancelled", "order.accepted")
    }
    assert orders[strategy.resting] == ("order.cancelled" if how == "stop" else "order.accepted")


@pytest.mark.parametrize("reason", ["", "   ", None, 3])
def test_a_hold_without_a_reason_is_refused_naming_the_call(tmp_path, reason):
    journal = tmp_path / "bt.duckdb"
    strategy = HoldsAtBarThree("pause", reason)
    run_backtest(write_bars(tmp_path / "ABC.csv"), strategy, journal_path=journal)
    [failed] = [s for s in states(journal) if s[0] == "failed"]
    assert "ctx.pause(reason) needs the reason as text" in failed[2]


class PausesOnItsFirstBar(Strategy):
    strategy_name = "pauser"

    def on_start(self, ctx):
        self.bars = 0

    def on_bar(self, ctx, bar):
        self.bars += 1
        ctx.pause("waiting for a person")


def _session(path, act=None):
    engine = Engine(journal_path=str(path)).start()
    try:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit))
        strategy = PausesOnItsFirstBar()
        runner.add(strategy)
        runner.start(who="lab")
        if act is not None:
            act(runner)
        runner.stop(who="lab")
        engine.flush()
    finally:
        engine.stop()
    return strategy


def test_a_strategys_own_pause_outlives_a_restart_until_an_operator_resumes(tmp_path):
    path = tmp_path / "j.duckdb"
    bar = {"symbol": "X", "interval": "1m", "start": 0, "end": 60 * 10**9, "open": 1.0}
    bar |= {"high": 1.0, "low": 1.0, "close": 1.0, "volume": 0, "ticks": 1}

    def one_bar(runner):
        runner.engine.submit("market.bar", bar, key="X", wait=True)
        deadline = time.monotonic() + 30
        while runner.state_of("pauser") != "paused" and time.monotonic() < deadline:
            time.sleep(0.01)

    strategy = _session(path, one_bar)
    assert strategy.bars == 1
    strategy = _session(path, one_bar)  # a restart: it stays paused, the bar does not reach it
    assert strategy.bars == 0
    kept = [s for s in states(path) if s[0] == "paused"]
    assert kept[0] == ("paused", "pauser", "waiting for a person")
    assert kept[-1][2] == "paused by pauser before the restart; resume it to trade"


class StopsOnItsFirstBar(Strategy):
    strategy_name = "stopper"

    def on_start(self, ctx):
        self.stopped_at, self.after, self.stops = None, [], 0

    def on_bar(self, ctx, bar):
        if self.stopped_at is None:
            self.stopped_at = bar["symbol"]
            ctx.stop("done for the day")
            ctx.pause("a pause after a stop changes nothing")
            return
        self.after.append(bar["symbol"])

    def on_stop(self, ctx):
        self.stops += 1
        ctx.stop("a stop in on_stop does nothing: it is stopping")


def test_a_strategy_that_stops_itself_gets_none_of_the_bars_already_waiting(tmp_path):
    # The hold was queued behind the runner's inbox: in a simulated session the other 22-24
    # bars of that minute still reached it, and it traded on each.
    from tradelab.lab import Lab

    strategy = StopsOnItsFirstBar()
    journal = tmp_path / "j.duckdb"
    lab = Lab(
        journal_path=str(journal),
        as_fast_as_possible=True,
        bar_intervals=["1m"],
        strikes_each_side=2,
        strategies=[strategy],
    ).start()
    try:
        deadline = time.monotonic() + 60
        while strategy.stopped_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the rest of that minute's bars, and more, are handled meanwhile
        assert lab.runner.state_of("stopper") == "stopped"
    finally:
        lab.stop()
    assert strategy.stopped_at is not None and strategy.after == []
    assert strategy.stops == 1  # on_stop once; its own ctx.stop there failed nothing
    assert ("stopped", "stopper", "done for the day") in states(journal)
    assert not [s for s in states(journal) if s[0] in ("failed", "paused")]


def test_a_hold_outside_a_hook_is_refused_naming_where_it_belongs(tmp_path):
    from tradelab.errors import LifecycleError

    engine = Engine(journal_path=str(tmp_path / "j.duckdb")).start()
    try:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit))
        runner.add(PausesOnItsFirstBar())
        with pytest.raises(LifecycleError, match="is for the strategy's hooks; none runs"):
            runner.context_of("pauser").pause("from a notebook cell, before the start")
    finally:
        engine.stop()
