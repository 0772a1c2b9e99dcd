"""The lab across sessions and restarts: what resumes, closes and expires from day to day."""

from unittest import mock

import pytest

from tests.test_lab import fast_lab, wait_for
from tradelab.errors import (
    InvalidInputError,
    OrderRejectedError,
)
from tradelab.lab import Lab
from tradelab.runner import Strategy


def test_restart_resumes_after_the_last_journaled_mark_without_rejournaling(tmp_path):
    path = tmp_path / "lab.duckdb"
    lab = fast_lab(path).start()
    assert wait_for(lambda: (lab.store.get("market.bars.NIFTY.15m") or ()) != ())
    lab.stop()
    bars_before = list(lab.store.get("market.bars.NIFTY.15m"))
    marks_before = lab.store.get("market.marks")
    hash_before = lab.store.state_hash()

    again = fast_lab(path).start()
    try:
        # Recovery gives back exactly the state the first run stopped with.
        assert again.engine.recovery_report.state_hash == hash_before
        assert again.resumed_after_ns == max(m["ts"] for m in marks_before.values())
        # Its clock starts there, not at the open: an order before the first tick, the status
        # line of a session that had already ended.
        assert again.clock.now_ns() >= again.resumed_after_ns
        assert wait_for(lambda: len(again.store.get("market.bars.NIFTY.15m")) > len(bars_before))
    finally:
        again.stop()
    bars = again.store.get("market.bars.NIFTY.15m")
    starts = [bar["start"] for bar in bars]
    assert starts == sorted(set(starts)), "a bar was journaled twice after the restart"
    assert [dict(b) for b in bars[: len(bars_before)]] == [dict(b) for b in bars_before]


def test_a_restart_on_another_market_than_the_open_session_is_refused_naming_both(tmp_path):
    path = tmp_path / "lab.duckdb"
    lab = fast_lab(path).start()
    assert wait_for(lambda: lab.store.get("market.session") is not None)
    seed = lab.config.seed
    source = lab.store.get("market.session")["source"]
    assert source.startswith(f"the simulated market of seed {seed} (settings ")
    lab.stop()
    other = Lab(journal_path=str(path), ticks_per_second=10_000, speed=600.0, seed=seed + 1)
    with pytest.raises(
        InvalidInputError, match=rf"open on the simulated market of seed {seed} \(settings"
    ) as e:
        other.start()
    # Another pace draws another path from the same seed: the index jumped at the restart.
    faster = Lab(journal_path=str(path), ticks_per_second=10_000, speed=1200.0, seed=seed)
    with pytest.raises(InvalidInputError, match="its settings .--speed, --ticks-per-second"):
        faster.start()
    # serve has no --journal: the message names where each command takes its journal.
    assert "lab.journal_path in the --config file for serve" in str(e.value)
    again = fast_lab(path).start()  # the journal's own market goes on; nothing was left held
    try:
        assert again.status()["state"] == "running"
    finally:
        again.stop()


def test_a_restart_already_halted_cancels_the_orders_the_halt_forbids(tmp_path):
    # A halt whose cancels failed (a broker down at that moment) leaves an entry working at
    # the broker: the next start cancels it before the feed can fill it.
    path = tmp_path / "lab.duckdb"
    lab = fast_lab(path).start()
    symbol = lab.feed.symbols[2]
    lab.wait_for_quote(symbol)
    order_id = lab.place_order(symbol, "BUY", 75, order_type="LIMIT", limit_price=0.05)
    # Journaled as a halt is, without the desk's cancels (as when they failed), and with no
    # risk monitor to retry them (as when the session was killed before its next check).
    lab.risk_monitor.stop()
    lab.engine.submit("risk.halted", {"reason": "test", "by": "ops", "mode": "halted"}, wait=True)
    assert lab.store.get(f"trading.orders.{order_id}")["status"] == "accepted"
    lab.stop()
    again = fast_lab(path).start()
    try:
        assert again.store.get(f"trading.orders.{order_id}")["status"] == "cancelled"
        assert order_id not in again.broker.account.working
    finally:
        again.stop()


class OrdersInOnStop(Strategy):
    """Buys a call when it is stopped: after the session closed, at the end of a run."""

    strategy_name = "orders_in_on_stop"

    def on_start(self, ctx):
        self.symbol, self.refused = None, None

    def on_tick(self, ctx, tick):
        if tick["symbol"].endswith("CE"):
            self.symbol = tick["symbol"]

    def on_stop(self, ctx):
        try:
            ctx.buy(self.symbol, ctx.universe.lot_size(ctx.universe.parse(self.symbol)))
        except OrderRejectedError as exc:
            self.refused = str(exc)


def whole_session_lab(path, strategy) -> Lab:
    """A whole simulated session, as fast as it goes (2 ticks a second of market time)."""
    return Lab(
        journal_path=str(path),
        ticks_per_second=2,
        as_fast_as_possible=True,
        strikes_each_side=1,
        strategies=[strategy],
    )


def test_an_order_after_the_session_closed_is_refused_as_after_hours_not_filled(tmp_path):
    strategy = OrdersInOnStop()
    lab = whole_session_lab(tmp_path / "lab.duckdb", strategy).start()
    try:
        assert lab.session_finished.wait(120)
    finally:
        lab.stop()
    assert "market is closed at" in strategy.refused and "15:30:00 IST" in strategy.refused
    assert lab.status()["fills"] == 0


def test_a_paced_replay_stopped_overnight_opens_the_next_day_when_restarted(tmp_path):
    from tradelab.journal import JournalReader

    rows = ["Date,Open,High,Low,Close"]
    for day in (3, 4):  # 09:15-09:29 on Monday and on Tuesday
        rows += [f"2025-11-{day:02d} 09:{15 + m:02d},100,101,99,100" for m in range(15)]
    bars = tmp_path / "acme.csv"
    bars.write_text("\n".join(rows) + "\n")
    journal = tmp_path / "r.duckdb"
    # 23.75 market hours overnight at 40,000x: a wait of about 2 s.
    settings = dict(feed="replay", replay_path=str(bars), strategy="none", speed=40_000.0)
    lab = Lab(journal_path=str(journal), **settings).start()
    try:
        assert wait_for(
            lambda: (lab.store.get("market.session", None) or {}).get("status") == "closed"
        )
        # In the overnight wait: Monday closed, Tuesday not open yet.
        assert lab.store.get("market.session")["session_date"] == "2025-11-03"
    finally:
        lab.stop()
    with Lab(journal_path=str(journal), **settings) as lab:
        assert lab.session_finished.wait(20)
    reader = JournalReader(journal)

    def dates(topic):
        return [e.payload["session_date"] for e in reader.events(topic=topic)]

    days = ["2025-11-03", "2025-11-04"]
    assert dates("market.session_opened") == dates("market.session_closed") == days
    assert dates("pnl.session_reset") == days


class RestsABuy(Strategy):
    """Rests a buy limit far below a call's price on its first tick of it."""

    strategy_name = "rests_a_buy"

    def on_start(self, ctx):
        self.order = None

    def on_tick(self, ctx, tick):
        if self.order is None and tick["symbol"].endswith("CE"):
            lot = ctx.universe.lot_size(ctx.universe.parse(tick["symbol"]))
            self.order = ctx.buy(tick["symbol"], lot, order_type="LIMIT", limit_price=0.05)


def test_a_day_order_not_filled_by_the_close_is_cancelled_then(tmp_path):
    # NSE orders are day orders: it stayed working overnight and filled days later.
    from tradelab.journal import JournalReader
    from tradelab.lab_sessions import DAY_ORDER_EXPIRED

    strategy = RestsABuy()
    journal = tmp_path / "lab.duckdb"
    lab = whole_session_lab(journal, strategy).start()
    try:
        assert lab.session_finished.wait(120)
        lab.engine.wait_applied()
        assert (lab.store.get("trading.working", None) or {}) == {}
    finally:
        lab.stop()
    [cancelled] = [e.payload for e in JournalReader(journal).events(topic="order.cancelled")]
    assert cancelled["order_id"] == strategy.order and cancelled["reason"] == DAY_ORDER_EXPIRED


def test_orders_left_from_an_earlier_day_expire_when_the_next_opens():
    import datetime as dt
    from types import SimpleNamespace

    from tradelab.lab_sessions import DAY_ORDER_EXPIRED, expire_day_orders
    from tradelab.market.instruments import IST

    def ns(day, hour):
        return int(dt.datetime(2025, 11, day, hour, tzinfo=IST).timestamp()) * 10**9

    orders = {"old": {"sent_ts": ns(13, 15)}, "today": {"sent_ts": ns(18, 10)}, "unknown": {}}
    store = SimpleNamespace(
        get=lambda path, default=None: {"trading.working": orders, "trading.orders": orders}[path]
    )
    asked = []
    desk = SimpleNamespace(cancel_order=lambda oid, reason: asked.append((oid, reason)))
    assert expire_day_orders(store, desk, sent_before=dt.date(2025, 11, 18)) == ["old"]
    assert asked == [("old", DAY_ORDER_EXPIRED)]


def test_a_journal_that_named_its_simulated_market_by_seed_alone_goes_on_with_that_seed(caplog):
    from datetime import datetime

    from tradelab.lab_sessions import check_same_market
    from tradelab.market.instruments import IST

    resume_ns = int(datetime(2025, 11, 13, 10, tzinfo=IST).timestamp()) * 10**9
    held = {"status": "open", "session_date": "2025-11-13"}

    class Store:
        def __init__(self, source):
            self.session = {**held, "source": source}

        def get(self, path, default=None):
            return self.session if path == "market.session" else default

    now = "the simulated market of seed 7 (settings 0123abcd)"
    check_same_market(Store("the simulated market of seed 7"), now, resume_ns)
    # Said: nothing tells whether this run's settings draw that day's path.
    assert "did not record the simulated market's settings" in caplog.text
    with pytest.raises(InvalidInputError, match="seed 8"):
        check_same_market(Store("the simulated market of seed 8"), now, resume_ns)


def test_every_simulated_market_setting_that_draws_the_path_is_part_of_its_source():
    # The quote sizes' bound moves every later price draw: a restart with another
    # max_quote_lots was accepted on a different path.
    from types import SimpleNamespace

    from tradelab.lab_config import LabConfig
    from tradelab.lab_sessions import market_source
    from tradelab.market.feeds import SimulatedFeedConfig

    def source(**settings):
        feed = SimpleNamespace(config=SimulatedFeedConfig(**settings), tick_interval_ns=10**8)
        return market_source(LabConfig(), feed)

    assert source() == source()
    for setting in ({"max_quote_lots": 1}, {"spot": 30_000.0}, {"atm_iv": 0.2}):
        assert source(**setting) != source(), setting


def test_a_restart_on_a_later_day_does_not_close_the_earlier_day_after_opening_its_own():
    # The first tick of the new day "crossed" from the resume point's day: the earlier day's
    # close was journaled after the new day's open, so the new day read closed all day (no
    # same-market check on a restart, the console's header "market closed").
    from datetime import datetime
    from types import SimpleNamespace

    from tradelab.lab_days import TradingDays
    from tradelab.market.instruments import IST

    closed = []
    store = SimpleNamespace(get=lambda path, default=None: default)
    lab = SimpleNamespace(
        engine=SimpleNamespace(store=store),
        router=SimpleNamespace(close_session=closed.append),
    )
    days = TradingDays(lab)
    days._opened_date = "2025-11-13"  # this Lab opened the new day
    day_before = int(datetime(2025, 11, 12, 15, 30, tzinfo=IST).timestamp()) * 10**9
    days.close_day(day_before)
    assert closed == []


def test_wait_for_quote_after_a_restart_waits_for_this_runs_quote(tmp_path):
    # A recovered journal holds earlier sessions' marks: it returned one at once, and the
    # market order after it was refused "no quote" on a later day.
    path = tmp_path / "lab.duckdb"
    with fast_lab(path) as lab:
        symbol = lab.feed.symbols[2]
        lab.wait_for_quote(symbol)
    again = fast_lab(path).start()
    try:
        mark = again.wait_for_quote(symbol)
        assert again.resumed_after_ns is not None and mark["ts"] > again.resumed_after_ns
    finally:
        again.stop()


def test_running_a_journal_again_past_its_whole_session_says_why_nothing_plays(tmp_path, caplog):
    path = tmp_path / "lab.duckdb"
    for run in range(2):
        lab = Lab(
            journal_path=str(path),
            ticks_per_second=1,
            as_fast_as_possible=True,
            strikes_each_side=1,
            strategies=[],
        )
        with caplog.at_level("WARNING", logger="tradelab.lab"):
            lab.start()
            try:
                assert lab.session_finished.wait(120)
            finally:
                lab.stop()
        said = "nothing left to play" in caplog.text
        assert (said, lab.ticks_played > 0) == ((False, True) if run == 0 else (True, False))
    assert "2025-11-12 15:29 IST" in caplog.text and "start a new journal" in caplog.text


def test_a_day_is_closed_even_while_the_store_still_shows_the_day_before_closed():
    # Paced under load, the kernel had not applied the new day's open when that day closed:
    # the store still read the day before "closed", so the new day's close was skipped and
    # the journal held an opened session that never closed.
    from datetime import datetime
    from types import SimpleNamespace

    from tradelab.lab_days import TradingDays
    from tradelab.market.instruments import IST

    day_before = {"session_date": "2025-11-03", "status": "closed", "ts": 0}
    store = SimpleNamespace(
        get=lambda path, default=None: day_before if path == "market.session" else default
    )
    closed = []
    hours = SimpleNamespace(is_trading_day=lambda day: False)
    lab = SimpleNamespace(
        engine=SimpleNamespace(store=store, submit=lambda *a, **k: None),
        router=SimpleNamespace(close_session=closed.append),
        clock=SimpleNamespace(now_ns=lambda: 1 << 62, set=lambda ns: None),
        broker=SimpleNamespace(hours=hours),
        desk=None,
        risk_monitor=None,
    )
    days = TradingDays(lab)
    days._opened_date = "2025-11-04"
    last_tick = int(datetime(2025, 11, 4, 9, 44, tzinfo=IST).timestamp()) * 10**9
    with (
        mock.patch("tradelab.lab_days.expire_day_orders"),
        mock.patch("tradelab.lab_days.settle_expired_options", return_value=[]),
    ):
        days.close_day(last_tick)
    assert closed == [last_tick]
