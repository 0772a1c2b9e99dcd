"""Replay OHLCV bar files (CSV or Parquet) as ticks at 1x, Nx or as fast as possible.

Each bar becomes four ticks inside its interval (open, then low/high in the order the bar most
likely took, then close), so aggregating the ticks again reproduces the bar. A bar that starts
in the exchange's hours and would run past its close (a daily bar stamped 09:15) has its ticks
inside what is left of that session, where the paper broker takes orders. Column names are
read as `tradelab backtest` reads them (any case, Date for timestamp, symbol and volume
optional: bar_files.py). Files are checked on load: a bad file is an `InvalidInputError` naming
the file, the column and the row; bars on a day the exchange does not trade are kept but
logged as a warning and counted.
One thread iterates a feed; `clock` may be read from any thread.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import param

from tradelab.errors import InvalidInputError
from tradelab.market.bar_files import (
    check_high_low,
    checked_numbers,
    checked_symbols,
    columns_by_name,
    file_position,
    read_bar_frame,
    symbol_from_path,
    time_column,
    volumes_are_whole,
)
from tradelab.market.bar_times import times_ns
from tradelab.market.clock import NS_PER_S, MarketHours, SimulatedClock, run_paced
from tradelab.market.instruments import IST
from tradelab.market.ticks import Tick

log = logging.getLogger(__name__)

BAR_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")


class ReplayFeedConfig(param.Parameterized):
    """Where the bars come from and how fast they replay."""

    path = param.String(default="data/nifty_sample_1m.csv", doc="CSV or Parquet file of bars.")
    bar_seconds = param.Integer(default=60, bounds=(1, 86_400), doc="Length of one bar.")
    speed = param.Number(
        default=1.0, bounds=(0.001, 1_000_000.0), doc="Replay speed: 1 = real time, 60 = 60x."
    )
    as_fast_as_possible = param.Boolean(default=False, doc="Ignore `speed`; no pacing at all.")
    quote_size = param.Integer(
        default=1500, bounds=(0, 10_000_000), doc="Bid/ask size given to replayed quotes (units)."
    )


def load_bars(path: str | Path) -> pd.DataFrame:
    """Read and check a bar file; rows come back sorted by time (stable across symbols).

    `timestamp` is the bar start: a date and time (without an offset: IST), or an integer
    since the epoch (UTC) in s, ms, us or ns.
    """
    path = Path(path)
    frame = _standard_columns(read_bar_frame(path), path)
    frame["timestamp"] = _parse_timestamps(frame["timestamp"], path, frame.attrs["time_column"])
    for column in ("open", "high", "low", "close", "volume"):
        # The frame's index is each row's place in the file (it is sorted only at the end).
        frame[column] = checked_numbers(
            path,
            column,
            frame[column],
            volume=column == "volume",
            file_row=lambda i: int(frame.index[i]),
        )
    check_high_low(
        path,
        "'high'/'low'",
        tuple(frame[c].to_numpy() for c in ("open", "high", "low", "close")),
        lambda i: int(frame.index[i]),
    )
    frame["symbol"] = checked_symbols(
        path, "symbol", frame["symbol"], lambda i: int(frame.index[i])
    )
    if frame.empty:
        raise InvalidInputError(f"bar file {str(path)!r} has no bars (only its header)")
    repeated = frame.duplicated(["symbol", "timestamp"])
    if repeated.any():  # one bar replayed twice would trade it twice
        row = int(repeated.idxmax())
        raise InvalidInputError(
            f"bar file {str(path)!r}, {file_position(path, row)}: a second bar of "
            f"{frame.at[row, 'symbol']} at the same time; times must increase per symbol"
        )
    _check_in_order(frame, path)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _ist(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").tz_convert("Asia/Kolkata").strftime("%Y-%m-%d %H:%M:%S")


def _check_in_order(frame: pd.DataFrame, path: Path) -> None:
    """Refuse a symbol whose rows are out of time order, as `tradelab backtest` does: a shuffled
    file is usually a broken export. Oldest first or newest first (investing.com) are both in
    order; symbols may come one block after another (a yfinance download)."""
    for symbol, rows in frame.groupby("symbol", sort=False)["timestamp"]:
        steps = np.diff(rows.to_numpy(dtype="int64"))
        if len(steps) and not ((steps > 0).all() or (steps < 0).all()):
            i = int((steps <= 0).argmax() if steps[0] > 0 else (steps >= 0).argmax()) + 1
            row = int(rows.index[i])
            raise InvalidInputError(
                f"bar file {str(path)!r}, {file_position(path, row)}: the bars of {symbol} are "
                f"out of time order ({_ist(rows.iloc[i])} after {_ist(rows.iloc[i - 1])}); "
                "times must increase (or all decrease, newest first)"
            )


def _standard_columns(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """`frame` with the columns of BAR_COLUMNS, read as `tradelab backtest` reads a bar file:
    names in any case, Date (or datetime, time) for timestamp, and with no Symbol or Volume
    column, the file's name as the symbol (reliance.csv: RELIANCE) and volume 0."""
    columns = columns_by_name(frame)
    picked = {"timestamp": time_column(frame)}
    picked |= {name: columns.get(name) for name in BAR_COLUMNS[1:]}
    missing = [n for n, c in picked.items() if c is None and n not in ("symbol", "volume")]
    if missing:
        raise InvalidInputError(
            f"bar file {str(path)!r} has no column "
            f"{'Date' if missing[0] == 'timestamp' else missing[0]!r}; expected columns "
            f"{', '.join(BAR_COLUMNS)} (any case; Date for timestamp; symbol and volume "
            f"optional) (found {', '.join(map(str, frame.columns))})"
        )
    out = pd.DataFrame({n: frame[c] for n, c in picked.items() if c is not None})
    out.attrs["time_column"] = str(picked["timestamp"])  # named as in the file, in errors
    if picked["symbol"] is None:
        out["symbol"] = symbol_from_path(path)
    if picked["volume"] is None:
        out["volume"] = 0
    return out[list(BAR_COLUMNS)]


def _parse_timestamps(column: pd.Series, path: Path, name: str = "timestamp") -> pd.Series:
    # The column's index is each row's place in the file (it is sorted only at the end).
    ns = times_ns(path, name, column, lambda i: int(column.index[i]))
    return pd.Series(ns, index=column.index, dtype="int64")


def _closed_days(bars: pd.DataFrame, hours: MarketHours) -> tuple[tuple[date, ...], int]:
    """The IST dates in `bars` that are not trading days, and how many bars fall on them."""
    if bars.empty:
        return (), 0
    days = (
        pd.to_datetime(bars["timestamp"], unit="ns", utc=True).dt.tz_convert("Asia/Kolkata").dt.date
    )
    counts = days.value_counts()
    closed = sorted(day for day in counts.index if not hours.is_trading_day(day))
    return tuple(closed), int(sum(counts[day] for day in closed))


class ReplayFeed:
    """Iterate `ticks()` (or `run(on_tick)`) over a checked bar file."""

    def __init__(
        self, config: ReplayFeedConfig | None = None, *, hours: MarketHours | None = None
    ) -> None:
        self.config = config or ReplayFeedConfig()
        self.hours = hours or MarketHours()
        self.bars = load_bars(self.config.path)
        # The file's own bar length (a weekly file's 7 days); config.bar_seconds, what its ticks
        # are spread over, stops at a day. Set by whoever reads it (lab_config.replay_session).
        self.file_bar_seconds: int | None = None
        # Bars on a holiday or weekend are replayed as they are (the file is the record), but a
        # file that trades on a closed day is usually mis-dated: say so, and count them.
        self.non_trading_days, self.non_trading_day_bars = _closed_days(self.bars, self.hours)
        if not self.bars.empty:
            first, last = (
                pd.Timestamp(int(self.bars["timestamp"].agg(end)), tz="UTC").tz_convert(IST).date()
                for end in ("min", "max")
            )
            uncovered = self.hours.calendar.beyond_coverage(first, last)
            if uncovered:
                log.warning("bar file %r: %s", self.config.path, uncovered)
        if self.non_trading_day_bars:
            shown = ", ".join(d.isoformat() for d in self.non_trading_days[:5])
            more = len(self.non_trading_days) - 5
            log.warning(
                "bar file %r has %d bars on %d non-trading day(s): %s%s",
                self.config.path,
                self.non_trading_day_bars,
                len(self.non_trading_days),
                shown,
                f" and {more} more" if more > 0 else "",
            )
        start = int(self.bars["timestamp"].iloc[0]) if len(self.bars) else 0
        self.clock = SimulatedClock(start)
        self.symbols: list[str] = list(dict.fromkeys(self.bars["symbol"]))
        self.ticks_emitted = 0

    def ticks(self) -> Iterator[Tick]:
        size = self.config.quote_size
        # Four price points per bar at 0, 1/4, 1/2 and 3/4 of its span; ticks of all
        # symbols are merged in time order so a multi-symbol file replays as one stream.
        # Lazily: the bars come in start order, so a tick is due once no bar still to come
        # starts before it; the heap holds only the bars that overlap in time (not the file's
        # every tick: 1.4 KB a bar, 1.4 GB for a million).
        whole = volumes_are_whole(self.bars["volume"].to_numpy())
        rows = zip(self.bars.itertuples(index=False), self._spans(), strict=True)
        pending: list[tuple[int, int, Tick]] = []
        order = 0
        for (ts, symbol, o, h, low, c, v), span in rows:
            start = int(ts)
            while pending and pending[0][0] <= start:  # due before this bar's first tick
                yield self._played(heapq.heappop(pending))
            up = c >= o
            path = (o, low, h, c) if up else (o, h, low, c)
            volumes = (0, 0, 0, int(v) if whole else float(v))
            for k, price in enumerate(path):
                at = start + k * int(span) // 4
                tick = Tick(symbol, at, price, price, price, size, size, volumes[k])
                heapq.heappush(pending, (at, order, tick))
                order += 1
        while pending:
            yield self._played(heapq.heappop(pending))

    def _played(self, item: tuple[int, int, Tick]) -> Tick:
        self.clock.set(item[0])
        self.ticks_emitted += 1
        return item[2]

    def _spans(self) -> np.ndarray | list[int]:
        """Nanoseconds each bar's ticks spread over: its length, cut at its day's close when it
        starts in the exchange's hours (a bar starting outside them keeps its length)."""
        bar_ns = self.config.bar_seconds * NS_PER_S
        if self.bars.empty:
            return []
        starts = pd.to_datetime(self.bars["timestamp"], unit="ns", utc=True).dt.tz_convert(IST)
        day = starts.dt.normalize()
        hours = self.hours
        opens = day + pd.Timedelta(hours=hours.open_time.hour, minutes=hours.open_time.minute)
        closes = day + pd.Timedelta(hours=hours.close_time.hour, minutes=hours.close_time.minute)
        left = (closes - starts).dt.total_seconds().mul(1e9).round().astype("int64")
        inside = (starts >= opens) & (left > 0)
        return np.where(inside, np.minimum(left, bar_ns), bar_ns)

    def run(
        self,
        on_tick: Callable[[Tick], object],
        *,
        stop: threading.Event | None = None,
        max_ticks: int | None = None,
    ) -> int:
        speed = None if self.config.as_fast_as_possible else self.config.speed
        return run_paced(self.ticks(), on_tick, speed=speed, stop=stop, max_ticks=max_ticks)
