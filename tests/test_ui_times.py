"""Every time the console shows is IST (Asia/Kolkata) and says which clock: the header's market
clock and the journal time of its last seq, the tape's journal time and the trades' exchange
time (a simulated session runs the market clock 60x the wall's)."""

from __future__ import annotations

import datetime as dt
import re
from datetime import UTC, datetime
from types import SimpleNamespace

from tradelab.ui.frames import TIME_COLUMN, ist_day_ms, ist_ms, trades
from tradelab.ui.header import Header
from tradelab.ui.tape import TAPE_COLUMNS, tape_cells
from tradelab.ui.view import Changes, TapeRow

# 2026-01-05 03:45:06.789 UTC is 09:15:06.789 in Mumbai (UTC+05:30, no daylight saving).
NS = int(datetime(2026, 1, 5, 3, 45, 6, tzinfo=UTC).timestamp()) * 10**9 + 789_000_000
DAY = dt.date(2026, 1, 5)


def test_ist_ms_is_exchange_time_to_the_millisecond():
    assert ist_ms(NS) == "09:15:06.789"
    # Fills and signals carry their day: the book keeps several sessions' fills.
    assert ist_day_ms(NS) == "2026-01-05 09:15:06.789"


def header_changes(last_event_ns, last_tick_ns, **more):
    """What the shared view hands a header: seq 41, the engine's and the feed's last times."""
    return Changes(
        version=3,
        sections=frozenset(),
        tape=(),
        alerts=(),
        resync=False,
        last_seq=41,
        last_event_ns=last_event_ns,
        last_tick_ns=last_tick_ns,
        **more,
    )


def test_header_time_is_ist_and_labelled_and_seq_stays_a_plain_integer():
    header = Header(stale_after_seconds=5.0)
    # An hour ahead of the wall: a fast simulated session.
    changes = header_changes(NS, NS, market_ns=NS + 3_600 * 10**9)
    header.apply_changes(changes, now_ns=NS + 1_000_000)
    assert header.last_time.text == "journaled 09:15:06.789 IST"
    assert header.market_time.text == "market Mon 05 Jan 10:15 IST"
    assert header.last_seq.text == "41"
    assert header.last_time.css == "tl-last-time"


def test_the_stale_marker_says_how_long_the_feed_and_the_engine_have_been_silent():
    header = Header(stale_after_seconds=5.0)
    changes = header_changes(NS + 25_000_000_000, NS)
    assert header.apply_changes(changes, now_ns=NS + 31_900_000_000)
    assert header.stale_text == "STALE: no feed tick for 31.9 s; no engine event for 6.9 s"
    # A paced replay at 1x waits 15 s between a 1m bar's ticks: quiet on schedule, not stale.
    later = NS + 31_900_000_000
    assert not header.apply_changes(changes, now_ns=later, feed_late_s=-3.0)
    assert header.feed.text == "feed: live" and header.stale_text == ""
    assert header.apply_changes(changes, now_ns=later, feed_late_s=6.0)  # overdue: a dead line
    assert header.feed.text == "feed: silent"


def test_tape_and_trades_label_their_time_column():
    (row,) = tape_cells([TapeRow(1, 7, "trade.executed", "k", NS, NS, {})], today=DAY)
    assert TIME_COLUMN == "journal time (IST)"
    assert TAPE_COLUMNS == ("seq", "journal time (IST)", "topic", "key")
    assert row == ("7", "09:15:06.789", "trade.executed", "k")
    store = SimpleNamespace(get=lambda _path, _default: {"t1": {"seq": 7, "ts": NS, "price": 1.0}})
    frame = trades(SimpleNamespace(store=store))
    assert (
        frame.iloc[0]["exchange time (IST)"] == "2026-01-05 09:15:06.789"
    )  # the fill's market clock, dated
    assert not any(re.fullmatch("time", c) for c in frame.columns)


def test_active_signals_list_each_signal_with_its_market_and_journal_times():
    from tradelab.ui.frames import signals

    state = {
        "signals.active": {
            "s1": {"signal_id": "s1", "seq": 5, "detected_ts": NS, "side": "BUY"},
            "s2": {"signal_id": "s2", "seq": 9, "detected_ts": NS, "side": "SELL", "ts": NS},
        }
    }
    lab = SimpleNamespace(store=SimpleNamespace(get=lambda path, default: state.get(path)))
    frame = signals(lab)
    times = ["exchange time (IST)", "journal time (IST)"]
    assert list(frame.columns) == ["signal_id", *times, "seq", "side"]
    assert list(frame["signal_id"]) == ["s2", "s1"] and frame.iloc[0]["side"] == "SELL"
    # The market clock only where the payload carries one (a strategy's signal always does).
    assert list(frame["exchange time (IST)"]) == ["2026-01-05 09:15:06.789", ""]
    empty = signals(SimpleNamespace(store=SimpleNamespace(get=lambda path, default: None)))
    assert empty.empty and list(empty.columns) == ["signal_id", *times, "seq"]


def test_a_table_shown_before_its_first_row_formats_numbers_as_one_shown_after():
    # The table takes each column's format from the first frame it shows: an empty frame of
    # untyped columns left a page opened before the first trade showing numbers as text.
    from types import SimpleNamespace

    from tradelab.ui import frames
    from tradelab.ui.console import _table

    class Store:
        def __init__(self, trades):
            self.trades = trades

        def get_many(self, paths):
            return 0, {p: None for p in paths}

        def get(self, path, default=None):
            return self.trades if path == "trading.trades" else default

    trade = {"ts": 1, "symbol": "X", "side": "SELL", "quantity": 75, "price": 152.75}
    trade |= {"realized_pnl": 0.0, "fee": 20.0, "seq": 2523}
    empty = frames.trades(SimpleNamespace(store=Store({})))
    full = frames.trades(SimpleNamespace(store=Store({"T1": trade})))

    early, late = _table("early", 20), _table("late", 20)
    early.value = empty
    early.get_root()  # shown before the first trade
    early.value = full
    late.value = full
    kinds = [
        (c.field, type(c.formatter).__name__, getattr(c.formatter, "format", None))
        for c in early.get_root().columns
    ]
    assert kinds == [
        (c.field, type(c.formatter).__name__, getattr(c.formatter, "format", None))
        for c in late.get_root().columns
    ]
    assert ("seq", "NumberFormatter", "0,0") in kinds
    for name in ("positions", "orders"):  # every table's numbers are typed when empty
        frame = getattr(frames, name)(SimpleNamespace(store=Store({})))
        assert all(frame[c].dtype.kind in "if" for c in frame if c in frames._EMPTY_TYPES)


def test_a_tape_row_from_an_earlier_day_is_dated():
    # The tape keeps earlier runs' rows across a restart: one day's 09:20 read as another's.
    rows = [TapeRow(1, 7, "trade.executed", "k", NS, NS, {})]
    later = DAY + dt.timedelta(days=1)
    assert tape_cells(rows, today=later)[0][1] == "05 Jan 09:15:06.789"
    assert tape_cells(rows, today=DAY)[0][1] == "09:15:06.789"
