"""Expiry settlement in whole sessions and labs: at the close, at max speed, and after restarts."""

import time
from datetime import date, datetime

import pytest

from tradelab.market.instruments import IST
from tradelab.runner import Strategy


class HoldsAStraddleToExpiry(Strategy):
    """Sells one lot of the first call and the first put it sees, and never exits."""

    strategy_name = "holds_to_expiry"

    def on_start(self, ctx):
        self.sold, self.fills = {}, []

    def on_tick(self, ctx, tick):
        symbol = tick["symbol"]
        kind = symbol[-2:]
        if kind in ("CE", "PE") and kind not in self.sold:
            self.sold[kind] = symbol
            ctx.sell(symbol, ctx.universe.lot_size(ctx.universe.parse(symbol)))

    def on_fill(self, ctx, fill):
        self.fills.append(fill)


def test_a_session_on_expiry_day_settles_what_is_held_at_its_close(tmp_path, caplog):
    from tradelab.journal import JournalReader
    from tradelab.lab import Lab
    from tradelab.market.feeds.simulated import SimulatedFeedConfig

    strategy = HoldsAStraddleToExpiry()
    journal = tmp_path / "lab.duckdb"
    lab = Lab(
        journal_path=str(journal),
        # A Tuesday: the weekly options it quotes expire at 15:30.
        sim_feed=SimulatedFeedConfig(session_date=date(2025, 11, 18)),
        ticks_per_second=2,
        as_fast_as_possible=True,
        strikes_each_side=1,
        strategies=[strategy],
    ).start()
    try:
        assert lab.session_finished.wait(120)
        lab.engine.wait_applied()
        store = lab.store
        positions = store.get("trading.positions")
        assert sorted(p["symbol"] for p in positions.values()) == sorted(strategy.sold.values())
        assert all(p["status"] == "closed" and not p["net_quantity"] for p in positions.values())
        assert lab.broker.positions() == {}
        assert lab.reconciler.run_once().ok  # the book and the broker agree after it
        index = store.get("market.marks.NIFTY")["price"]
        settlement_marks = {
            symbol: store.get(f"market.marks.{symbol}") for symbol in strategy.sold.values()
        }
    finally:
        lab.stop()
    settled = [
        e.payload
        for e in JournalReader(journal).events(topic="trade.executed")
        if e.payload["order_id"].startswith("EXP-")
    ]
    assert sorted(t["symbol"] for t in settled) == sorted(strategy.sold.values())
    for trade in settled:
        contract = lab.universe.parse(trade["symbol"])
        intrinsic = index - contract.strike if contract.is_call else contract.strike - index
        assert trade["side"] == "BUY" and trade["fee"] == 0.0
        assert trade["price"] == pytest.approx(max(intrinsic, 0.0), abs=0.01)
        # The contract is marked at its settlement price, not left at its last quote.
        assert settlement_marks[trade["symbol"]]["price"] == trade["price"]
        assert settlement_marks[trade["symbol"]]["ts"] == trade["ts"] == lab.close_ns
    assert [f["order_id"] for f in strategy.fills[-2:]] == [t["order_id"] for t in settled]
    # Said where a `tradelab run` shows it: a position the exchange closed, not its strategy.
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum(m.startswith("expiry settlement: ") for m in warned) == 2


def test_the_lab_settles_at_the_journaled_index_mark_when_the_broker_has_no_quote():
    from types import SimpleNamespace

    from tradelab.lab_sessions import settle_expired_options

    asked = []

    def settle_expired(prices, held_by):
        asked.append(prices)
        return []

    marks = {"NIFTY": {"price": 24_010.0, "ts": 1}, "X": {"ts": 2}}
    store = SimpleNamespace(get=lambda path, default=None: {"market.marks": marks}.get(path))
    broker = SimpleNamespace(settle_expired=settle_expired)
    assert settle_expired_options(store, broker, lambda *a, **k: None) == []
    assert asked == [{"NIFTY": 24_010.0}]


class BuysLateAndHolds(Strategy):
    """Buys ten lots of a put 100 points out of the money at 15:25 and holds it to expiry."""

    strategy_name = "buys_late"

    def on_start(self, ctx):
        self.symbol = None

    def on_tick(self, ctx, tick):
        late = datetime.fromtimestamp(tick["ts"] / 1e9, IST).strftime("%H:%M") >= "15:25"
        index = ctx.mark("NIFTY")
        if self.symbol is None and late and index is not None:
            put = ctx.universe.parse(tick["symbol"]) if tick["symbol"].endswith("PE") else None
            if put is not None and put.strike == ctx.universe.atm_strike(index) - 100:
                self.symbol = tick["symbol"]
                ctx.buy(self.symbol, 10 * ctx.universe.lot_size(put))


def test_a_daily_loss_limit_crossed_by_the_settlement_halts_at_max_speed_too(tmp_path):
    # The close's settlement realized the loss after the last check of a lockstep run: the
    # same session halted paced and stayed active at --speed max.
    from tradelab.lab import Lab
    from tradelab.market.feeds.simulated import SimulatedFeedConfig
    from tradelab.trading.risk import RiskConfig

    strategy = BuysLateAndHolds()
    lab = Lab(
        journal_path=str(tmp_path / "lab.duckdb"),
        sim_feed=SimulatedFeedConfig(session_date=date(2025, 11, 18)),
        ticks_per_second=5,
        as_fast_as_possible=True,
        strikes_each_side=2,
        strategies=[strategy],
        risk=RiskConfig(daily_loss_limit=100.0),
    ).start()
    try:
        assert lab.session_finished.wait(120)
        lab.engine.wait_applied()
        assert strategy.symbol is not None
        daily = lab.store.get("pnl.daily")["net"]
        assert daily <= -100.0
        assert lab.store.get("risk.control")["state"] == "halted"
    finally:
        lab.stop()


@pytest.mark.parametrize("paced", [False, True], ids=["max", "paced"])
def test_a_restart_on_a_later_day_closes_the_expiry_day_first_and_settles_at_its_close(
    tmp_path, paced
):
    # Stopped mid-session on the expiry day and started again the next day: the settlement
    # was dated the next morning, and the expiry day's session was never closed.
    from tradelab.journal import JournalReader
    from tradelab.lab import Lab
    from tradelab.lab_sessions import day_close_ns
    from tradelab.market.feeds.simulated import SimulatedFeedConfig

    journal = tmp_path / "lab.duckdb"
    strategy = HoldsAStraddleToExpiry()
    lab = Lab(
        journal_path=str(journal),
        sim_feed=SimulatedFeedConfig(session_date=date(2025, 11, 18)),
        ticks_per_second=50,
        speed=600.0,
        strikes_each_side=1,
        strategies=[strategy],
    ).start()
    try:
        deadline = time.monotonic() + 60
        while len(lab.broker.positions()) < 2:  # both legs sold, the day far from its close
            assert time.monotonic() < deadline
            time.sleep(0.05)
        expiry_close = day_close_ns(lab.broker.hours, lab.open_ns)
    finally:
        lab.stop()
    with Lab(
        journal_path=str(journal),
        sim_feed=SimulatedFeedConfig(session_date=date(2025, 11, 19)),
        ticks_per_second=2,
        # Paced, the day's first tick opened it a second time: the store had not shown the
        # open yet.
        as_fast_as_possible=not paced,
        speed=40_000.0,
        strikes_each_side=1,
        strategy="none",
    ) as later:
        assert later.session_finished.wait(120)
        later.engine.wait_applied()
        assert later.broker.positions() == {}
    reader = JournalReader(journal)
    sessions = [
        (e.topic, e.payload["session_date"], e.payload["ts"])
        for e in reader.events()
        if e.topic in ("market.session_opened", "market.session_closed")
    ]
    assert sessions == [
        ("market.session_opened", "2025-11-18", lab.open_ns),
        ("market.session_closed", "2025-11-18", expiry_close),
        ("market.session_opened", "2025-11-19", later.open_ns),
        ("market.session_closed", "2025-11-19", later.close_ns),
    ]
    settled = [
        e.payload
        for e in reader.events(topic="trade.executed")
        if e.payload["order_id"].startswith("EXP-")
    ]
    assert len(settled) == 2 and all(t["ts"] == expiry_close for t in settled)
