"""The NSE trading calendar: trading days, holidays and special sessions, as immutable values.

Built once (on first use) from `pandas_market_calendars`' curated XNSE calendar plus a short,
sourced override list for sessions that library cannot hold (weekend sessions). A
`TradingCalendar` is frozen after construction and safe to share between threads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from datetime import time as dtime
from functools import lru_cache
from types import MappingProxyType

from tradelab.errors import InvalidInputError

log = logging.getLogger(__name__)

REGULAR_OPEN = dtime(9, 15)
REGULAR_CLOSE = dtime(15, 30)
# Years read from the library: from 2016 (weekly NIFTY expiries existed) to the last year its
# XNSE calendar is curated for. Beyond that only weekends are known to be closed.
FIRST_YEAR = 2016

# Sessions the library cannot represent: its sessions come from a Monday-Friday mask, so
# weekend trading days are missing. Source: NSE circulars on special live trading sessions.
WEEKEND_SESSIONS: Mapping[date, tuple[dtime, dtime]] = MappingProxyType(
    {
        # Saturday full session in place of Monday 22 Jan 2024 (declared a holiday).
        date(2024, 1, 20): (REGULAR_OPEN, REGULAR_CLOSE),
        # Union Budget days: live trading at normal hours on a Saturday / a Sunday.
        date(2025, 2, 1): (REGULAR_OPEN, REGULAR_CLOSE),
        date(2026, 2, 1): (REGULAR_OPEN, REGULAR_CLOSE),
    }
)


@dataclass(frozen=True, slots=True)
class TradingCalendar:
    """Which days an exchange trades and when.

    `holidays` are weekdays without a regular session (a Diwali Muhurat day is one: NSE lists
    it as a holiday and holds only a one-hour evening session, so expiries move off it).
    `special_sessions` maps a day to its non-regular (open, close) in IST; such a day trades
    even if it is a holiday or a weekend. `covered_from` .. `covered_until` are the years whose
    holidays are known; other days are treated as trading days unless they fall on a weekend.
    """

    holidays: frozenset[date] = frozenset()
    special_sessions: Mapping[date, tuple[dtime, dtime]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    open_time: dtime = REGULAR_OPEN
    close_time: dtime = REGULAR_CLOSE
    covered_until: int | None = None
    covered_from: int | None = None  # the first year whose holidays are known
    name: str = "custom"

    def beyond_coverage(self, *days: date) -> str | None:
        """A warning's text when any of `days` falls outside the years whose holidays are
        known (they would count as trading and expiry days); None when all are covered."""
        first, last = self.covered_from, self.covered_until
        for day in sorted(days):
            if first is not None and day.year < first:
                return (
                    f"{day.isoformat()} is before {first}, the first year of the {self.name} "
                    "holidays known here: its holidays count as trading (and expiry) days"
                )
            if last is not None and day.year > last:
                return (
                    f"{day.isoformat()} is after {last}, the last year of the {self.name} "
                    "holidays known here: its holidays count as trading (and expiry) days; "
                    "update pandas_market_calendars for that year's holiday list"
                )
        return None

    def is_holiday(self, day: date) -> bool:
        """A weekday without a regular session (what expiries roll back from)."""
        return day.weekday() < 5 and day in self.holidays

    def has_regular_session(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def is_trading_day(self, day: date) -> bool:
        """True when the exchange holds any session on `day` (regular or special)."""
        return day in self.special_sessions or self.has_regular_session(day)

    def session(self, day: date) -> tuple[dtime, dtime] | None:
        """(open, close) IST of `day`'s session, or None when it does not trade."""
        special = self.special_sessions.get(day)
        if special is not None:
            return special
        return (self.open_time, self.close_time) if self.has_regular_session(day) else None

    def next_trading_day(self, day: date, *, inclusive: bool = False) -> date:
        """The first trading day after `day` (or on it, when `inclusive`)."""
        day = day if inclusive else day + timedelta(days=1)
        # A long run of closed days is at most a weekend plus a few holidays.
        for _ in range(30):
            if self.is_trading_day(day):
                return day
            day += timedelta(days=1)
        raise InvalidInputError(f"no {self.name} trading day within 30 days of {day.isoformat()}")

    def previous_regular_day(self, day: date) -> date:
        """`day` if it has a regular session, else the last earlier day that has one."""
        for _ in range(30):
            if self.has_regular_session(day):
                return day
            day -= timedelta(days=1)
        raise InvalidInputError(f"no {self.name} regular session within 30 days of {day}")

    def trading_days(self, start: date, end: date) -> Iterator[date]:
        """Trading days from `start` to `end`, both inclusive."""
        day = start
        while day <= end:
            if self.is_trading_day(day):
                yield day
            day += timedelta(days=1)


@lru_cache(maxsize=1)
def nse_calendar() -> TradingCalendar:
    """The NSE calendar: XNSE from pandas_market_calendars plus `WEEKEND_SESSIONS`.

    Cached: built once per process (~0.4 s, mostly the library import).
    """
    import pandas as pd  # noqa: PLC0415 (heavy imports kept off module import)
    import pandas_market_calendars as mcal

    xnse = mcal.get_calendar("XNSE")
    last_year = _last_curated_year()
    start, end = date(FIRST_YEAR, 1, 1), date(last_year, 12, 31)
    schedule = xnse.schedule(start.isoformat(), end.isoformat())
    opens = schedule["market_open"].dt.tz_convert("Asia/Kolkata")
    closes = schedule["market_close"].dt.tz_convert("Asia/Kolkata")
    specials: dict[date, tuple[dtime, dtime]] = {}
    sessions: set[date] = set()
    for stamp, opened, closed in zip(schedule.index, opens, closes, strict=True):
        day = stamp.date()
        bounds = (opened.time(), closed.time())
        if bounds == (REGULAR_OPEN, REGULAR_CLOSE):
            sessions.add(day)
        else:
            specials[day] = bounds  # Muhurat evenings: not a regular session
    specials.update(WEEKEND_SESSIONS)
    weekdays = pd.bdate_range(start, end)
    holidays = frozenset(d.date() for d in weekdays if d.date() not in sessions)
    return TradingCalendar(
        holidays=holidays,
        special_sessions=MappingProxyType(specials),
        covered_until=last_year,
        covered_from=FIRST_YEAR,
        name="NSE",
    )


def _last_curated_year() -> int:
    # The library defines no holidays after its last curated year; find that year from its
    # holiday list rather than trusting a constant that goes stale when the library updates.
    from pandas_market_calendars.holidays.nse import NSEClosedDay  # noqa: PLC0415

    return max(pd_stamp.year for pd_stamp in NSEClosedDay)
