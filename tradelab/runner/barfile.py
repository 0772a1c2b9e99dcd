"""Read a bar file for a backtest: CSV or Parquet with Date (or a timestamp, or an unnamed first
column of times: a pandas index) and Open, High, Low, Close, optional Volume and optional Symbol
columns, any case, any instrument, daily or intraday.

Times without an offset are exchange time (IST). A bad file is an `InvalidInputError` naming the file,
the column and the row. Pure function; no threads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from tradelab.errors import InvalidInputError, plain_value
from tradelab.market.bar_files import (
    bar_length_ns,
    check_high_low,
    checked_numbers,
    checked_symbols,
    columns_by_name,
    file_position,
    instrument_id,
    read_bar_frame,
    symbol_from_path,
    time_column,
)
from tradelab.market.bar_times import times_ns
from tradelab.market.bars import interval_label
from tradelab.market.instruments import IST

_PRICE_COLUMNS = ("open", "high", "low", "close")
log = logging.getLogger(__name__)
# A day whose bars are this many or more tells its bar length by its own smallest gap.
_BARS_TO_TELL_A_DAY = 10


@dataclass(frozen=True)
class BarSeries:
    """One instrument's bars, oldest first: times are bar starts in UTC ns; `ends` each bar's
    last second (a daily or longer bar's: a second before the midnight it ends at)."""

    symbol: str
    interval: str
    length_ns: int  # a bar's length (a month's bars: 28 days, their shortest)
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)


DAY_NS = 86_400_000_000_000
_IST_OFFSET_NS = int(IST.utcoffset(None).total_seconds()) * 10**9
_SECOND_NS = 1_000_000_000
# Bars whose median spacing is this or more are calendar bars (a day, a week, a month long):
# their length is told in whole days, which a DST change (a 23 h or 25 h day) or a month's
# length (28 to 31 days) does not change.
_CALENDAR_GAP_NS = 23 * 3600 * _SECOND_NS


def calendar_days(starts_ns: np.ndarray) -> int | None:
    """The bar length in days of a file of daily or longer bars (median spacing >= 23 h): the
    smallest gap in whole days, 7 for weeks (a holiday week starting on a Tuesday is no 6-day
    bar), 30 for months (any of 28 to 31 days apart; `bar_ends` ends each at its month's end).
    None for intraday bars, and for a file with two bars less than half a day apart (the
    smallest gap then stays the rule, and is warned of)."""
    gaps = np.diff(np.unique(starts_ns))
    if not len(gaps) or np.median(gaps) < _CALENDAR_GAP_NS:
        return None
    days = np.rint(gaps / DAY_NS).astype("int64")
    if days.min() == 0:
        return None
    usual = int(np.median(days))
    if 28 <= usual <= 31:
        return 30
    return 7 if 5 <= usual <= 8 else int(days.min())


def bar_ends(starts_ns: np.ndarray, length_ns: int, days: int | None) -> np.ndarray:
    """Each bar's last second: start + length for intraday bars (a night or a weekend after a
    bar is no part of it). A calendar bar ends a second before the midnight its length in days
    says, a month's at its month's end, never after the next bar starts (a DST change moves
    that midnight by an hour; a holiday week starts a day late)."""
    if days is None:
        return starts_ns + length_ns
    if days == 30:
        # The bar's date where it was stamped: a midnight is within 12 h of UTC's date + 12 h.
        local = (starts_ns + DAY_NS // 2).astype("datetime64[ns]").astype("datetime64[D]")
        next_month = local.astype("datetime64[M]") + 1
        spans = (next_month.astype("datetime64[D]") - local).astype("int64") * DAY_NS
    else:
        spans = np.full(len(starts_ns), days * DAY_NS, dtype="int64")
    ends = starts_ns + spans
    ends[:-1] = np.minimum(ends[:-1], starts_ns[1:])
    return ends - _SECOND_NS


def file_bar_length_ns(starts_ns: np.ndarray) -> int | None:
    """A bar file's bar length as a backtest reads it (`calendar_days`, else the smallest gap);
    None for fewer than two distinct starts."""
    days = calendar_days(starts_ns)
    return days * DAY_NS if days is not None else bar_length_ns(starts_ns)


def _one_bar_length(raw_time: object, start_ns: int, name: str) -> int:
    """A file of one bar says nothing of its length: a day for a date alone (midnight as written,
    or in exchange time, or in UTC: a day's bar stamped any of these ways), else a minute (a
    time of day such as 09:15 is no daily bar, which would end on the next day), said."""
    midnight = start_ns % DAY_NS == 0 or (start_ns + _IST_OFFSET_NS) % DAY_NS == 0
    try:
        written = pd.Timestamp(raw_time) if isinstance(raw_time, str | datetime) else None
    except ValueError:
        written = None
    if midnight or (written is not None and written == written.normalize()):
        return DAY_NS
    log.warning("bar file %r holds one bar at a time of day: taken as 1 minute long", name)
    return 60 * 10**9


def _interval_label(length_ns: int) -> str:
    if length_ns == 30 * DAY_NS:
        return "1mo"  # calendar months (calendar_days), as Yahoo names them
    step = length_ns // 1_000_000_000
    if step >= 86_400 and step % 86_400 == 0:
        return f"{step // 86_400}d"
    return interval_label(step)  # as a replay labels the file's own bars


def _bar_length_doubt(ts: np.ndarray, length: int, at: Callable[[int], str]) -> str | None:
    """Why the bar length read from `ts` (its smallest gap, `length`) may not be the file's,
    naming the rows, or None. The smallest gap stays the rule (a sparse 1m file is 1m), but it
    is fooled by a stray time (one bar 1 s after another: every bar taken as 1 s long) and by a
    file of two bar lengths (15m bars, then a day of 5m: all taken as 5m)."""
    if len(ts) < 3:
        return None
    gaps = np.diff(ts)
    usual = int(np.median(gaps))
    at_length = np.flatnonzero(gaps == length)
    if 2 * length <= usual and len(at_length) * 10 < len(gaps):
        i = int(at_length[0])
        return (
            f"its bars are taken as {_interval_label(length)} long, the smallest gap between "
            f"two (at {at(i)} and {at(i + 1)}; {len(at_length)} such gap"
            f"{'' if len(at_length) == 1 else 's'}), though most are "
            f"{_interval_label(usual)} apart: if that is a stray time, remove that row"
        )
    days = ts // DAY_NS  # UTC dates: a day of bars tells its own bar length
    firsts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    for start, end in zip(firsts, np.r_[firsts[1:], len(ts)], strict=True):
        day_gaps = gaps[start : end - 1]
        if end - start < _BARS_TO_TELL_A_DAY or day_gaps.min() < 2 * length:
            continue
        own = int(day_gaps.min())
        if not (day_gaps % own).any():  # all whole multiples of its own bar: not a sparse day
            shorter = int(at_length[0])
            return (
                f"its bars are {_interval_label(own)} apart from {at(int(start))} to "
                f"{at(int(end) - 1)} but {_interval_label(length)} at {at(shorter)} and "
                f"{at(shorter + 1)}: a file "
                f"of one bar length reads right; all are taken as {_interval_label(length)} "
                "long, the smallest gap"
            )
    return None


def load_bar_file(
    path: str | Path,
    symbol: str | None = None,
    *,
    named: Collection[str] = (),
    check_named: Callable[[Collection[str]], None] | None = None,
) -> BarSeries:
    """One symbol's bars: `symbol`, else the file's only one, else the one of `named` (the
    instruments the strategies name, e.g. sma_cross's `symbol`) the file holds.
    `check_named(symbols)` is called with the symbols of a file that has several, or a Symbol
    column and `symbol` given, before one is picked: the caller refuses a strategy naming one
    the file lacks in its own words."""
    path = Path(path)
    name = str(path)
    frame = read_bar_frame(path)
    columns = columns_by_name(frame)
    time_col = time_column(frame)
    missing = [c.title() for c in _PRICE_COLUMNS if c not in columns]
    if time_col is None or missing:
        raise InvalidInputError(
            f"bar file {name!r} has no column {'Date' if time_col is None else missing[0]!r}; "
            "expected Date (or timestamp, or an unnamed first column of times), Open, High, Low, "
            "Close and optional Volume, Symbol "
            f"(found {', '.join(map(str, frame.columns))})"
        )
    if symbol is not None:
        symbol = instrument_id(symbol)  # RELIANCE.NS names the file's RELIANCE_NS
    if "symbol" in columns:
        symbol_texts = checked_symbols(
            path, str(columns["symbol"]), frame[columns["symbol"]], lambda i: int(frame.index[i])
        )
        symbols = list(dict.fromkeys(symbol_texts))
        if check_named is not None and (len(symbols) > 1 or symbol is not None):
            check_named(symbols)
        if symbol is None:
            as_ids = {instrument_id(n) for n in named}  # a ticker as the file's rows trade
            chosen = [s for s in symbols if s in as_ids]
            if len(symbols) > 1 and len(chosen) != 1:
                raise InvalidInputError(
                    f"bar file {name!r} holds {len(symbols)} symbols ({', '.join(symbols[:6])}"
                    f"{', ...' if len(symbols) > 6 else ''}) and a backtest plays one; choose "
                    "it with --symbol (run_backtest: symbol=), or name it in the strategy "
                    "(sma_cross: --param symbol=). A strategy trading several (an index and "
                    "its options) is replayed instead: tradelab run --feed replay FILE --speed max"
                )
            symbol = chosen[0] if len(symbols) > 1 else symbols[0]
        elif symbol not in symbols:
            raise InvalidInputError(
                f"symbol {symbol!r} is not in bar file {name!r} (its {len(symbols)}: "
                f"{', '.join(symbols[:6])}{', ...' if len(symbols) > 6 else ''})"
            )
        frame = frame[symbol_texts == symbol]
    # Each kept row's place in the file, for errors; the frame is then indexed 0..n-1.
    file_rows = frame.index.to_numpy()
    frame = frame.reset_index(drop=True)
    if symbol is None:
        symbol = symbol_from_path(path)

    def at(row: int) -> str:
        return file_position(path, int(file_rows[row]))

    raw_times = frame[time_col]
    ts = times_ns(path, str(time_col), raw_times, lambda i: int(file_rows[i]))
    if len(ts) > 1 and ts[0] > ts[-1] and (np.diff(ts) <= 0).all():
        # Newest first, as some sites' downloads are (investing.com's): the same
        # bars read oldest first; errors still name each row's place in the file (a row
        # repeated in it is then named below as not after the one before it).
        frame, file_rows, ts = frame.iloc[::-1].reset_index(drop=True), file_rows[::-1], ts[::-1]
        raw_times = frame[time_col]
    values = {}
    for column in (*_PRICE_COLUMNS, "volume"):
        if column not in columns:
            values[column] = np.zeros(len(frame))
            continue
        values[column] = checked_numbers(
            path,
            str(columns[column]),
            frame[columns[column]],
            volume=column == "volume",
            file_row=lambda i: int(file_rows[i]),
        )
    check_high_low(
        path,
        f"{columns['high']!r}/{columns['low']!r}",
        (values["open"], values["high"], values["low"], values["close"]),
        lambda i: int(file_rows[i]),
    )
    if len(ts) > 1 and (np.diff(ts) <= 0).any():
        row = int((np.diff(ts) <= 0).argmax()) + 1
        raise InvalidInputError(
            f"bar file {name!r}, column {time_col!r}, {at(row)}: times must increase "
            f"({plain_value(raw_times.iloc[row])!r} is not after "
            f"{plain_value(raw_times.iloc[row - 1])!r})"
        )
    days = calendar_days(ts)
    length = file_bar_length_ns(ts) or _one_bar_length(raw_times.iloc[0], int(ts[0]), name)
    doubt = None if days is not None else _bar_length_doubt(ts, length, at)
    if doubt:
        log.warning("bar file %r: %s", name, doubt)
    if len(ts) == 1 and length == DAY_NS:
        days = 1
    return BarSeries(
        symbol,
        _interval_label(length),
        length,
        ts,
        values["open"],
        values["high"],
        values["low"],
        values["close"],
        values["volume"],
        bar_ends(ts, length, days),
    )
