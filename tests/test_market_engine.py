"""The market and trading parts wired to a real Engine: journaled, recovered, identical."""

import json
from datetime import datetime

import pytest

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.engine import Engine
from tradelab.market.feeds import SimulatedFeed, SimulatedFeedConfig
from tradelab.market.instruments import IST
from tradelab.market.router import MarketDataRouter
from tradelab.trading.execution import ExecutionDesk

ROOTS = ("market", "trading", "pnl")


def test_session_through_the_engine_recovers_the_same_book_after_restart(tmp_path):
    journal = str(tmp_path / "lab.duckdb")
    feed = SimulatedFeed(
        SimulatedFeedConfig(
            seed=9, ticks_per_second=20, speed=60.0, as_fast_as_possible=True, strikes_each_side=1
        )
    )
    symbol = feed.symbols[3]
    engine = Engine(journal_path=journal).start()
    broker = PaperBroker(PaperBrokerConfig(), clock=feed.clock)
    desk = ExecutionDesk(broker, engine.submit, universe=feed.universe)
    router = MarketDataRouter(
        engine.submit, engine.publish_transient, quote_sinks=[broker.on_quote]
    )
    seen_ticks = []
    engine.bus.subscribe("market.tick", seen_ticks.append)
    desk.reset_daily_pnl(datetime.fromtimestamp(feed.open_ns / 1e9, tz=IST).date().isoformat())
    router.open_session(feed.open_ns)
    for i, tick in enumerate(feed.ticks()):
        router.on_tick(tick)
        if i == 100:
            desk.place_order(symbol, "BUY", 150, strategy="trend")
        if i == 1000:
            desk.place_order(symbol, "SELL", 75, strategy="trend")
    router.close_session(feed.clock.now_ns())
    engine.flush()
    # Plain JSON on both sides: a snapshot hands back lists where the live store kept tuples.
    live = {root: json.loads(json.dumps(engine.store.get(root))) for root in ROOTS}
    position = engine.store.get(f"trading.positions.trend:{symbol}")
    bars = engine.store.get("market.bars.NIFTY.15m")
    engine.stop()

    assert position["net_quantity"] == 75 and position["trades"] >= 2
    assert len(bars) == 25
    assert len(seen_ticks) == feed.ticks_emitted  # ticks reached the bus, not the journal

    restarted = Engine(journal_path=journal).start()
    try:
        assert restarted.store.get(f"trading.positions.trend:{symbol}") == position
        for root in ROOTS:
            assert json.loads(json.dumps(restarted.store.get(root))) == live[root], root
    finally:
        restarted.stop()


@pytest.mark.timeout(20)
def test_strategy_ordering_from_a_bus_handler_during_a_fill_does_not_deadlock(tmp_path):
    # The closing fill submits two critical events (trade.executed, position.closed). While the
    # first is published, a handler on the kernel thread places another order; the second needs
    # the kernel. Neither side may be waiting on a lock the other holds.
    engine = Engine(journal_path=str(tmp_path / "lab.duckdb")).start()
    feed = SimulatedFeed(SimulatedFeedConfig(seed=1, as_fast_as_possible=True))
    broker = PaperBroker(clock=feed.clock)
    desk = ExecutionDesk(broker, engine.submit)
    symbol = feed.symbols[1]
    placed = []

    def follow_up(event):
        if event.payload["strategy"] == "lead" and event.payload["side"] == "SELL" and not placed:
            placed.append(desk.place_order(symbol, "SELL", 75, strategy="follow"))

    engine.bus.subscribe("trade.executed", follow_up)
    try:
        ticks = feed.ticks()
        for tick in ticks:
            broker.on_quote(tick)
            if tick.symbol == symbol:
                break
        desk.place_order(symbol, "BUY", 75, strategy="lead")
        desk.place_order(symbol, "SELL", 75, strategy="lead")
        for _, tick in zip(range(200), ticks, strict=False):
            broker.on_quote(tick)
        engine.flush()
        assert placed
        assert engine.store.get(f"trading.positions.follow:{symbol}")["net_quantity"] == -75
        assert engine.store.get(f"trading.positions.lead:{symbol}")["status"] == "closed"
    finally:
        engine.stop()
