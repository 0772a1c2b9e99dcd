"""NIFTY 50 index options: the expiry calendar, contract symbols (format + parser) and lot sizes.

Pure values and functions; an `OptionUniverse` is immutable after construction and safe to share
between threads.

Defaults (NSE, checked against the exchange's circulars as reported in Oct 2025):
- strikes every 50 points; CE and PE; weekly expiry on **Thursday** up to 31 Aug 2025 and on
  **Tuesday** since 1 Sep 2025; the monthly expiry is the month's last such weekday; an expiry
  on an NSE holiday moves to the previous trading day (holidays from
  `tradelab.market.calendar.nse_calendar()`). So a replay of 2024 data trades 2024's Thursday
  contracts. (Weekly NIFTY options were listed from Feb 2019; earlier weeks are not refused.)
- lot size by expiry: **75** up to the Jul 2021 monthly, **50** from it (FAOP47854), **25** from
  the 2 May 2024 weekly, **75** from the 2 Jan 2025 weekly (the Jan 2025 monthly, listed
  before, kept 25), **65** from the Jan 2026 expiries (FAOP70616). Both are configurable
  (`ExpiryCalendar`, `LotSizeSchedule`).

Symbols (NSE / broker trading-symbol style, strike in whole index points):
- monthly: ``NIFTY<YY><MON><STRIKE><CE|PE>``, e.g. ``NIFTY25NOV24000CE`` (expiry 2025-11-25);
- weekly:  ``NIFTY<YY><M><DD><STRIKE><CE|PE>`` where M is 1-9 for Jan-Sep and O, N, D for
  Oct-Dec, e.g. ``NIFTY25N1124000CE`` (expiry 2025-11-11). A weekly expiry that is also the
  month's last expiry is written in the monthly form.
- the index itself: ``NIFTY`` (quoted, not tradable).

Days are `datetime.date`s. A `datetime` (a tick's time) is refused with an `InvalidInputError`
asking for its `.date()`, as is anything else that is not a date: comparing a datetime with the
holiday dates never matches, so it would silently skip the holiday roll-back.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum

from tradelab.errors import InvalidInputError
from tradelab.market.calendar import REGULAR_CLOSE
from tradelab.market.expiries import (
    NSE_EXPIRY_WEEKDAYS,
    ExpiryCalendar,
    LotSizeSchedule,
    checked_day,
)

IST = timezone(timedelta(hours=5, minutes=30), "IST")
INDEX_SYMBOL = "NIFTY"
STRIKE_STEP = 50
TICK_SIZE = 0.05
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKLY_MONTH_CODES = "123456789OND"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_MONTHLY_RE = re.compile(
    r"^NIFTY(\d{2})(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(\d+)(CE|PE)$"
)
_WEEKLY_RE = re.compile(r"^NIFTY(\d{2})([1-9OND])(\d{2})(\d+)(CE|PE)$")


def looks_like_option(symbol: str) -> bool:
    """Whether `symbol` has the form of a NIFTY option symbol (no calendar is loaded)."""
    return bool(_MONTHLY_RE.match(symbol) or _WEEKLY_RE.match(symbol))


class OptionType(StrEnum):
    CALL = "CE"
    PUT = "PE"


@dataclass(frozen=True, slots=True, order=True)
class OptionContract:
    """One NIFTY option: expiry date, strike (index points, multiple of 50), CE or PE."""

    expiry: date
    strike: int
    option_type: OptionType
    underlying: str = INDEX_SYMBOL
    monthly: bool = False

    @property
    def symbol(self) -> str:
        yy = f"{self.expiry.year % 100:02d}"
        if self.monthly:
            return f"{self.underlying}{yy}{MONTHS[self.expiry.month - 1]}{self.strike}{self.option_type}"
        code = WEEKLY_MONTH_CODES[self.expiry.month - 1]
        return f"{self.underlying}{yy}{code}{self.expiry.day:02d}{self.strike}{self.option_type}"

    @property
    def tick_size(self) -> float:
        """The price step NSE quotes NIFTY options in; the paper broker rounds fills to it."""
        return TICK_SIZE

    @property
    def is_call(self) -> bool:
        return self.option_type is OptionType.CALL

    def expiry_close(self) -> datetime:
        """The instant the contract stops trading: 15:30 IST on its expiry date."""
        return datetime.combine(self.expiry, REGULAR_CLOSE, tzinfo=IST)

    def years_to_expiry(self, at: datetime) -> float:
        """Time to expiry in years (ACT/365), 0 once expired."""
        seconds = (self.expiry_close() - at).total_seconds()
        return max(seconds, 0.0) / (365.0 * 86400.0)

    def __str__(self) -> str:
        return self.symbol


class OptionUniverse:
    """The tradable NIFTY option contracts for one calendar and lot-size schedule.

    `parse(symbol)` round-trips with `OptionContract.symbol` and rejects anything else with an
    `InvalidInputError` that names the symbol and the expected form.
    """

    def __init__(
        self,
        calendar_: ExpiryCalendar | None = None,
        lot_sizes: LotSizeSchedule | None = None,
        *,
        strike_step: int = STRIKE_STEP,
    ) -> None:
        self.calendar = calendar_ or ExpiryCalendar()
        self.lot_sizes = lot_sizes or LotSizeSchedule()
        if strike_step <= 0:
            raise InvalidInputError(f"strike_step {strike_step!r} must be a positive integer")
        self.strike_step = strike_step

    def contract(
        self, expiry: date, strike: float, option_type: str | OptionType
    ) -> OptionContract:
        """A checked contract: expiry is a listed expiry (a date, not a datetime), strike on the
        grid, type CE/PE."""
        if type(expiry) is not date:
            expiry = checked_day(expiry, "expiry")
        if not self.calendar.is_expiry(expiry):
            calendar = self.calendar
            moved = calendar.rolled_back(expiry)
            why = (
                f"it is a holiday, so that week's expiry moved to {moved.isoformat()} "
                f"({WEEKDAYS[moved.weekday()]})"
                if expiry.weekday() == calendar.weekday_on(expiry) and moved != expiry
                else f"weekly expiries fall on {WEEKDAYS[calendar.weekday_on(expiry)]}s"
                + (
                    f" on that date (NSE's: {WEEKDAYS[NSE_EXPIRY_WEEKDAYS[0][1]]}s, then "
                    f"{WEEKDAYS[NSE_EXPIRY_WEEKDAYS[1][1]]}s since "
                    f"{NSE_EXPIRY_WEEKDAYS[1][0].isoformat()})"
                    if calendar.expiry_weekday is None
                    else ""
                )
            )
            raise InvalidInputError(
                f"{expiry.isoformat()} ({WEEKDAYS[expiry.weekday()]}) is not an expiry date; {why}"
            )
        if (
            not isinstance(strike, int | float)
            or not math.isfinite(strike)
            or strike <= 0
            or strike != int(strike)
            or int(strike) % self.strike_step
        ):
            raise InvalidInputError(
                f"strike {strike!r} is not a positive multiple of {self.strike_step}"
            )
        try:
            kind = OptionType(option_type)
        except ValueError:
            raise InvalidInputError(
                f"option type {option_type!r} is not one of 'CE' (call) or 'PE' (put)"
            ) from None
        return OptionContract(
            expiry, int(strike), kind, monthly=self.calendar.is_monthly_expiry(expiry)
        )

    def parse(self, symbol: str) -> OptionContract:
        """Parse a monthly or weekly NIFTY option symbol into its contract."""
        if not isinstance(symbol, str):
            raise InvalidInputError(f"symbol must be a str, got {type(symbol).__name__} {symbol!r}")
        expected = (
            "expected NIFTY<YY><MON><STRIKE><CE|PE> (e.g. NIFTY25NOV24000CE) or "
            "NIFTY<YY><M><DD><STRIKE><CE|PE> (e.g. NIFTY25N1124000CE)"
        )
        if m := _MONTHLY_RE.match(symbol):
            yy, mon, strike, kind = m.groups()
            year, month = 2000 + int(yy), MONTHS.index(mon) + 1
            expiry = self.calendar.monthly_expiry(year, month)
        elif m := _WEEKLY_RE.match(symbol):
            yy, code, dd, strike, kind = m.groups()
            year, month = 2000 + int(yy), WEEKLY_MONTH_CODES.index(code) + 1
            try:
                expiry = date(year, month, int(dd))
            except ValueError:
                raise InvalidInputError(
                    f"symbol {symbol!r} names day {dd} of {MONTHS[month - 1]} {year}, "
                    "which does not exist"
                ) from None
            if self.calendar.is_monthly_expiry(expiry):
                raise InvalidInputError(
                    f"symbol {symbol!r} uses the weekly form for the monthly expiry "
                    f"{expiry.isoformat()}; write it as NIFTY{yy}{MONTHS[month - 1]}{strike}{kind}"
                )
        else:
            raise InvalidInputError(f"symbol {symbol!r} is not a NIFTY option symbol; {expected}")
        if strike.startswith("0"):
            raise InvalidInputError(f"symbol {symbol!r} has a strike with a leading zero")
        try:
            contract = self.contract(expiry, int(strike), kind)
        except InvalidInputError as exc:
            raise InvalidInputError(f"symbol {symbol!r}: {exc}") from None
        return contract

    def lot_size(self, contract: OptionContract | str) -> int:
        """The lot size of `contract`; a symbol string is parsed first (so it is checked)."""
        if type(contract) is not OptionContract:
            if isinstance(contract, str):
                contract = self.parse(contract)
            elif not isinstance(contract, OptionContract):
                raise InvalidInputError(
                    f"contract {contract!r} is not an option contract; expected an "
                    "OptionContract (from contract() or parse()) or its symbol"
                )
        return self.lot_sizes.lot_size_for(contract.expiry)

    def atm_strike(self, spot: float) -> int:
        """The strike nearest to `spot` (ties round up); never below the lowest strike.

        `spot` must be a finite number > 0."""
        if (
            type(spot) is not float
            and (isinstance(spot, bool) or not isinstance(spot, numbers.Real))
        ) or not 0 < spot < math.inf:  # NaN fails this too
            raise InvalidInputError(f"spot {spot!r} is not a price; expected a finite number > 0")
        steps = max(math.floor(spot / self.strike_step + 0.5), 1)
        return int(steps) * self.strike_step

    def chain(self, expiry: date, spot: float, strikes_each_side: int) -> list[OptionContract]:
        """CE and PE contracts for the ATM strike and `strikes_each_side` (a whole number >= 0)
        strikes either side; strikes that would be 0 or below are left out."""
        if (
            isinstance(strikes_each_side, bool)
            or not isinstance(strikes_each_side, numbers.Integral)
            or strikes_each_side < 0
        ):
            raise InvalidInputError(
                f"strikes_each_side {strikes_each_side!r} is not a whole number >= 0"
            )
        strikes_each_side = int(strikes_each_side)
        atm = self.atm_strike(spot)
        out: list[OptionContract] = []
        for i in range(-strikes_each_side, strikes_each_side + 1):
            strike = atm + i * self.strike_step
            if strike > 0:
                out.extend(self.contract(expiry, strike, t) for t in OptionType)
        return out
