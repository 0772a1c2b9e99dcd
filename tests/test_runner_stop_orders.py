"""A strategy stopped while the session goes on (an operator's stop, a failure) has its working
orders that would open or add to a position cancelled; its exits stay working."""

from __future__ import annotations

import time

from test_runner_scripted import at

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.engine import Engine
from tradelab.market.clock import SimulatedClock
from tradelab.market.ticks import Tick
from tradelab.runner import InstrumentUniverse, PlainInstrument, Strategy
from tradelab.runner.runner import StrategyRunner
from tradelab.trading.execution import ExecutionDesk


class Rests(Strategy):
    """Long 10 at market on the first bar; on the second a resting buy (it would add to the
    long) and a resting sell of the whole long (its exit); raises on the third if `fail`."""

    strategy_name = "rests"

    def __init__(self, fail: bool = False, **params):
        super().__init__(**params)
        self.fail, self.bars = fail, 0

    def on_bar(self, ctx, bar):
        self.bars += 1
        if self.bars == 1:
            ctx.buy("ABC", 10)
        elif self.bars == 2:
            self.entry = ctx.buy("ABC", 5, order_type="LIMIT", limit_price=50.0)
            self.exit = ctx.sell("ABC", 10, order_type="LIMIT", limit_price=150.0)
        elif self.bars == 3 and self.fail:
            raise RuntimeError("a bug")


def cancelled_ids(engine):
    return [e.payload["order_id"] for e in engine.bus.history() if e.topic == "order.cancelled"]


def session(tmp_path, strategy, after_two_bars):
    universe = InstrumentUniverse({"ABC": PlainInstrument("ABC", 1, 1000.0)})
    clock = SimulatedClock(at("10:00"))
    broker = PaperBroker(
        PaperBrokerConfig(latency_ms=0, brokerage_per_fill=0.0, enforce_market_hours=False),
        universe=universe,
        clock=clock,
    )
    engine = Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False).start()
    runner = StrategyRunner(
        engine, ExecutionDesk(broker, engine.submit, universe=universe), clock=clock, name="r"
    )
    runner.add(strategy)
    runner.start(who="test")
    try:
        for i, hhmm in enumerate(("10:00", "10:01", "10:02")):
            ts = at(hhmm)
            clock.set(ts)
            broker.on_quote(Tick("ABC", ts, 100.0, 100.0, 100.0, 10**6, 10**6))
            bar = {"symbol": "ABC", "interval": "1m", "start": ts - 60 * 10**9, "end": ts}
            prices = {"open": 100.0, "high": 100.0, "low": 100.0, "close": 100.0}
            engine.submit("market.bar", {**bar, **prices, "volume": 0, "ticks": 0}, key="ABC")
            runner.wait_for_bars(i + 1, timeout=30)
            if i == 1:
                after_two_bars(runner)
        # The cancels follow the stop on the runner's thread: wait for them (or a dead runner).
        deadline = time.monotonic() + 30
        while not cancelled_ids(engine):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        runner.stop(who="test")
        engine.wait_applied()
        working = dict(engine.store.get("trading.working", None) or {})
        cancelled = cancelled_ids(engine)
        return working, cancelled
    finally:
        runner.stop(who="test")
        engine.stop()


def test_an_operators_stop_cancels_the_strategys_openings_and_keeps_its_exits(tmp_path):
    strategy = Rests()
    working, cancelled = session(tmp_path, strategy, lambda r: r.stop_strategy("rests", "op"))
    # Left working, the buy could fill after the stop: a position nobody manages.
    assert cancelled == [strategy.entry]
    assert list(working) == [strategy.exit]


def test_a_failed_strategys_openings_are_cancelled_too(tmp_path):
    strategy = Rests(fail=True)
    working, cancelled = session(tmp_path, strategy, lambda r: None)
    assert cancelled == [strategy.entry]
    assert list(working) == [strategy.exit]
