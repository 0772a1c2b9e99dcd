"""Orders and fills that reach a strategy late: an order's end the reconciler adopts from the
broker (its report lost) reaches the runner as its order.* event would, without re-sending an
exit for fills only flagged; fills held while paused survive a pause asked while they replay."""

import pytest

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


def _session(tmp_path, strategy, broker=None):
    """A runner of `strategy` on a journal in `tmp_path` and a paper broker (`broker`: one kept
    from an earlier session, as across a restart); `bar(i, hhmm, price, size)` plays bar i."""
    if broker is None:
        universe = InstrumentUniverse({"ABC": PlainInstrument("ABC", 1, 1000.0)})
        config = PaperBrokerConfig(latency_ms=0, brokerage_per_fill=0.0, enforce_market_hours=False)
        broker = PaperBroker(config, universe=universe, clock=SimulatedClock(at("10:00")))
    else:  # the earlier session's desk no longer listens
        broker._order_listeners.clear()
        broker._connection_listeners.clear()
    clock = broker.clock
    engine = Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False).start()
    desk = ExecutionDesk(broker, engine.submit, universe=broker.universe)
    runner = StrategyRunner(engine, desk, clock=clock, name="r")
    runner.add(strategy)
    runner.start(who="t")

    def bar(i, hhmm, price=100.0, size=10**6):
        ts = at(hhmm)
        clock.set(ts)
        broker.on_quote(Tick("ABC", ts, price, price, price, size, size))
        body = {"symbol": "ABC", "interval": "1m", "start": ts - 60 * 10**9, "end": ts}
        body |= {"open": price, "high": price, "low": price, "close": price, "mark": True}
        engine.submit("market.bar", {**body, "volume": 0, "ticks": 0}, key="ABC")
        runner.wait_for_bars(i, timeout=30)
        engine.flush()

    return engine, broker, runner, bar


def _lose_a_partly_filled_exit(broker, bar, silent: bool = True) -> str:
    """Bar 1 opens the 5; at bar 2 the stop's exit fills 2 of 5, that report lost, and the rest
    is cancelled, that report lost too unless not `silent` (book 5, broker 3). Its id."""
    bar(1, "10:00")
    broker.faults.drop_fill_reports(1)
    bar(2, "10:01", 90.0, size=2)
    [exit_order] = [o for o in broker.account.orders.values() if not o.status.is_terminal]
    broker.faults.silent = silent
    broker.cancel_order(exit_order.request.order_id)
    broker.faults.silent = False
    return exit_order.request.order_id


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


@pytest.mark.parametrize(
    ("missed_fill", "broker_after", "book_after"), [("flag", 3, 5), ("adopt", 0, 0)]
)
def test_an_adopted_cancel_of_a_partly_filled_exit_resends_it_only_once_its_fills_are_booked(
    tmp_path, missed_fill, broker_after, book_after
):
    # The exit filled 2 of 5, then was cancelled; both reports lost. With the fill only flagged
    # the book still held 5, and the exit re-sent for them took the broker (3) short 2.
    engine, broker, runner, bar = _session(tmp_path, LongWithAStop())
    try:
        _lose_a_partly_filled_exit(broker, bar)
        config = ReconcilerConfig(settle_s=0.0, missed_fill=missed_fill)
        Reconciler(broker, engine.submit, store=engine.store, config=config).run_once()
        for i, hhmm in enumerate(["10:02", "10:03", "10:04"], start=3):
            bar(i, hhmm, 89.0)
        assert broker.positions().get("ABC", 0) == broker_after
        assert engine.store.get("trading.positions.long:ABC")["net_quantity"] == book_after
    finally:
        runner.stop(who="t")
        engine.stop()


class ThreeLimitsPausingOnItsFirstFill(Strategy):
    strategy_name = "three"

    def on_start(self, ctx):
        self.bars, self.fills = 0, []

    def on_bar(self, ctx, bar):
        self.bars += 1
        if self.bars == 1:
            for price in (99.0, 98.0, 97.0):
                ctx.buy("ABC", 1, order_type="LIMIT", limit_price=price)

    def on_fill(self, ctx, fill):
        self.fills.append(fill["order_id"])
        if len(self.fills) == 1:
            ctx.pause("one fill is enough for now")


def test_fills_held_while_paused_outlive_a_pause_the_strategy_asks_for_while_they_replay(tmp_path):
    # At a resume the held fills are replayed to on_fill; the strategy pausing itself in the
    # first made the runner drop the other two for good (its position still counted them).
    import time

    strategy = ThreeLimitsPausingOnItsFirstFill()
    engine, broker, runner, bar = _session(tmp_path, strategy)

    def wait_for(condition):
        deadline = time.monotonic() + 20
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        return condition()

    try:
        bar(1, "10:00")
        runner.pause("three", who="op")
        assert wait_for(lambda: runner.state_of("three") == "paused")
        bar(2, "10:01", 96.0)  # all three limits fill while it is paused
        assert wait_for(lambda: broker.positions().get("ABC") == 3)
        runner.resume("three", who="op")
        assert wait_for(lambda: strategy.fills and runner.state_of("three") == "paused")
        assert len(strategy.fills) == 1
        runner.resume("three", who="op")
        assert wait_for(lambda: len(strategy.fills) == 3)
    finally:
        runner.stop(who="t")
        engine.stop()


def test_an_exit_held_back_for_a_flagged_fill_is_rearmed_once_that_fill_is_booked(tmp_path):
    # Held back while the fill was only flagged, the stop never fired again after a later
    # reconciliation booked it: book and broker both held 3 below the stop, unprotected.
    engine, broker, runner, bar = _session(tmp_path, LongWithAStop())
    try:
        _lose_a_partly_filled_exit(broker, bar)
        for policy in ("flag", "adopt"):  # an operator adopts the flagged fill later
            config = ReconcilerConfig(settle_s=0.0, missed_fill=policy)
            Reconciler(broker, engine.submit, store=engine.store, config=config).run_once()
        for i, hhmm in enumerate(["10:02", "10:03", "10:04"], start=3):
            bar(i, hhmm, 88.0)
        assert broker.positions().get("ABC", 0) == 0  # the stop sold the 3 left
        assert engine.store.get("trading.positions.long:ABC")["net_quantity"] == 0
    finally:
        runner.stop(who="t")
        engine.stop()


class LongOnceWithAStop(LongWithAStop):
    strategy_name = "long"

    def on_bar(self, ctx, bar):
        if ctx.position("ABC") == 0 and not ctx.working("ABC"):
            ctx.buy("ABC", 5)


def test_an_exit_held_back_for_flagged_fills_stays_held_after_a_restart(tmp_path):
    # The hold was in memory only: after a restart the stop was armed again and sold the book's
    # 5 while the broker held 3, the broker short 2 and the book flat.
    engine, broker, runner, bar = _session(tmp_path, LongOnceWithAStop())
    _lose_a_partly_filled_exit(broker, bar)
    cfg = ReconcilerConfig(settle_s=0.0, missed_fill="flag")
    Reconciler(broker, engine.submit, store=engine.store, config=cfg).run_once()
    engine.flush()
    runner.stop(who="t")
    engine.stop()
    engine, broker, runner, bar = _session(tmp_path, LongOnceWithAStop(), broker)
    try:
        for i, hhmm in enumerate(["10:02", "10:03", "10:04"], start=1):
            bar(i, hhmm, 89.0)
        assert broker.positions() == {"ABC": 3}  # nothing sold past what it holds
        assert engine.store.get("trading.positions.long:ABC")["net_quantity"] == 5
        cfg = ReconcilerConfig(settle_s=0.0, missed_fill="adopt")
        Reconciler(broker, engine.submit, store=engine.store, config=cfg).run_once()
        bar(4, "10:05", 89.0)  # the fill booked: the stop closes the rest
        assert broker.positions().get("ABC", 0) == 0
        assert engine.store.get("trading.positions.long:ABC")["net_quantity"] == 0
    finally:
        runner.stop(who="t")
        engine.stop()


def test_a_reported_cancel_of_a_partly_filled_exit_whose_fill_was_lost_holds_the_exit(tmp_path):
    # The broker's cancel report said 2 of 5 filled, the fill's own report lost: the exit was
    # armed again at once and sold the book's 5 while the broker held 3.
    engine, broker, runner, bar = _session(tmp_path, LongOnceWithAStop())
    try:
        exit_order = _lose_a_partly_filled_exit(broker, bar, silent=False)  # cancel reported
        engine.flush()
        for i, hhmm in enumerate(["10:02", "10:03"], start=3):
            bar(i, hhmm, 89.0)
        orders = engine.store.get("trading.orders").values()
        assert [o["order_id"] for o in orders if o["side"] == "SELL"] == [exit_order]
        assert broker.positions() == {"ABC": 3}
        assert engine.store.get("trading.positions.long:ABC")["net_quantity"] == 5
    finally:
        runner.stop(who="t")
        engine.stop()
