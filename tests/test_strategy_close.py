"""`ctx.close(symbol)`: close the position now, whatever rests beside it."""

import param

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.engine import Engine
from tradelab.journal import JournalReader
from tradelab.market.clock import SimulatedClock
from tradelab.runner import InstrumentUniverse, PlainInstrument, Strategy
from tradelab.runner.backtest import run_backtest
from tradelab.runner.runner import StrategyRunner
from tradelab.trading.execution import ExecutionDesk

BARS = (
    "Date,Open,High,Low,Close\n"
    "2024-01-01,100,100,100,100\n"
    "2024-01-02,101,101,101,101\n"
    "2024-01-03,102,102,102,102\n"
    "2024-01-04,103,103,103,103\n"
    "2024-01-05,104,104,104,104\n"
)


class Script(Strategy):
    """Bar 1: `entry`; bar 3: close (twice, when `twice`)."""

    entry = param.Selector(default="limit_buy", objects=["limit_buy", "long_with_target"])
    twice = param.Boolean(default=False)

    def on_start(self, ctx):
        self.step = 0
        self.closes = []

    def on_bar(self, ctx, bar):
        self.step += 1
        symbol = bar["symbol"]
        if self.step == 1 and self.entry == "limit_buy":
            ctx.buy(symbol, 10, order_type="LIMIT", limit_price=90.0)  # never reached
        elif self.step == 1:
            ctx.buy(symbol, 10)  # fills at bar 2's open, 101
        elif self.step == 2 and self.entry == "long_with_target":
            ctx.sell(symbol, 10, order_type="LIMIT", limit_price=200.0)  # a far take-profit
        elif self.step == 3:
            self.closes.append(ctx.close(symbol))
            if self.twice:
                self.closes.append(ctx.close(symbol))


def topics(journal):
    return [e.topic for e in JournalReader(journal).events()]


def test_close_while_flat_cancels_a_resting_entry_and_sells_nothing(tmp_path):
    (tmp_path / "ABC.csv").write_text(BARS)
    strategy = Script(entry="limit_buy")
    result = run_backtest(tmp_path / "ABC.csv", strategy, journal_path=tmp_path / "j.duckdb")
    assert result.fills == [] and strategy.closes == [None]
    assert result.open_positions == {} and result.unfilled_orders == []
    assert topics(tmp_path / "j.duckdb").count("order.cancelled") == 1


def test_close_cancels_a_resting_limit_exit_and_closes_at_market(tmp_path):
    (tmp_path / "ABC.csv").write_text(BARS)
    strategy = Script(entry="long_with_target", twice=True)
    result = run_backtest(tmp_path / "ABC.csv", strategy)
    # Bought at bar 2's open; closed at bar 4's open; the second close counts the first.
    assert [(f["side"], f["quantity"], f["price"]) for f in result.fills] == [
        ("BUY", 10, 101.0),
        ("SELL", 10, 103.0),
    ]
    assert strategy.closes[0] is not None and strategy.closes[1] is None


def abc_broker():
    """A paper broker quoting ABC (lot 1) at 100, whose limit orders fill when told."""
    universe = InstrumentUniverse({"ABC": PlainInstrument("ABC", 1, 1000.0)})
    broker = PaperBroker(
        PaperBrokerConfig(latency_ms=0, brokerage_per_fill=0.0, enforce_market_hours=False),
        universe=universe,
        clock=SimulatedClock(10**18),
    )
    broker.set_quote("ABC", 100.0, 100.0)
    return universe, broker


class Resting(Strategy):
    """First start: a resting limit buy. Started again: what its context counts as working,
    then a close."""

    strategy_name = "resting"
    again = param.Boolean(default=False)

    def on_start(self, ctx):
        if not self.again:
            ctx.buy("ABC", 10, order_type="LIMIT", limit_price=90.0)
            return
        self.working = ctx.working("ABC")
        self.closed = ctx.close("ABC")


def test_a_restarted_strategy_counts_and_can_cancel_the_orders_it_left_working(tmp_path):
    universe, broker = abc_broker()
    with Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False) as engine:
        desk = ExecutionDesk(broker, engine.submit, universe=universe)
        first = StrategyRunner(engine, desk, name="first")
        first.add(Resting())
        first.start(who="test")
        engine.wait_applied()
        broker.set_quote("ABC", 88.0, 89.0, size=4)  # 4 of the 10 fill; 6 rest
        engine.wait_applied()
        first.stop(who="test")
        assert len(engine.store.get("trading.working", None) or {}) == 1
        # A new runner, as in a restarted session, with the same strategy.
        second = StrategyRunner(engine, desk, name="second")
        after = second.add(Resting(again=True))
        second.start(who="test")
        second.stop(who="test")
        engine.wait_applied()
        # The close sells the 4 held, under an id of its own (ids start from the journal's seq).
        assert after.working == 6 and after.closed.startswith("resting-")
        assert not engine.store.get("trading.working", None)
        assert broker.open_orders() == [] and broker.positions() == {}


class ClosesDuringAFill(Strategy):
    """Rests a limit buy of 10; the broker fills 4 of it while this hook runs (a quote on the
    feed's thread), then the hook closes: that fill has not reached the strategy yet."""

    strategy_name = "closes_during_a_fill"

    def __init__(self, broker, **params):
        super().__init__(**params)
        self.broker = broker

    def on_start(self, ctx):
        ctx.buy("ABC", 10, order_type="LIMIT", limit_price=90.0)
        self.broker.set_quote("ABC", 88.0, 89.0, size=4)
        self.seen = (ctx.position("ABC"), ctx.working("ABC"))
        self.closed = ctx.close("ABC")


def test_close_counts_a_fill_made_before_its_cancel_that_the_strategy_has_not_seen(tmp_path):
    universe, broker = abc_broker()
    with Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False) as engine:
        runner = StrategyRunner(
            engine, ExecutionDesk(broker, engine.submit, universe=universe), name="r"
        )
        strategy = runner.add(ClosesDuringAFill(broker))
        runner.start(who="test")
        runner.stop(who="test")
        engine.wait_applied()
    assert strategy.seen == (0, 10)  # the fill of 4 is on its way
    assert strategy.closed is not None  # a sell of those 4
    assert broker.positions() == {} and broker.open_orders() == []


class CountsFills(Strategy):
    strategy_name = "counts_fills"

    def __init__(self, **params):
        super().__init__(**params)
        self.fills = []

    def on_fill(self, ctx, fill):
        self.fills.append((fill["side"], fill["quantity"], ctx.position(fill["symbol"])))


def test_fills_made_while_a_strategy_is_paused_reach_on_fill_when_it_resumes(tmp_path):
    universe, broker = abc_broker()
    with Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False) as engine:
        desk = ExecutionDesk(broker, engine.submit, universe=universe)
        runner = StrategyRunner(engine, desk, name="r")
        strategy = runner.add(CountsFills())
        runner.start(who="test")
        runner.pause("counts_fills", who="ops")
        engine.wait_applied()
        desk.place_order("ABC", "BUY", 10, strategy="counts_fills")  # an operator's, say
        desk.place_order("ABC", "SELL", 4, strategy="counts_fills")
        engine.wait_applied()
        assert strategy.fills == []  # paused: no callbacks
        runner.resume("counts_fills", who="ops")
        runner.stop(who="test")
    assert strategy.fills == [("BUY", 10, 6), ("SELL", 4, 6)]  # in order, after the fact
