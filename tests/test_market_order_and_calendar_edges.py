"""Bars closed together come oldest first (and by symbol); the calendar's covered years, trading
days and expiry roll-backs at their edges; ATM ties; greeks at zero volatility."""

from datetime import date

import numpy as np
import pytest

from tests.test_market_router import ist, px
from tradelab.errors import InvalidInputError
from tradelab.market.bars import BarAggregator
from tradelab.market.calendar import FIRST_YEAR, nse_calendar
from tradelab.market.chain import chain_greeks
from tradelab.market.expiries import ExpiryCalendar
from tradelab.market.instruments import OptionUniverse


def _gap_after_a_new_15m_bar(agg):
    # 09:20 opens 15m [09:15, 09:30) and 1h [09:15, 10:15); 09:31 closes the 15m bar and opens
    # 15m [09:30, 09:45), kept after the 1h bar; then nothing until 10:20.
    agg.on_tick(px("NIFTY", ist(9, 20), 100.0))
    agg.on_tick(px("NIFTY", ist(9, 31), 101.0))


def test_bars_closed_together_by_a_gap_come_oldest_first():
    agg = BarAggregator(("15m", "1h"))
    _gap_after_a_new_15m_bar(agg)
    closed = agg.on_tick(px("NIFTY", ist(10, 20), 102.0))
    ends = [b.end for b in closed]
    assert [(b.interval, b.end) for b in closed] == [("15m", ist(9, 45)), ("1h", ist(10, 15))]
    assert ends == sorted(ends)


def test_flush_returns_the_open_bars_oldest_first():
    agg = BarAggregator(("15m", "1h"))
    _gap_after_a_new_15m_bar(agg)
    flushed = agg.flush()
    assert [(b.interval, b.end) for b in flushed] == [("15m", ist(9, 45)), ("1h", ist(10, 15))]


def test_bars_of_several_symbols_closing_at_once_come_in_symbol_order():
    agg = BarAggregator(("15m",))
    agg.on_tick(px("ZETA", ist(9, 16), 1.0))
    agg.on_tick(px("ALPHA", ist(9, 17), 2.0))
    closed = agg.on_tick(px("ZETA", ist(9, 30), 1.5))
    assert [b.symbol for b in closed] == ["ALPHA", "ZETA"]


# -- calendar.py --------------------------------------------------------------------------------


NSE = nse_calendar()


def test_the_first_and_last_covered_years_are_covered_not_warned_about():
    assert NSE.beyond_coverage(date(FIRST_YEAR, 3, 2)) is None
    assert NSE.beyond_coverage(date(NSE.covered_until, 6, 2)) is None
    assert NSE.beyond_coverage(date(FIRST_YEAR - 1, 12, 31)) is not None
    assert NSE.beyond_coverage(date(NSE.covered_until + 1, 1, 2)) is not None


def test_previous_regular_day_goes_back_over_a_weekend():
    assert NSE.previous_regular_day(date(2025, 11, 15)) == date(2025, 11, 14)  # Sat -> Fri
    assert NSE.previous_regular_day(date(2025, 11, 14)) == date(2025, 11, 14)


def test_next_trading_day_inclusive_keeps_a_trading_day():
    assert NSE.next_trading_day(date(2025, 11, 14), inclusive=True) == date(2025, 11, 14)
    assert NSE.next_trading_day(date(2025, 11, 14)) == date(2025, 11, 17)


# -- chain.py -----------------------------------------------------------------------------------


def test_chain_greeks_refuse_a_zero_volatility_rather_than_return_nan():
    with pytest.raises(InvalidInputError, match="volatility > 0"):
        chain_greeks(
            24000.0, np.array([23900.0, 24100.0]), 0.02, 0.065, np.array([0.13, 0.0]), True
        )


def test_trading_days_include_their_end():
    days = list(NSE.trading_days(date(2025, 11, 10), date(2025, 11, 14)))
    assert days[-1] == date(2025, 11, 14) and len(days) == 5


# -- expiries.py (moved out of instruments.py) --------------------------------------------------


def test_a_monday_expiry_on_a_holiday_rolls_back_to_friday_not_sunday():
    holiday = date(2025, 11, 17)  # a Monday
    calendar = ExpiryCalendar(expiry_weekday=0, holidays=frozenset({holiday}))
    assert calendar.weekly_expiry_on_or_after(date(2025, 11, 12)) == date(2025, 11, 14)  # Friday
    assert calendar.rolled_back(holiday) == date(2025, 11, 14)


def test_a_tuesday_expiry_after_a_monday_and_tuesday_holiday_falls_on_friday():
    tue, mon = date(2025, 11, 18), date(2025, 11, 17)
    calendar = ExpiryCalendar(expiry_weekday=1, holidays=frozenset({mon, tue}))
    assert calendar.rolled_back(tue) == date(2025, 11, 14)


# -- instruments.py -----------------------------------------------------------------------------


def test_atm_strike_ties_round_up_as_documented():
    universe = OptionUniverse()
    assert universe.atm_strike(24025.0) == 24050  # 480.5 steps: up, not to the even 480
    assert universe.atm_strike(24075.0) == 24100  # 481.5 steps
    assert universe.atm_strike(24024.99) == 24000
