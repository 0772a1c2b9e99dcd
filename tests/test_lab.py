"""The embedded default session (what `make console` runs): wiring, orders, restart resume."""

import subprocess
import sys
import time

import pytest

from tradelab.errors import (
    InvalidInputError,
    JournalInUseError,
    LifecycleError,
    OrderRejectedError,
)
from tradelab.lab import Lab
from tradelab.runner import Strategy
from tradelab.trading.risk import RiskConfig


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def fast_lab(path, strategy="none", **settings):
    # 10K ticks/s at 600x: the whole session takes ~40 s, so tests stop it part way.
    return Lab(
        journal_path=str(path),
        ticks_per_second=10_000,
        speed=600.0,
        strikes_each_side=1,
        strategy=strategy,
        **settings,
    )


def test_lab_books_an_order_against_the_simulated_market(tmp_path):
    with fast_lab(tmp_path / "lab.duckdb") as lab:
        symbol = lab.feed.symbols[2]
        assert wait_for(lambda: lab.store.get(f"market.marks.{symbol}") is not None)
        lab.place_order(symbol, "BUY", 75, strategy="manual")
        assert wait_for(
            lambda: (
                (lab.store.get(f"trading.positions.manual:{symbol}") or {}).get("net_quantity")
                == 75
            )
        )
        assert lab.status()["open_positions"] == 1


def test_order_rate_is_counted_in_market_time_whatever_the_replay_speed(tmp_path):
    # At 600x a market minute passes in 0.1 s: the limit counts the session's minutes, as a
    # backtest of the same session would, not the wall clock's.
    with fast_lab(tmp_path / "lab.duckdb", risk=RiskConfig(max_orders_per_minute=1)) as lab:
        symbol = lab.feed.symbols[2]
        lab.wait_for_quote(symbol)
        lab.place_order(symbol, "BUY", 75)
        later = lab.clock.now_ns() + 61 * 10**9
        assert wait_for(lambda: lab.clock.now_ns() > later)
        lab.place_order(symbol, "BUY", 75)  # about 0.1 s of wall time after the first
        assert wait_for(lambda: lab.status()["fills"] == 2)


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


def test_tradelab_run_stops_cleanly_and_reports_the_journal(tmp_path):
    path = tmp_path / "run.duckdb"
    cmd = [
        sys.executable,
        "-m",
        "tradelab.cli",
        "run",
        "--journal",
        str(path),
        "--duration",
        "1",
        "--every",
        "0.2",
        "--ticks-per-second",
        "2000",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "recovered" in done.stdout and "stopped cleanly at seq" in done.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "snapshot" in again.stdout.splitlines()[0]


def test_default_lab_trades_the_short_straddle_within_seconds_and_stops_its_runner(tmp_path):
    # The default strategy sells the ATM straddle at 09:20: 5 session minutes, 0.5 s at 600x.
    lab = Lab(
        journal_path=str(tmp_path / "lab.duckdb"),
        ticks_per_second=10_000,
        speed=600.0,
        strikes_each_side=2,
    ).start()
    try:
        assert lab.config.strategy == "short_straddle"
        # Generous (2 shared cores); the straddle fills seconds after the start.
        assert wait_for(lambda: lab.status()["fills"] >= 2, timeout=60)
    finally:
        lab.stop()
    first = sorted(lab.store.get("trading.trades").values(), key=lambda t: t["seq"])[:2]
    # The entry: both legs sold (a leg's stop may already have bought it back since).
    assert [(t["strategy"], t["side"]) for t in first] == [("short_straddle", "SELL")] * 2
    assert sorted(t["symbol"][-2:] for t in first) == ["CE", "PE"]
    assert lab.store.get("runner.status") == "stopped"


def test_lab_refuses_an_unknown_strategy_parameter_before_opening_the_journal(tmp_path):
    import pytest

    from tradelab.errors import InvalidInputError

    path = tmp_path / "lab.duckdb"
    with pytest.raises(InvalidInputError, match="no parameter 'fast'.*entry_time"):
        Lab(journal_path=str(path), strategy_params={"fast": "3"})
    assert not path.exists()


@pytest.mark.parametrize(
    "arguments, said",
    [
        ({"risk": {"daily_loss_limit": 0}}, r"risk must be a RiskConfig .*got dict .*RiskConfig\("),
        ({"engine": {"group_commit_ms": 5}}, r"engine must be an EngineConfig .*got dict"),
        ({"config": 5}, r"config must be a LabConfig .*got int 5"),
        ({"config": {"seed": 1}}, r"config must be a LabConfig .*Lab\(\*\*settings\)"),
        ({"broker": "paper"}, r"broker must be a PaperBrokerConfig .*got str 'paper'"),
    ],
)
def test_a_settings_object_of_the_wrong_kind_is_refused_naming_it(tmp_path, arguments, said):
    # A risk dict used to be taken: the daily loss monitor died on its thread and every order
    # raised an AttributeError from inside the risk gate.
    path = tmp_path / "lab.duckdb"
    config = arguments.pop("config", None)
    with pytest.raises(InvalidInputError, match=said):
        Lab(config, journal_path=str(path), strategy="none", **arguments)
    assert not path.exists()


def test_a_feed_stall_needs_a_paced_feed(tmp_path):
    import pytest

    from tradelab.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="feed_stall_after_seconds needs a paced feed"):
        Lab(
            journal_path=str(tmp_path / "j.duckdb"),
            as_fast_as_possible=True,
            feed_stall_after_seconds=1.0,
        )
    assert not (tmp_path / "j.duckdb").exists()


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


def test_a_lab_refused_for_a_journal_another_lab_holds_leaves_that_labs_account(tmp_path):
    path = tmp_path / "lab.duckdb"
    # Made before the first, `second` made the account file, as when two runs start together.
    second = fast_lab(path)
    first = fast_lab(path)
    account = tmp_path / "lab.duckdb.broker.sqlite"
    with first:
        with pytest.raises(JournalInUseError, match="held by an engine running in this process"):
            second.start()
        assert account.exists()  # the running session's paper account


def test_a_second_start_is_refused_and_leaves_the_running_session_trading(tmp_path):
    # A re-run notebook cell: the running Lab's broker, account file and feed carry on.
    path = tmp_path / "lab.duckdb"
    account = tmp_path / "lab.duckdb.broker.sqlite"
    lab = fast_lab(path)
    with lab:
        with pytest.raises(LifecycleError, match="a Lab starts once"):
            lab.start()
        assert account.exists()
        symbol = lab.feed.symbols[2]
        lab.wait_for_quote(symbol)
        lab.place_order(symbol, "BUY", 75, strategy="manual")
        assert wait_for(lambda: lab.status()["fills"] == 1)
        assert lab._feed_thread.is_alive()
    with pytest.raises(LifecycleError, match="a Lab starts once"):
        lab.start()  # stopped: still refused, and its account kept for the next Lab
    assert account.exists()


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


class StopsTheLab(Strategy):
    """Calls lab.stop() from its first tick's hook, and keeps what it got."""

    strategy_name = "stops_the_lab"

    def on_start(self, ctx):
        self.lab, self.refused = None, None

    def on_tick(self, ctx, tick):
        if self.refused is None and self.lab is not None:
            try:
                self.lab.stop()
            except LifecycleError as exc:
                self.refused = exc


def test_stop_from_a_strategys_hook_or_a_bus_handler_is_refused_with_nothing_stopped(tmp_path):
    # From a hook it raised a bare RuntimeError ("cannot join current thread") after stopping
    # the feed; from a bus handler the LifecycleError came after feed, runner, monitors had
    # stopped: either way a session that no longer traded with its engine running.
    strategy = StopsTheLab()
    with fast_lab(tmp_path / "lab.duckdb", strategies=[strategy]) as lab:
        strategy.lab = lab
        assert wait_for(lambda: strategy.refused is not None)
        assert "from a strategy's hook" in str(strategy.refused)
        handled = []

        def stop_from_handler(event):
            if not handled:
                try:
                    lab.stop()
                except LifecycleError as exc:
                    handled.append(exc)

        lab.engine.bus.subscribe("market.bar", stop_from_handler)
        assert wait_for(lambda: handled)
        assert "bus handler" in str(handled[0])
        seq = lab.store.version
        assert wait_for(lambda: lab.store.version > seq + 50)  # the feed still runs
        assert lab._feed_thread.is_alive() and lab.engine.state == "running"


def test_a_bus_handler_ordering_beside_a_thread_ordering_the_same_symbol_never_deadlocks(tmp_path):
    # The desk held a lock per strategy and symbol while it waited for the kernel to apply the
    # submission; a bus handler (on the kernel thread) ordering the same pair waited for that
    # lock: the kernel stopped for good, and so did the session.
    import threading

    lab = fast_lab(tmp_path / "lab.duckdb")
    hedged = []

    def hedge(event):
        trade = event.payload
        if trade.get("strategy") == "demo" and trade.get("side") == "BUY":
            hedged.append(
                lab.place_order(trade["symbol"], "SELL", trade["quantity"], strategy="demo")
            )

    lab.engine.bus.subscribe("trade.executed", hedge, name="hedger")
    with lab:
        symbol = lab.feed.contracts[2].symbol
        lot = lab.feed.universe.lot_size(symbol)
        lab.wait_for_quote(symbol)
        bought = []
        buyer = threading.Thread(
            target=lambda: bought.extend(
                lab.place_order(symbol, "BUY", lot, strategy="demo") for _ in range(20)
            ),
            daemon=True,
        )
        buyer.start()
        buyer.join(60)
        assert not buyer.is_alive() and len(bought) == 20
        assert wait_for(lambda: len(hedged) == 20)


def test_a_stop_while_threads_place_orders_leaves_no_order_the_broker_never_had(tmp_path):
    # The engine stopped between an order's journaled submission and the broker's answer:
    # the answer was lost, and the order stayed working in the book for good, unknown to the
    # broker (its caller told "engine is stopping" instead of the broker's rejection).
    import threading

    lab = fast_lab(tmp_path / "lab.duckdb").start()
    symbol = lab.feed.contracts[2].symbol
    lot = lab.feed.universe.lot_size(symbol)
    lab.wait_for_quote(symbol)
    stop, refused = threading.Event(), []

    def place(i):
        while not stop.is_set():
            try:  # far past the paper account's margin: the broker rejects each one
                lab.place_order(symbol, "BUY", lot * 1000, strategy=f"p{i}")
            except (OrderRejectedError, LifecycleError) as exc:
                refused.append(type(exc).__name__)

    placers = [threading.Thread(target=place, args=(i,)) for i in range(4)]
    for placer in placers:
        placer.start()
    assert wait_for(lambda: refused.count("OrderRejectedError") > 20)
    lab.stop()
    stop.set()
    for placer in placers:
        placer.join(30)
    orders = lab.store.get("trading.orders") or {}
    assert [o for o, order in orders.items() if order["status"] == "submitted"] == []
    assert not lab.store.get("trading.working")
    with pytest.raises(LifecycleError, match="stopping"):
        lab.place_order(symbol, "BUY", lot)


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
