import logging
from datetime import date, time, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tradelab.errors import InvalidInputError
from tradelab.market.calendar import nse_calendar
from tradelab.market.clock import MarketHours, ist_date
from tradelab.market.feeds import ReplayFeed, ReplayFeedConfig, SimulatedFeed, SimulatedFeedConfig
from tradelab.market.instruments import ExpiryCalendar, OptionUniverse

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "nifty_sample_1m.csv"
NSE = nse_calendar()

# NSE's published trading holidays for 2025 (Diwali Laxmi Pujan on 21 Oct is listed as a
# holiday with a one-hour Muhurat session).
NSE_2025 = {
    date(2025, 2, 26),
    date(2025, 3, 14),
    date(2025, 3, 31),
    date(2025, 4, 10),
    date(2025, 4, 14),
    date(2025, 4, 18),
    date(2025, 5, 1),
    date(2025, 8, 15),
    date(2025, 8, 27),
    date(2025, 10, 2),
    date(2025, 10, 21),
    date(2025, 10, 22),
    date(2025, 11, 5),
    date(2025, 12, 25),
}


def test_nse_2025_holidays_match_the_exchange_list():
    assert {d for d in NSE.holidays if d.year == 2025} == NSE_2025


def test_muhurat_day_is_a_holiday_with_an_evening_session():
    muhurat = date(2025, 10, 21)
    assert NSE.is_holiday(muhurat) and NSE.is_trading_day(muhurat)
    assert NSE.session(muhurat) == (time(13, 45), time(14, 45))
    assert MarketHours().session(muhurat) == (time(13, 45), time(14, 45))


def test_budget_day_weekend_sessions_trade_at_normal_hours():
    for day in (date(2025, 2, 1), date(2026, 2, 1)):
        assert day.weekday() >= 5
        assert MarketHours().session(day) == (time(9, 15), time(15, 30))
    assert not MarketHours().is_trading_day(date(2025, 2, 2))


@pytest.mark.parametrize(
    "nominal, expected",
    [
        (date(2025, 10, 21), date(2025, 10, 20)),  # Diwali Laxmi Pujan (Muhurat only)
        (date(2026, 3, 3), date(2026, 3, 2)),  # Holi
        (date(2026, 4, 14), date(2026, 4, 13)),  # Ambedkar Jayanti
        (date(2026, 10, 20), date(2026, 10, 19)),  # Dussehra
        (date(2026, 11, 10), date(2026, 11, 9)),  # Diwali Balipratipada
    ],
)
def test_weekly_expiry_on_a_holiday_moves_to_the_previous_trading_day(nominal, expected):
    cal = ExpiryCalendar()
    assert cal.weekly_expiry_on_or_after(nominal - timedelta(days=6)) == expected
    assert not cal.is_expiry(nominal)


def test_monthly_expiry_on_a_holiday_keeps_the_monthly_symbol_on_the_earlier_day():
    universe = OptionUniverse()
    # Last Tuesdays that are holidays: 31 Mar 2026 (Mahavir Jayanti), 24 Nov 2026 (Guru Nanak).
    assert universe.parse("NIFTY26MAR24000CE").expiry == date(2026, 3, 30)
    assert universe.parse("NIFTY26NOV24000PE").expiry == date(2026, 11, 23)
    assert universe.contract(date(2025, 10, 20), 24000, "CE").symbol == "NIFTY25O2024000CE"


def test_a_year_of_weekly_expiries_is_never_a_holiday():
    expiries = ExpiryCalendar().weekly_expiries(date(2025, 9, 1), 70)
    assert expiries[-1] > date(2026, 12, 20)
    for expiry in expiries:
        assert NSE.has_regular_session(expiry), expiry
        assert expiry.weekday() <= 1  # Tuesday, or Monday when Tuesday is a holiday
    assert len(set(expiries)) == len(expiries)


def test_calendar_knows_how_far_its_holidays_go():
    assert NSE.covered_until is not None and NSE.covered_until >= 2026
    assert date(2026, 12, 25) in NSE.holidays


def test_a_session_after_the_known_holidays_says_its_holidays_are_unknown(tmp_path, caplog):
    # A day after the calendar's last known year would trade through its holidays (Republic
    # Day 2027 as a trading and expiry day) without a word.
    after = date(NSE.covered_until + 1, 1, 26)
    with caplog.at_level(logging.WARNING):
        SimulatedFeed(SimulatedFeedConfig(session_date=after))
    assert f"is after {NSE.covered_until}, the last year" in caplog.text
    caplog.clear()
    bars = tmp_path / "bars.csv"
    pd.DataFrame(
        {"timestamp": [f"{after} 09:15:00"], "symbol": ["NIFTY"], "open": [1.0], "high": [1.0]}
        | {"low": [1.0], "close": [1.0]}
    ).to_csv(bars, index=False)
    with caplog.at_level(logging.WARNING):
        ReplayFeed(ReplayFeedConfig(path=str(bars)))
    assert "pandas_market_calendars" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        SimulatedFeed(SimulatedFeedConfig(session_date=date(2025, 11, 12)))
    assert "pandas_market_calendars" not in caplog.text
    # Before the first known year too (Republic Day 2015 traded without a word).
    with caplog.at_level(logging.WARNING):
        SimulatedFeed(SimulatedFeedConfig(session_date=date(2015, 1, 26)))
    assert "2015-01-26 is before 2016, the first year" in caplog.text


def test_simulated_feed_skips_a_holiday_to_the_next_trading_day(caplog):
    config = SimulatedFeedConfig(
        session_date=date(2025, 10, 2), ticks_per_second=1, speed=60.0, as_fast_as_possible=True
    )
    with caplog.at_level(logging.WARNING):
        feed = SimulatedFeed(config)
    assert feed.session_day == date(2025, 10, 3)
    ticks = list(feed.ticks())
    assert len(ticks) == 375
    assert {ist_date(t.ts) for t in ticks} == {date(2025, 10, 3)}
    assert "2025-10-02" in caplog.text


def test_simulated_feed_over_a_long_weekend_never_runs_on_a_holiday():
    # Fri 14 Mar 2025 is Holi: the weekend plus the holiday land on Mon 17 Mar.
    feed = SimulatedFeed(SimulatedFeedConfig(session_date=date(2025, 3, 14)))
    assert feed.session_day == date(2025, 3, 17)


def test_market_hours_refuse_a_session_on_a_holiday():
    with pytest.raises(InvalidInputError, match=r"2025-12-25 \(Thursday\) is not a NSE trading"):
        MarketHours().session_ns(date(2025, 12, 25))


def test_replay_warns_and_counts_bars_on_a_non_trading_day(tmp_path, caplog):
    frame = pd.read_csv(SAMPLE).head(70)
    # Move the first 20 bars onto Diwali Balipratipada, a full holiday (earlier: still in order).
    frame.loc[:19, "timestamp"] = frame.loc[:19, "timestamp"].str.replace(
        "2025-11-12", "2025-10-22"
    )
    path = tmp_path / "bars.csv"
    frame.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING):
        feed = ReplayFeed(ReplayFeedConfig(path=str(path), as_fast_as_possible=True))
    assert feed.non_trading_day_bars == 20
    assert feed.non_trading_days == (date(2025, 10, 22),)
    assert "20 bars on 1 non-trading day(s): 2025-10-22" in caplog.text


def test_replay_of_a_trading_day_warns_about_nothing(caplog):
    with caplog.at_level(logging.WARNING):
        feed = ReplayFeed(ReplayFeedConfig(path=str(SAMPLE), as_fast_as_possible=True))
    assert feed.non_trading_day_bars == 0
    assert "non-trading" not in caplog.text


def test_a_special_sessions_bars_start_at_its_open_and_end_at_its_close():
    # The 2025 Muhurat hour, 13:45-14:45: its 1h bar is that hour, not 13:15-14:15 and
    # 14:15-15:15 (anchored at 09:15 and cut at 15:30, as a regular day's).
    from tradelab.market.bars import BarAggregator

    hours = MarketHours()
    feed = SimulatedFeed(
        SimulatedFeedConfig(session_date=date(2025, 10, 21), ticks_per_second=4),
        hours=hours,
    )
    bars = BarAggregator(("15m", "1h"), sessions=hours.session)
    closed = [bar for tick in feed.ticks() for bar in bars.on_tick(tick)]
    closed += bars.close_until(feed.close_ns)
    ist = [
        (bar.interval, f"{pd.Timestamp(bar.start, tz='Asia/Kolkata'):%H:%M}")
        + (f"{pd.Timestamp(bar.end, tz='Asia/Kolkata'):%H:%M}",)
        for bar in closed
        if bar.symbol == "NIFTY"
    ]
    assert [b for b in ist if b[0] == "1h"] == [("1h", "13:45", "14:45")]
    assert [b[1] for b in ist if b[0] == "15m"] == ["13:45", "14:00", "14:15", "14:30"]
