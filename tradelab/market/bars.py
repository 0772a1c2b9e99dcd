"""Aggregate ticks into time bars (15-minute and 1-hour by default) aligned to the 09:15 open.

Bars close by time: the first tick at or after a bar's end closes every open bar ending by
then, whatever its symbol, so closing is deterministic in tick order. One thread feeds an
aggregator (it is not locked).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from tradelab.errors import InvalidInputError
from tradelab.market.clock import NS_PER_S, SESSION_CLOSE, SESSION_OPEN
from tradelab.market.instruments import IST
from tradelab.market.ticks import Tick

log = logging.getLogger(__name__)

INTERVAL_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}
# The longest bar a session builds from quotes: a replayed file of longer bars (a daily file)
# is traded on the session's own lengths (see session_intervals).
LONGEST_SESSION_BAR_S = 3600
_LENGTH_LABEL = re.compile(r"([1-9][0-9]*)([smh])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def interval_seconds(interval: str) -> int | None:
    """A bar length's seconds: one of INTERVAL_SECONDS, or a replayed file's own ('30m',
    '30s', '2h'); None for a label that is not one."""
    known = INTERVAL_SECONDS.get(interval)
    if known is not None:
        return known
    match = _LENGTH_LABEL.fullmatch(interval) if isinstance(interval, str) else None
    return int(match[1]) * _UNIT_SECONDS[match[2]] if match else None


def interval_label(seconds: int) -> str:
    """The label of a bar length in seconds, in its largest whole unit: 1800 -> '30m'."""
    for unit, label in ((3600, "h"), (60, "m")):
        if seconds >= unit and seconds % unit == 0:
            return f"{seconds // unit}{label}"
    return f"{max(seconds, 1)}s"


def session_intervals(configured: Sequence[str], bar_seconds: int | None = None) -> tuple[str, ...]:
    """The bar lengths a session builds: the configured ones (`lab.bar_intervals`), plus a
    replayed file's own (`bar_seconds`)."""
    if not configured:
        raise InvalidInputError(
            "lab.bar_intervals is empty; choose one or more bar lengths of at most 1h, e.g. 1m, "
            "5m, 15m, 1h"
        )
    # A length named twice ('60m' and '1h') is built once, under the label named first: the
    # one strategies then ask ctx.bars for.
    by_length: dict[int | None, str] = {}
    for label in configured:
        by_length.setdefault(interval_seconds(label), label)
    intervals = list(by_length.values())
    if bar_seconds is not None and 0 < bar_seconds <= LONGEST_SESSION_BAR_S:
        if bar_seconds not in by_length:  # 30m: built beside the configured lengths
            intervals.append(interval_label(bar_seconds))
    elif bar_seconds is not None and bar_seconds > LONGEST_SESSION_BAR_S:
        # A daily file: its strategies get the session's shorter bars, built from its quotes.
        log.warning(
            "the replayed file's bars are %s long; a session builds bars of at most 1h from its "
            "quotes, so strategies get %s bars (lab.bar_intervals), not the file's own: backtest "
            "the file (tradelab backtest FILE --strategy ...) to trade on its bars",
            _length(bar_seconds),
            ", ".join(sorted(intervals, key=interval_seconds)),
        )
    return tuple(sorted(intervals, key=interval_seconds))


def _length(seconds: int) -> str:
    days = seconds / 86_400
    if days >= 1:
        return f"{days:g} day{'' if days == 1 else 's'}"
    return f"{seconds / 3600:g} hours"


@dataclass(slots=True)
class Bar:
    """An OHLCV bar of one symbol; `start` inclusive, `end` exclusive, both UTC ns."""

    symbol: str
    interval: str
    start: int
    end: int
    open: float
    high: float
    low: float
    close: float
    volume: int | float  # whole units, or a coin's fraction as its bar file has it
    ticks: int

    def to_payload(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "start": self.start,
            "end": self.end,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "ticks": self.ticks,
        }


class BarAggregator:
    """Turns ticks into closed bars for each configured interval."""

    def __init__(
        self,
        intervals: tuple[str, ...] = ("15m", "1h"),
        *,
        session_open: time = SESSION_OPEN,
        session_close: time = SESSION_CLOSE,
        sessions: Callable[[date], tuple[time, time] | None] | None = None,
    ) -> None:
        """`sessions(day)`, when given, is that day's (open, close) in IST, None for a day
        without a session: a special session (a Diwali Muhurat hour) anchors its bars at its
        own open and ends its last one at its own close. Otherwise, and on days it gives None
        for, bars run from `session_open` to `session_close`."""
        unknown = [i for i in intervals if interval_seconds(i) is None]
        if unknown or not intervals:
            raise InvalidInputError(
                f"bar interval {unknown[0] if unknown else intervals!r} is not supported; "
                f"expected some of {', '.join(INTERVAL_SECONDS)} (or a length such as '30m')"
            )
        self.intervals = tuple(intervals)
        self._lengths = {i: interval_seconds(i) * NS_PER_S for i in intervals}
        self._session_open = session_open
        self._session_close = session_close
        self._sessions = sessions
        self._open_bars: dict[tuple[str, str], Bar] = {}
        self._next_close_ns: int | None = None
        # (day start, day end, open ns, close ns) of the day of the last tick
        self._day_cache: tuple[int, int, int, int] = (0, -1, 0, 0)

    def _session_day(self, ts: int) -> tuple[int, int]:
        """(open, close) ns of the session day holding `ts`."""
        day_start, day_end, anchor, close = self._day_cache
        if day_start <= ts < day_end:
            return anchor, close
        day = datetime.fromtimestamp(ts / NS_PER_S, tz=IST).date()

        def at(clock: time) -> int:
            return int(datetime.combine(day, clock, tzinfo=IST).timestamp()) * NS_PER_S

        bounds = self._sessions(day) if self._sessions is not None else None
        opens, closes = bounds or (self._session_open, self._session_close)
        anchor, close = at(opens), at(closes)
        self._day_cache = (at(time(0)), at(time(0)) + 86400 * NS_PER_S, anchor, close)
        return anchor, close

    def on_tick(self, tick: Tick) -> list[Bar]:
        """Add a tick; return the bars (of any symbol) that it closed, oldest first."""
        ts = tick.ts
        closed = (
            self.close_until(ts)
            if self._next_close_ns is not None and ts >= self._next_close_ns
            else []
        )
        price = tick.price
        anchor, close = self._session_day(ts)
        for interval in self.intervals:
            key = (tick.symbol, interval)
            bar = self._open_bars.get(key)
            if bar is None:
                length = self._lengths[interval]
                start = anchor + ((ts - anchor) // length) * length
                # The last bar of a session ends at its close (15:15-16:15 is 15:15-15:30); a
                # tick after the close (a file of other hours) still opens a whole bar.
                end = start + length
                if ts < close < end:
                    end = close
                bar = Bar(tick.symbol, interval, start, end, price, price, price, price, 0, 0)
                self._open_bars[key] = bar
                if self._next_close_ns is None or bar.end < self._next_close_ns:
                    self._next_close_ns = bar.end
            if price > bar.high:
                bar.high = price
            elif price < bar.low:
                bar.low = price
            bar.close = price
            bar.volume += tick.volume
            bar.ticks += 1
        return closed

    def close_until(self, ts: int) -> list[Bar]:
        """Close and return every open bar whose end is at or before `ts`."""
        closed = [bar for bar in self._open_bars.values() if bar.end <= ts]
        for bar in closed:
            del self._open_bars[(bar.symbol, bar.interval)]
        self._next_close_ns = min((b.end for b in self._open_bars.values()), default=None)
        closed.sort(key=lambda b: (b.end, b.symbol, b.interval))
        return closed

    def flush(self) -> list[Bar]:
        """Close every open bar (e.g. at the session close, where the last 1h bar is partial)."""
        closed = sorted(self._open_bars.values(), key=lambda b: (b.end, b.symbol, b.interval))
        self._open_bars.clear()
        self._next_close_ns = None
        return closed

    def open_bar(self, symbol: str, interval: str) -> Bar | None:
        return self._open_bars.get((symbol, interval))
