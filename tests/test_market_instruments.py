from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradelab.errors import InvalidInputError
from tradelab.market.instruments import (
    IST,
    ExpiryCalendar,
    LotSizeSchedule,
    OptionContract,
    OptionType,
    OptionUniverse,
)

U = OptionUniverse()


def test_monthly_symbol_parses_to_last_tuesday_expiry():
    c = U.parse("NIFTY25NOV24000CE")
    assert (c.expiry, c.strike, c.option_type, c.monthly) == (
        date(2025, 11, 25),
        24000,
        OptionType.CALL,
        True,
    )
    assert c.expiry.weekday() == 1
    assert c.symbol == "NIFTY25NOV24000CE"


def test_weekly_symbol_uses_single_letter_month_and_day():
    c = U.parse("NIFTY25N1124000PE")
    assert (c.expiry, c.strike, c.option_type, c.monthly) == (
        date(2025, 11, 11),
        24000,
        OptionType.PUT,
        False,
    )


def test_weekly_codes_for_january_and_october():
    assert U.contract(date(2026, 1, 6), 24500, "CE").symbol == "NIFTY2610624500CE"
    assert U.contract(date(2025, 10, 7), 24500, "PE").symbol == "NIFTY25O0724500PE"


def test_calendar_weekly_and_monthly_expiries_fall_on_tuesday():
    cal = ExpiryCalendar()
    assert cal.weekly_expiries(date(2025, 11, 12), 3) == [
        date(2025, 11, 18),
        date(2025, 11, 25),
        date(2025, 12, 2),
    ]
    assert cal.monthly_expiry(2025, 12) == date(2025, 12, 30)


def test_holiday_moves_expiry_to_previous_trading_day():
    cal = ExpiryCalendar(holidays=frozenset({date(2025, 11, 25)}))
    assert cal.monthly_expiry(2025, 11) == date(2025, 11, 24)
    assert OptionUniverse(cal).parse("NIFTY25NOV24000CE").expiry == date(2025, 11, 24)


TICK_TIME = datetime(2026, 3, 2, 10, 0, tzinfo=IST)  # the day before a holiday Tuesday


@pytest.mark.parametrize(
    "call",
    [
        lambda: U.calendar.weekly_expiry_on_or_after(TICK_TIME),
        lambda: U.calendar.weekly_expiries(TICK_TIME, 2),
        lambda: U.calendar.is_expiry(TICK_TIME),
        lambda: U.calendar.is_monthly_expiry(TICK_TIME),
        lambda: U.contract(TICK_TIME, 24000, "CE"),
        lambda: LotSizeSchedule().lot_size_for(TICK_TIME),
        lambda: U.lot_size(OptionContract(TICK_TIME, 24000, OptionType.CALL)),
    ],
)
def test_a_datetime_for_a_day_is_refused_asking_for_its_date(call):
    # A datetime never equals a holiday date: taken as a day it skipped the holiday roll-back.
    with pytest.raises(
        InvalidInputError, match=r"is a datetime; pass a date, e\.g\. its \.date\(\)"
    ):
        call()
    assert U.calendar.weekly_expiry_on_or_after(TICK_TIME.date()) == date(2026, 3, 2)


@pytest.mark.parametrize("day", ["2026-03-02", 20260302, None])
def test_a_day_that_is_not_a_date_is_refused_by_value(day):
    with pytest.raises(InvalidInputError, match="is not a date; expected a datetime.date") as info:
        U.calendar.weekly_expiry_on_or_after(day)
    assert repr(day) in str(info.value)
    with pytest.raises(InvalidInputError, match="expiry '2025-11-18' is not a date"):
        U.contract("2025-11-18", 24000, "CE")
    with pytest.raises(InvalidInputError, match="count -1 is not a whole number"):
        U.calendar.weekly_expiries(date(2025, 11, 12), -1)


def test_expiries_fall_on_thursdays_until_august_2025_and_on_tuesdays_since():
    # Real contracts: a 2024 replay trades them (a Tuesday weekly of 2024 never existed).
    assert U.parse("NIFTY2411121500CE").expiry == date(2024, 1, 11)
    assert U.parse("NIFTY24JAN21500CE").expiry == date(2024, 1, 25)
    assert U.parse("NIFTY25AUG24500CE").expiry == date(2025, 8, 28)
    assert U.parse("NIFTY25SEP24500CE").expiry == date(2025, 9, 30)
    # The week of the switch: Thursday 28 Aug, then Tuesday 2 Sep.
    assert U.calendar.weekly_expiries(date(2025, 8, 22), 3) == [
        date(2025, 8, 28),
        date(2025, 9, 2),
        date(2025, 9, 9),
    ]
    with pytest.raises(InvalidInputError, match=r"Thursdays on that date"):
        U.parse("NIFTY2411621600CE")  # Tuesday 16 Jan 2024


def test_expiry_weekday_can_be_fixed_for_every_date():
    thursday = OptionUniverse(ExpiryCalendar(expiry_weekday=3))
    assert thursday.parse("NIFTY26JAN24000CE").expiry == date(2026, 1, 29)
    assert thursday.parse("NIFTY24D1224000CE").expiry == date(2024, 12, 12)
    with pytest.raises(InvalidInputError, match="expiry_weekday True"):
        ExpiryCalendar(expiry_weekday=True)


@pytest.mark.parametrize(
    "symbol, lot",
    [
        ("NIFTY2170815000CE", 75),  # a July 2021 weekly kept 75
        ("NIFTY21JUL15000CE", 50),  # the July 2021 monthly was the first at 50
        ("NIFTY24APR22000CE", 50),
        ("NIFTY2450222000CE", 25),  # 2 May 2024: the first weekly at 25
        ("NIFTY24DEC24000CE", 25),
        ("NIFTY2510224000CE", 75),  # 2 Jan 2025: the first weekly at 75
        ("NIFTY25JAN24000CE", 25),  # the Jan 2025 monthly, listed before, kept 25
        ("NIFTY25DEC24000CE", 75),
        ("NIFTY26JAN24000CE", 65),
    ],
)
def test_lot_size_follows_nse_changes_by_expiry(symbol, lot):
    assert U.lot_size(U.parse(symbol)) == lot


@pytest.mark.parametrize(
    "symbol, fragment",
    [
        ("BANKNIFTY25NOV24000CE", "not a NIFTY option symbol"),
        ("NIFTY25NOV24000XX", "not a NIFTY option symbol"),
        ("NIFTY25NOV24025CE", "strike 24025 is not a positive multiple of 50"),
        ("NIFTY25N1224000CE", "is not an expiry date"),  # 2025-11-12 is a Wednesday
        # A holiday Tuesday (Diwali): said so, with where that week's expiry went.
        ("NIFTY25O2124000CE", "it is a holiday, so that week's expiry moved to 2025-10-20"),
        ("NIFTY25N3124000CE", "day 31 of NOV 2025, which does not exist"),
        ("NIFTY25N2524000CE", "uses the weekly form for the monthly expiry"),
        ("NIFTY25NOV024000CE", "leading zero"),
        ("", "not a NIFTY option symbol"),
        ("nifty25nov24000ce", "not a NIFTY option symbol"),
    ],
)
def test_garbage_symbols_are_rejected_with_the_reason(symbol, fragment):
    with pytest.raises(InvalidInputError, match=fragment) as info:
        U.parse(symbol)
    assert repr(symbol) in str(info.value)


def test_non_string_symbol_is_rejected():
    with pytest.raises(InvalidInputError, match="symbol must be a str"):
        U.parse(24000)


@given(
    weeks=st.integers(0, 400),
    strike_steps=st.integers(1, 1000),
    kind=st.sampled_from(["CE", "PE"]),
)
def test_every_listed_contract_round_trips_through_its_symbol(weeks, strike_steps, kind):
    expiry = U.calendar.weekly_expiries(date(2025, 9, 1), weeks + 1)[-1]
    contract = U.contract(expiry, strike_steps * 50, kind)
    assert U.parse(contract.symbol) == contract


def test_chain_is_centred_on_the_atm_strike():
    chain = U.chain(date(2025, 11, 18), 24013.0, 2)
    assert sorted({c.strike for c in chain}) == [23900, 23950, 24000, 24050, 24100]
    assert len(chain) == 10


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: U.atm_strike(float("nan")), "spot nan is not a price"),
        (lambda: U.atm_strike(None), "spot None is not a price"),
        (lambda: U.atm_strike(-10), "spot -10 is not a price"),
        (lambda: U.atm_strike(float("inf")), "spot inf is not a price"),
        (lambda: U.atm_strike("24000"), "spot '24000' is not a price"),
        (lambda: U.chain(date(2025, 11, 18), float("nan"), 1), "spot nan is not a price"),
        (lambda: U.chain(date(2025, 11, 18), 24000, -1), "strikes_each_side -1 is not a whole"),
        (lambda: U.chain(date(2025, 11, 18), 24000, 1.5), "strikes_each_side 1.5 is not a whole"),
        (lambda: U.lot_size(24000), "contract 24000 is not an option contract"),
        (lambda: U.lot_size("NIFTY25N1924000CE"), "'NIFTY25N1924000CE'.*is not an expiry"),
    ],
)
def test_bad_universe_inputs_are_refused_by_value(call, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        call()


def test_atm_strike_is_never_below_the_lowest_strike_and_lot_size_takes_a_symbol():
    assert U.atm_strike(10) == 50
    assert U.atm_strike(24024.99) == 24000
    assert U.lot_size("NIFTY25N1824000CE") == 75
    assert U.lot_size("NIFTY26JAN24000CE") == 65


def test_a_schedule_of_its_own_has_none_of_nses_exceptions():
    flat = LotSizeSchedule(base_lot_size=50, changes=())
    assert [flat.lot_size_for(date(2025, 1, d)) for d in (23, 30)] == [50, 50]
    assert LotSizeSchedule().lot_size_for(date(2025, 1, 30)) == 25  # NSE's own keeps it
