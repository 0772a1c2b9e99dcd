"""NIFTY's expiry calendar and lot sizes by date, as NSE changed them (see `instruments`).

Pure values; both classes are frozen and safe to share between threads.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from tradelab.errors import InvalidInputError

# NIFTY's expiry weekday by date: Thursday, then Tuesday from 1 Sep 2025 (SEBI's move of NSE's
# index expiries; contracts expiring after that date moved with it).
NSE_EXPIRY_WEEKDAYS: tuple[tuple[date, int], ...] = ((date.min, 3), (date(2025, 9, 1), 1))
# NIFTY's lot size by first expiry (see the module docstring), and the expiries that kept theirs.
NSE_LOT_CHANGES: tuple[tuple[date, int], ...] = (
    (date(2021, 7, 29), 50),
    (date(2024, 5, 2), 25),
    (date(2025, 1, 2), 75),
    (date(2026, 1, 1), 65),
)
NSE_LOT_EXCEPTIONS: tuple[tuple[date, int], ...] = ((date(2025, 1, 30), 25),)


def checked_day(value: object, what: str) -> date:
    """`value` if it is a date (not a datetime); else an `InvalidInputError` naming it."""
    if type(value) is date:  # the common case, kept to one check
        return value
    if isinstance(value, datetime):  # pandas' Timestamp too
        raise InvalidInputError(
            f"{what} {value!r} is a datetime; pass a date, e.g. its .date() "
            "(for a tick time: datetime.fromtimestamp(ts, IST).date())"
        )
    if isinstance(value, date):
        return value
    raise InvalidInputError(
        f"{what} {value!r} is not a date; expected a datetime.date, e.g. date(2025, 11, 18)"
    )


def _nse_holidays() -> frozenset[date]:
    # Imported here: the calendar module imports IST from this one.
    from tradelab.market.calendar import nse_calendar  # noqa: PLC0415

    return nse_calendar().holidays


@dataclass(frozen=True, slots=True)
class ExpiryCalendar:
    """Which dates options expire on: a weekday (0=Monday .. 6=Sunday) minus holidays.

    `expiry_weekday` fixes one weekday for every date; by default (None) it is NSE's for the
    date: Thursday up to 31 Aug 2025, Tuesday since (`NSE_EXPIRY_WEEKDAYS`). `holidays`
    defaults to the NSE holiday list; pass a set to model another calendar.
    """

    expiry_weekday: int | None = None
    holidays: frozenset[date] = field(default_factory=lambda: _nse_holidays())

    def __post_init__(self) -> None:
        weekday = self.expiry_weekday
        if weekday is not None and (
            type(weekday) is not int or not 0 <= weekday <= 4  # bool is not a weekday
        ):
            raise InvalidInputError(
                f"expiry_weekday {weekday!r} is not a trading weekday; "
                "expected 0 (Monday) .. 4 (Friday), or None for NSE's by date"
            )

    @property
    def _eras(self) -> tuple[tuple[date, int], ...]:
        """(first date, expiry weekday) pairs in date order, the first from date.min."""
        if self.expiry_weekday is None:
            return NSE_EXPIRY_WEEKDAYS
        return ((date.min, self.expiry_weekday),)

    def weekday_on(self, day: date) -> int:
        """The expiry weekday in force on `day` (0=Monday)."""
        weekday = self._eras[0][1]
        for since, era_weekday in self._eras:
            if day >= since:
                weekday = era_weekday
        return weekday

    def rolled_back(self, day: date) -> date:
        """Where an expiry nominally on `day` falls: a holiday (or weekend) moves it to the
        previous trading day, as NSE does."""
        while day in self.holidays or day.weekday() >= 5:
            day -= timedelta(days=1)
        return day

    def monthly_expiry(self, year: int, month: int) -> date:
        """The month's last expiry weekday (holiday-adjusted)."""
        last_day = calendar.monthrange(year, month)[1]
        day = date(year, month, last_day)
        day -= timedelta(days=(day.weekday() - self.weekday_on(day)) % 7)
        return self.rolled_back(day)

    def weekly_expiry_on_or_after(self, day: date) -> date:
        """The first weekly expiry whose date is on or after `day` (a date, not a datetime)."""
        return self._on_or_after(checked_day(day, "day"))

    def _on_or_after(self, day: date) -> date:
        eras = self._eras
        for i, (since, weekday) in enumerate(eras):
            until = eras[i + 1][0] if i + 1 < len(eras) else None
            if until is not None and day >= until:
                continue  # this era ended before `day`
            start = max(day, since)
            nominal = start + timedelta(days=(weekday - start.weekday()) % 7)
            while until is None or nominal < until:
                expiry = self.rolled_back(nominal)
                if expiry >= day:
                    return expiry
                nominal += timedelta(days=7)
        raise AssertionError("the last era has no end")  # pragma: no cover

    def weekly_expiries(self, start: date, count: int) -> list[date]:
        """The next `count` weekly expiries on or after `start` (a date, not a datetime)."""
        day = checked_day(start, "start")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidInputError(f"count {count!r} is not a whole number >= 0")
        out: list[date] = []
        while len(out) < count:
            expiry = self._on_or_after(day)
            out.append(expiry)
            day = expiry + timedelta(days=1)
        return out

    def is_expiry(self, day: date) -> bool:
        """Whether `day` (a date, not a datetime) is a weekly (or monthly) expiry."""
        day = checked_day(day, "day")
        return self._on_or_after(day) == day

    def is_monthly_expiry(self, day: date) -> bool:
        """Whether `day` (a date, not a datetime) is its month's expiry."""
        day = checked_day(day, "day")
        return self.monthly_expiry(day.year, day.month) == day


@dataclass(frozen=True, slots=True)
class LotSizeSchedule:
    """Lot size by expiry date: `changes` are (first expiry date, lot size) pairs in date order."""

    base_lot_size: int = 75
    changes: tuple[tuple[date, int], ...] = NSE_LOT_CHANGES
    # Expiries whose contracts kept the lot they were listed with across a change; None: NSE's
    # with NSE's own base and changes, none with any other schedule.
    exceptions: tuple[tuple[date, int], ...] | None = None

    def __post_init__(self) -> None:
        if self.exceptions is None:
            nse = self.base_lot_size == 75 and self.changes == NSE_LOT_CHANGES
            object.__setattr__(self, "exceptions", NSE_LOT_EXCEPTIONS if nse else ())

    def lot_size_for(self, expiry: date) -> int:
        """The lot size of contracts expiring on `expiry` (a date, not a datetime)."""
        if type(expiry) is not date:
            expiry = checked_day(expiry, "expiry")
        for day, lot in self.exceptions or ():
            if expiry == day:
                return lot
        size = self.base_lot_size
        for since, lot in self.changes:
            if expiry >= since:
                size = lot
        return size
