"""An order's end the reconciler adopts from the broker (its report was lost) reaches the runner
as its order.* event would: the strategy stops counting it as working."""

from tests.test_runner_scripted import at
from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.broker.reconcile import Reconciler, ReconcilerConfig
from tradelab.engine import Engine
from tradelab.market.clock import SimulatedClock
from tradelab.market.ticks import Tick
from tradelab.runner import InstrumentUniverse, PlainInstrument, Strategy
from tradelab.runner.runner import StrategyRunner
from tradelab.trading.execution import ExecutionDesk


class RestsALimit(Strategy):
    strategy_name = "rest"

    def on_start(self, ctx):
        self.bars, self.seen = 0, []

    def on_bar(self, ctx, bar):
        self.bars += 1
        if self.bars == 1:
            self.order = ctx.buy("ABC", 5, order_type="LIMIT", limit_price=50.0)
        self.seen.append((ctx.working("ABC"), ctx.target("ABC", 5)))


def _session(tmp_path, strategy):
    universe = InstrumentUniverse({"ABC": PlainInstrument("ABC", 1, 1000.0)})
    clock = SimulatedClock(at("10:00"))
    config = PaperBrokerConfig(latency_ms=0, brokerage_per_fill=0.0, enforce_market_hours=False)
    broker = PaperBroker(config, universe=universe, clock=clock)
    engine = Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False).start()
    desk = ExecutionDesk(broker, engine.submit, universe=universe)
    runner = StrategyRunner(engine, desk, clock=clock, name="r")
    runner.add(strategy)
    runner.start(who="t")

    def bar(i, hhmm, price=100.0):
        ts = at(hhmm)
        clock.set(ts)
        broker.on_quote(Tick("ABC", ts, price, price, price, 10**6, 10**6))
        body = {"symbol": "ABC", "interval": "1m", "start": ts - 60 * 10**9, "end": ts}
        body |= {"open": price, "high": price, "low": price, "close": price, "mark": True}
        engine.submit("market.bar", {**body, "volume": 0, "ticks": 0}, key="ABC")
        runner.wait_for_bars(i, timeout=30)
        engine.flush()

    return engine, broker, runner, bar


def test_a_cancel_adopted_from_the_broker_frees_the_strategys_working_count(tmp_path):
    # ctx.working stayed 5 after the reconciler adopted the broker's "cancelled": target()
    # sent nothing, bar after bar, until a restart re-read the store.
    strategy = RestsALimit()
    engine, broker, runner, bar = _session(tmp_path, strategy)
    try:
        bar(1, "10:00")
        broker.faults.silent = True  # the broker cancels it; the report is lost
        broker.cancel_order(strategy.order)
        broker.faults.silent = False
        reconciler = Reconciler(
            broker, engine.submit, store=engine.store, config=ReconcilerConfig(settle_s=0.0)
        )
        assert reconciler.run_once().kinds == ["order_state_mismatch"]
        bar(2, "10:01")
    finally:
        runner.stop(who="t")
        engine.stop()
    assert strategy.seen[0] == (5, None)
    working, placed = strategy.seen[1]
    assert working == 0 and placed is not None  # the entry is sent again


class LongWithAStop(Strategy):
    strategy_name = "long"

    def on_start(self, ctx):
        self.bars = 0

    def on_bar(self, ctx, bar):
        self.bars += 1
        if self.bars == 1:
            ctx.buy("ABC", 5)

    def on_fill(self, ctx, fill):
        if ctx.position("ABC") > 0 and ctx.exit_levels("ABC") is None:
            ctx.set_exit("ABC", stop=95.0)


def test_an_adopted_fill_state_whose_fill_is_only_flagged_does_not_send_the_exit_again(tmp_path):
    # The stop's exit filled at the broker, its report lost; with missed_fill: flag the book
    # keeps the 5 and the order's "filled" is adopted. Taken as "the exit ended unfilled", it
    # sent the exit again: the broker went short 5 while the book showed flat.
    engine, broker, runner, bar = _session(tmp_path, LongWithAStop())
    try:
        bar(1, "10:00")
        broker.faults.drop_fill_reports(1)
        bar(2, "10:01", 90.0)  # the stop's exit fills; its report is lost
        assert broker.positions() == {}
        config = ReconcilerConfig(settle_s=0.0, missed_fill="flag")
        reconciler = Reconciler(broker, engine.submit, store=engine.store, config=config)
        assert reconciler.run_once().kinds == ["missed_fill", "order_state_mismatch"]
        bar(3, "10:02", 89.0)
        bar(4, "10:03", 88.0)
        assert broker.positions() == {}  # nothing sold twice
        assert engine.store.get("trading.positions.long:ABC")["net_quantity"] == 5  # flagged
    finally:
        runner.stop(who="t")
        engine.stop()
