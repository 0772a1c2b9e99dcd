"""Bar times as bar-file readers agree to read them: dates and times as text (offsets, day or
month first, exchange time without an offset) and epoch integers, to UTC ns; a value that is no
time is refused naming where it is. No state, no threads."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tradelab.errors import InvalidInputError, plain_value
from tradelab.market.bar_files import file_position

# A bar time without an offset is the exchange's time, as the console and reports show times.
EXCHANGE_ZONE = "Asia/Kolkata"
# A numeric date with the day or the month first: 02-01-2024, 2/1/2024, 02.01.2024.
_DAY_OR_MONTH_FIRST = r"^\s*(\d{1,2})[-/.](\d{1,2})[-/.]\d{2,4}\b"
# A time of day with a UTC offset (or Z, UTC, GMT) at its end: 09:15:00-04:00, 09:15+0530,
# 03:45:00.5Z (a time first: the -2024 of 02-01-2024 is no offset).
_OFFSET_AT_END = r"\d:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[+-]\d{2}(?::?\d{2})?|Z|UTC|GMT)$"


# Midnight with an offset: yfinance's daily 2024-01-01 00:00:00+09:00 is a date, not an instant.
_MIDNIGHT_WITH_OFFSET = re.compile(
    r"^\s*(.*?)[ T]00:00(?::00(?:\.0+)?)?\s*(?:[+-]\d{2}(?::?\d{2})?|Z|UTC|GMT)\s*$"
)


def _dates_at_midnight(raw: pd.Series) -> pd.Series | None:
    """A text column whose every value is midnight with an offset, as its dates alone; None
    otherwise. A calendar bar's label is its date wherever it was written: read as an instant,
    a Tokyo date's midnight is the evening before in IST, and every bar moved a day early."""
    if raw.empty or not (raw.dtype == object or pd.api.types.is_string_dtype(raw)):
        return None
    if not _MIDNIGHT_WITH_OFFSET.match(str(raw.iloc[0])):  # the usual answer, at once
        return None
    dates = raw.astype(str).str.extract(_MIDNIGHT_WITH_OFFSET)[0]
    return None if dates.isna().any() else dates


def times_in_utc(raw: pd.Series) -> pd.Series:
    """A column of dates or times as UTC timestamps (NaT where a value is not one), the same
    index. A time without an offset is exchange time (EXCHANGE_ZONE), so a bar at 09:15 in the
    file is shown at 09:15. A numeric date is read day first (02-01-2024 is 2 January) unless a
    value only fits month first (01-13-2024); an ISO date (2024-01-02) is never in doubt."""
    dates = _dates_at_midnight(raw)
    if dates is not None:  # dates, each at the exchange's midnight
        raw = dates
    dayfirst = False  # pandas would read 2024-03-01 as 3 January with it
    # A file keeps one format: the first value says whether the whole column is looked at.
    text = raw.dtype == object or pd.api.types.is_string_dtype(raw)  # as pandas reads a CSV
    if text and not raw.empty and re.match(_DAY_OR_MONTH_FIRST, str(raw.iloc[0])):
        fields = raw.astype(str).str.extract(_DAY_OR_MONTH_FIRST).astype(float)
        dayfirst = bool((fields[0] > 12).any()) or not bool((fields[1] > 12).any())
    try:
        parsed = pd.to_datetime(raw, errors="coerce", dayfirst=dayfirst)
    except ValueError:  # offsets that differ from row to row: each value on its own, below
        parsed = raw
    aware = isinstance(parsed.dtype, pd.DatetimeTZDtype)
    if (aware or pd.api.types.is_datetime64_dtype(parsed.dtype)) and _some_missed(raw, parsed):
        # pandas took the column's format from its first value: times with an offset after
        # naive ones (or the other way round) were read as no time at all.
        mixed = _mixed_offsets_in_utc(raw, dayfirst)
        return mixed if mixed is not None else _each_in_utc(raw, dayfirst)
    if aware:
        if (parsed.dt.normalize() == parsed).all():  # dates at midnight where written: as above
            parsed = parsed.dt.tz_localize(None)
        else:
            return parsed.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(parsed.dtype):  # no value had an offset
        return parsed.dt.tz_localize(
            EXCHANGE_ZONE, ambiguous="NaT", nonexistent="NaT"
        ).dt.tz_convert("UTC")
    # Offsets that differ from row to row (any US or European intraday file: DST changes
    # them), or some rows without one: a time without an offset in exchange time as above.
    mixed = _mixed_offsets_in_utc(raw, dayfirst)
    if mixed is not None:
        return mixed
    return _each_in_utc(raw, dayfirst)  # a layout the two passes do not read alike


def _each_in_utc(raw: pd.Series, dayfirst: bool) -> pd.Series:
    return pd.Series(
        [_one_in_utc(value, dayfirst) for value in raw],
        index=raw.index,
        dtype="datetime64[ns, UTC]",
    )


def _some_missed(raw: pd.Series, parsed: pd.Series) -> bool:
    """Whether some values were read as no time though the column has times of both kinds,
    with an offset and without (a value that is no time is refused later, naming it)."""
    missed = parsed.isna().to_numpy()
    if not missed.any():
        return False
    has_offset = raw.astype(str).str.strip().str.contains(_OFFSET_AT_END).to_numpy()
    return bool(has_offset.any()) and not bool(has_offset.all())


def _mixed_offsets_in_utc(raw: pd.Series, dayfirst: bool) -> pd.Series | None:
    """`times_in_utc` of a column whose offsets differ from row to row, in two vectorized
    passes (a value at a time took ~75 s for 200K minutes of a US stock): the values with an
    offset as the instants they name, those without one in exchange time. None when a pass
    does not read its values as it should (then each value is read on its own)."""
    text = raw.astype(str).str.strip()
    has_offset = text.str.contains(_OFFSET_AT_END).to_numpy()
    try:
        with_offset = pd.to_datetime(text[has_offset], errors="coerce", utc=True, dayfirst=dayfirst)
        without = pd.to_datetime(text[~has_offset], errors="coerce", dayfirst=dayfirst)
    except (ValueError, TypeError, OverflowError):
        return None
    if not pd.api.types.is_datetime64_dtype(without.dtype):  # an offset the pattern missed
        return None
    if with_offset.isna().any() or without.isna().any():  # a value not in its pass's format
        return None
    local = without.dt.tz_localize(EXCHANGE_ZONE, ambiguous="NaT", nonexistent="NaT")
    utc = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    utc[has_offset] = with_offset.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    utc[~has_offset] = local.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    return utc


def _one_in_utc(value: object, dayfirst: bool) -> pd.Timestamp:
    try:
        stamp = pd.to_datetime(value, dayfirst=dayfirst)
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
    if stamp is pd.NaT or not isinstance(stamp, pd.Timestamp):
        return pd.NaT
    if stamp.tzinfo is None:
        return stamp.tz_localize(EXCHANGE_ZONE, ambiguous="NaT", nonexistent="NaT").tz_convert(
            "UTC"
        )
    return stamp.tz_convert("UTC")


def times_ns(
    path: Path, column: str, raw: pd.Series, file_row: Callable[[int], int] = int
) -> np.ndarray:
    """The column's times as UTC ns (integers are epoch s, ms, us or ns, told apart by their
    size, or 8-digit YYYYMMDD dates, and so are floats that hold whole numbers; text and dates
    as `times_in_utc` reads them). A value that is not a time is refused naming the column and where it is in the file;
    `file_row(i)` is the 0-based file row of the column's i-th value."""
    if pd.api.types.is_integer_dtype(raw) or pd.api.types.is_float_dtype(raw):
        # Epoch integers stored as floats: a blank cell turns a CSV's column to floats, and
        # some tools write ms as float64. Read as nanoseconds they would be 1970 dates.
        whole = pd.api.types.is_integer_dtype(raw)
        values = (
            raw.to_numpy(dtype="int64") if whole else _whole_epochs(path, column, raw, file_row)
        )
        for low, high, digits in _DIGIT_TIMES:
            if len(values) and low <= values[0] <= high and _reads_as(values[0], digits):
                return _digit_dates_ns(path, column, values, file_row, digits)
        return epoch_ns(path, column, values, file_row)
    parsed = times_in_utc(raw)
    if parsed.isna().any():
        i = int(parsed.isna().to_numpy().argmax())
        raise InvalidInputError(
            f"bar file {str(path)!r}, column {column!r}, {file_position(path, file_row(i))}: "
            f"{raw.iloc[i]!r} is not a date and time (e.g. 2025-11-12T09:15:00+05:30, or "
            "2025-11-12 09:15 in IST) or epoch s, ms, us or ns"
        )
    # Timestamp.value is ns whatever resolution pandas chose for the column.
    return np.array([t.value for t in parsed], dtype="int64")


def _whole_epochs(
    path: Path, column: str, raw: pd.Series, file_row: Callable[[int], int]
) -> np.ndarray:
    """A float column's values as epoch integers; a blank, a fraction or an infinity is
    refused naming where it is (a fraction of a second in a bar time is a mistake)."""
    values = raw.to_numpy(dtype="float64")
    bad = ~np.isfinite(values)
    bad[~bad] = values[~bad] != np.floor(values[~bad])
    if bad.any():
        i = int(bad.argmax())
        what = "blank" if np.isnan(values[i]) else f"{plain_value(raw.iloc[i])!r}"
        raise InvalidInputError(
            f"bar file {str(path)!r}, column {column!r}, {file_position(path, file_row(i))}: "
            f"{what} is not a time: this column holds epoch times, which are whole numbers of "
            "s, ms, us or ns"
        )
    # Past int64's range the epoch check refuses them, by the size of the first value.
    return np.clip(values, -(2.0**63), 2.0**63 - 1024).astype("int64")


# Dates and times written as digits (tushare's trade_date, Stooq and MetaStock exports):
# YYYYMMDD lies below every epoch unit's span (_EPOCH_UNITS); YYYYMMDDHHMM inside epoch ms's,
# where it would be a time in 1976, so a first value that reads as a date and time wins;
# YYYYMMDDHHMMSS between the ms and us spans.
_DIGIT_TIMES = (
    (19000101, 21001231, "YYYYMMDD"),
    (190001010000, 210012312359, "YYYYMMDDHHMM"),
    (19000101000000, 21001231235959, "YYYYMMDDHHMMSS"),
)
_FORMATS = {"YYYYMMDD": "%Y%m%d", "YYYYMMDDHHMM": "%Y%m%d%H%M", "YYYYMMDDHHMMSS": "%Y%m%d%H%M%S"}


def _reads_as(value: int, digits: str) -> bool:
    return not pd.isna(pd.to_datetime(str(int(value)), format=_FORMATS[digits], errors="coerce"))


def _digit_dates_ns(
    path: Path,
    column: str,
    values: np.ndarray,
    file_row: Callable[[int], int],
    digits: str = "YYYYMMDD",
) -> np.ndarray:
    """Dates (times) written as `digits` numbers, as UTC ns of that local time in exchange
    time; a value that is no such date is refused naming where it is."""
    dates = pd.to_datetime(pd.Series(values.astype(str)), format=_FORMATS[digits], errors="coerce")
    if dates.isna().any():
        i = int(dates.isna().to_numpy().argmax())
        raise InvalidInputError(
            f"bar file {str(path)!r}, column {column!r}, {file_position(path, file_row(i))}: "
            f"{int(values[i])} is not a date written {digits}, as the first time is "
            f"({int(values[0])}: {dates.iloc[0]:%Y-%m-%d %H:%M:%S})"
        )
    local = dates.dt.tz_localize(EXCHANGE_ZONE).dt.tz_convert("UTC")
    return np.array([t.value for t in local], dtype="int64")


# Epoch integers from 1973-03-03 to 2286-11-20 in each unit: seconds have 9 or 10 digits, ms
# 12 or 13, us 15 or 16 and ns 18 or 19; the spans do not overlap, so a file's unit follows
# from its first value (a daily history from the 1990s in s or ms too).
_EPOCH_UNITS = ((10**8, 10**10, 10**9, "s"), (10**11, 10**13, 10**6, "ms"),
                (10**14, 10**16, 10**3, "us"), (10**17, 10**19, 1, "ns"))  # fmt: skip


def epoch_ns(
    path: Path, column: str, values: np.ndarray, file_row: Callable[[int], int] = int
) -> np.ndarray:
    """Epoch integers as ns: their unit told by the first value's size; a value outside that
    unit's span (another unit, a typo) is refused naming where it is."""
    if len(values) == 0:
        return values
    for low, high, scale, unit in _EPOCH_UNITS:
        if low <= values[0] < high:
            bad = (values < low) | (values >= high)
            if bad.any():
                i = int(bad.argmax())
                raise InvalidInputError(
                    f"bar file {str(path)!r}, column {column!r}, {file_position(path, file_row(i))}"
                    f": {int(values[i])} is not epoch {unit} as the first time is "
                    f"({int(values[0])})"
                )
            return values * scale
    raise InvalidInputError(
        f"bar file {str(path)!r}, column {column!r}, {file_position(path, file_row(0))}: "
        f"{int(values[0])} is no epoch time from 1973 to 2286 in s, ms, us or ns, nor a date "
        "written YYYYMMDD (19000101 to 21001231), YYYYMMDDHHMM or YYYYMMDDHHMMSS"
    )
