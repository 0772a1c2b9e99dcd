from collections import defaultdict
from datetime import datetime

import pytest
from contracts.local_kernel import LocalKernel

from tradelab.errors import InvalidInputError
from tradelab.market.bars import BarAggregator
from tradelab.market.feeds import SimulatedFeed, SimulatedFeedConfig
from tradelab.market.instruments import IST
from tradelab.market.reducers import BARS_KEPT
from tradelab.market.router import MarketDataRouter
from tradelab.market.ticks import Tick


def ist(h, m, s=0):
    return int(datetime(2025, 11, 12, h, m, s, tzinfo=IST).timestamp()) * 10**9


def px(symbol, ts, price, volume=0):
    return Tick(symbol, ts, price, price, price, 0, 0, volume)


def test_bars_align_to_the_0915_open_and_close_when_time_passes_their_end():
    agg = BarAggregator(("15m", "1h"))
    assert agg.on_tick(px("NIFTY", ist(9, 15), 100.0, 1)) == []
    assert agg.on_tick(px("NIFTY", ist(9, 20), 103.0, 2)) == []
    assert agg.on_tick(px("NIFTY", ist(9, 29, 59), 99.0, 3)) == []
    closed = agg.on_tick(px("OTHER", ist(9, 30), 5.0))  # any symbol's tick closes by time
    assert [(b.symbol, b.interval) for b in closed] == [("NIFTY", "15m")]
    bar = closed[0]
    assert (bar.start, bar.end) == (ist(9, 15), ist(9, 30))
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ticks) == (
        100.0,
        103.0,
        99.0,
        99.0,
        6,
        3,
    )
    closed = agg.on_tick(px("NIFTY", ist(10, 15), 101.0))
    hour = [b for b in closed if b.interval == "1h" and b.symbol == "NIFTY"][0]
    assert (hour.start, hour.end, hour.high, hour.low) == (ist(9, 15), ist(10, 15), 103.0, 99.0)
    # OTHER's bars (09:30-09:45, 09:15-10:15) closed at 10:15 too; only NIFTY's are open.
    assert {(b.symbol, b.interval, b.start) for b in agg.flush()} == {
        ("NIFTY", "15m", ist(10, 15)),
        ("NIFTY", "1h", ist(10, 15)),
    }


def test_the_last_bar_of_the_session_ends_at_the_close_not_after_it():
    agg = BarAggregator(("15m", "1h"))
    agg.on_tick(px("NIFTY", ist(15, 20), 100.0))
    last_hour = agg.open_bar("NIFTY", "1h")
    assert (last_hour.start, last_hour.end) == (ist(15, 15), ist(15, 30))  # not 16:15
    closed = agg.on_tick(px("NIFTY", ist(15, 30), 101.0))  # the close's own tick closes both
    assert {(b.interval, b.end) for b in closed} == {("15m", ist(15, 30)), ("1h", ist(15, 30))}
    # A file of other hours: a tick after the close opens a whole bar, once.
    after = agg.open_bar("NIFTY", "1h")
    assert (after.start, after.end) == (ist(15, 15), ist(16, 15))
    assert agg.on_tick(px("NIFTY", ist(15, 40), 102.0)) == []


def test_a_label_that_is_not_a_bar_length_is_rejected():
    for label in ("15min", "0m", "7x", "1d"):
        with pytest.raises(InvalidInputError, match=f"bar interval '{label}' is not supported"):
            BarAggregator(("15m", label))


def test_any_length_in_seconds_minutes_or_hours_is_built_from_the_open():
    # A replayed file's own length (7m here) is built beside the session's.
    aggregator = BarAggregator(("15m", "7m"))
    closed = []
    for minute in range(16):
        closed += aggregator.on_tick(px("NIFTY", ist(9, 15 + minute), 100.0 + minute))
    minutes = 60 * 10**9
    spans = [
        (b.interval, (b.start - ist(9, 15)) // minutes, (b.end - b.start) // minutes)
        for b in closed
    ]
    assert spans == [("7m", 0, 7), ("7m", 7, 7), ("15m", 0, 15)]


def run_session(seed=11, n_ticks=None):
    kernel = LocalKernel()
    feed = SimulatedFeed(
        SimulatedFeedConfig(
            seed=seed,
            ticks_per_second=50,
            speed=60.0,
            as_fast_as_possible=True,
            strikes_each_side=1,
        )
    )
    quotes = []
    router = MarketDataRouter(kernel.submit, kernel.publish_transient, quote_sinks=[quotes.append])
    router.open_session(feed.open_ns)
    feed.run(router.on_tick, max_ticks=n_ticks)
    router.close_session(feed.clock.now_ns())
    return kernel, feed, router, quotes


def test_ticks_stay_transient_while_bars_and_coalesced_marks_are_journaled():
    kernel, feed, router, quotes = run_session()
    # 50 ticks/s at 60x: 1.2 s of exchange time per tick, 6 h 15 min session = 18,750 ticks.
    assert len(kernel.transient) == len(quotes) == router.ticks_routed == 18_750
    assert {e.topic for e in kernel.transient} == {"market.tick"}
    topics = set(kernel.topics())
    assert "market.tick" not in topics
    assert topics == {
        "market.session_opened",
        "market.bar",
        "mark.updated",
        "market.session_closed",
    }
    marks = defaultdict(list)
    for e in kernel.events:
        if e.topic == "mark.updated":
            marks[e.payload["symbol"]].append(e.payload["ts"])
    for times in marks.values():
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= 10**9  # at most one mark per second of exchange time
    bars = kernel.store.get("market.bars.NIFTY.15m")
    assert len(bars) == 25 and bars[0]["start"] == feed.open_ns
    assert len(kernel.store.get("market.bars.NIFTY.1h")) == 7  # 6 full hours + 15:15-15:30
    assert kernel.store.get("market.session")["status"] == "closed"
    last = [t for t in quotes if t.symbol == "NIFTY"][-1]
    assert kernel.store.get("market.marks.NIFTY")["price"] == last.price


def test_the_same_seed_builds_the_same_market_state():
    first, *_ = run_session(seed=5, n_ticks=3000)
    second, *_ = run_session(seed=5, n_ticks=3000)
    other, *_ = run_session(seed=6, n_ticks=3000)
    assert first.store.state_hash() == second.store.state_hash()
    assert first.store.state_hash() != other.store.state_hash()
    assert first.replayed_store().state_hash() == first.store.state_hash()


def test_stored_bar_history_is_bounded():
    kernel = LocalKernel()
    for i in range(BARS_KEPT + 10):
        kernel.submit(
            "market.bar",
            {
                "symbol": "NIFTY",
                "interval": "15m",
                "start": i,
                "end": i + 1,
                "open": 1.0,
                "high": 1.0,
                "low": 1.0,
                "close": 1.0,
                "volume": 0,
                "ticks": 1,
            },
        )
    bars = kernel.store.get("market.bars.NIFTY.15m")
    assert len(bars) == BARS_KEPT and bars[0]["start"] == 10 and bars[-1]["start"] == BARS_KEPT + 9


def test_a_mark_keeps_a_small_prices_digits():
    """Marks were rounded to 4 decimals: a coin quoted at 0.0000401 was marked 0.0, so a long
    showed its whole notional as a loss and the daily loss limit halted trading."""
    submitted = []
    router = MarketDataRouter(lambda topic, payload, **kw: submitted.append((topic, payload)))
    router.on_tick(Tick("COIN", ist(9, 15), 0.0000400, 0.0000402, 0.0000401, 1, 1, 0))
    router.on_tick(Tick("EURUSD", ist(9, 15), 1.08113, 1.08115, 1.08114, 1, 1, 0))
    marks = {p["symbol"]: p["price"] for topic, p in submitted if topic == "mark.updated"}
    assert marks == {"COIN": 0.0000401, "EURUSD": 1.08114}


def test_a_restart_drops_a_bar_the_journal_holds_already():
    """A bar is journaled when a tick past its end arrives, while that tick's mark may still
    be held back: the restart, resumed from the older mark, built the bar again from part of
    its ticks and journaled it twice (seen under load in the Lab's restart test)."""
    submitted = []
    router = MarketDataRouter(
        lambda topic, payload, **kw: submitted.append((topic, payload)), intervals=("15m",)
    )
    router.skip_bars_through({("NIFTY", "15m"): ist(9, 15)})
    for minute in (20, 29, 31, 46):  # ticks from the held mark on, past the bar's end
        router.on_tick(px("NIFTY", ist(9, minute), 100.0 + minute))
    bars = [p["start"] for topic, p in submitted if topic == "market.bar"]
    assert bars == [ist(9, 30)]  # 09:15 is the journal's; 09:30 is new
    assert router.bars_skipped == 1


def test_a_restart_just_after_a_bars_last_tick_still_journals_that_bar_from_all_its_ticks():
    # A stop after a bar's last tick (its mark journaled) and before the next bar's first:
    # the restart skipped every tick of that bar, so no builder held it and it was never
    # journaled (a hole in `bars`, no on_bar for it).
    from tradelab.lab_sessions import resumed_ticks

    ticks = [px("NIFTY", ist(9, 37, s), 100.0 + p) for s, p in ((0, 0), (15, 5), (30, -3), (45, 2))]
    ticks.append(px("NIFTY", ist(9, 38), 101.0))
    submitted = []
    router = MarketDataRouter(
        lambda topic, payload, **kw: submitted.append((topic, payload)), intervals=("1m",)
    )
    played = resumed_ticks(
        ticks, ist(9, 37, 45), lambda tick: None, router.build_bars_only, bars_from_ns=ist(9, 36)
    )
    for tick in played:
        router.on_tick(tick)
    bars = [p for topic, p in submitted if topic == "market.bar"]
    assert [(b["start"], b["open"], b["high"], b["low"], b["close"]) for b in bars] == [
        (ist(9, 37), 100.0, 105.0, 97.0, 102.0)
    ]
    assert not [p for topic, p in submitted if topic == "mark.updated" and p["ts"] < ist(9, 38)]
