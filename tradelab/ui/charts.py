"""Per-session Bokeh figures: the intraday equity (net P&L) curve and the index's 15m / 1h bars.

A Bokeh figure cannot be shared between sessions: each session builds its own and updates
its sources in its own periodic callback (under the session's document lock).

The equity curve grows by a point a second: its new points are streamed (`ColumnDataSource.
stream`: only the new points go to the browser, the oldest rolled over past `points`; the
whole curve was resent every second before), nothing is sent while it has no point, and its
size does not depend on the data: a fixed height, and a left border wider than any P&L tick
label, so the plot area stays put when the labels change width (Bokeh still re-measures the
figure's own panels then, a few ms; the page's layout is not touched). The index's bars are
streamed the same way as they close (the source was replaced at every close before, a repaint
and a relayout of the figure in every page); a switch of interval, or a history that started
over, replaces them.

The bars' ranges are set here, not computed by the browser (a `DataRange1d` moved at every
close, so every close changed the tick labels and made Bokeh measure them and lay the figure out
again, ~100 ms in each page at once in a storm): they move in steps, only when a bar leaves
them (see `stepped_range`), so most closes repaint the glyphs and nothing else.
"""

from __future__ import annotations

import math

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, Range1d
from bokeh.plotting import figure

# Wide enough for the P&L axis's tick labels ("-250000", "-1.5e+6") and the index's, and ticks.
_LEFT_BORDER_PX = 80
# The bars' x range reaches this many bars past the newest when it has to move; the y range is
# padded by this share of the bars' span and rounded out to a tick-like step.
_X_AHEAD_BARS = 8
_Y_PAD = 0.1


def bar_x_range(
    shown: tuple[float, float] | None, first_start: float, last_end: float, width: float
) -> tuple[float, float]:
    """The time range (axis ms) for bars from `first_start` to `last_end`, `width` each:
    `shown` while it holds them with at most `_X_AHEAD_BARS` bars spare on the left (bars roll
    off there), else from half a bar before the first to `_X_AHEAD_BARS` bars past the last."""
    ahead = _X_AHEAD_BARS * width
    holds = shown is not None and last_end <= shown[1]
    if holds and first_start - ahead <= shown[0] <= first_start - width / 2:
        return shown
    return (first_start - width / 2, last_end + ahead)


def bar_y_range(shown: tuple[float, float] | None, low: float, high: float) -> tuple[float, float]:
    """The price range for bars from `low` to `high`: `shown` while it holds them and is at most
    three times their padded span, else their span padded by `_Y_PAD` and rounded out to a step
    of about a fifth of it (tick-like values)."""
    span = high - low
    pad = _Y_PAD * span
    step = nice_step(span + 2 * pad or abs(high) or 1.0)
    holds = shown is not None and shown[0] <= low and high <= shown[1]
    if holds and shown[1] - shown[0] <= 3 * max(span + 2 * pad, step):
        return shown
    return (math.floor((low - pad) / step) * step, math.ceil((high + pad) / step) * step)


def nice_step(span: float) -> float:
    """A 1, 2 or 5 times a power of ten step giving about five ticks over `span` (> 0)."""
    raw = max(span, 1e-9) / 5
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


class Charts:
    """Equity and index bar charts of one session; `interval` is a session preference.
    `points`: the equity samples kept in the browser (the host's ring keeps as many)."""

    def __init__(self, points: int = 2000) -> None:
        self.points = points
        self.equity_source = ColumnDataSource({"time": [], "net_pnl": []})
        self._equity_last: pd.Timestamp | None = None  # the newest equity point shown
        equity = _time_figure("Intraday net P&L")
        equity.line("time", "net_pnl", source=self.equity_source, line_width=2)
        self.bar_source = ColumnDataSource(
            {
                "start": [],
                "end": [],
                "mid": [],
                "open": [],
                "high": [],
                "low": [],
                "close": [],
                "color": [],
            }
        )
        self.bar_x_range, self.bar_y_range = Range1d(0, 1), Range1d(0, 1)
        bars = _time_figure("NIFTY", x_range=self.bar_x_range, y_range=self.bar_y_range)
        bars.segment("mid", "high", "mid", "low", source=self.bar_source, color="black")
        bars.quad(
            left="start",
            right="end",
            top="open",
            bottom="close",
            fill_color="color",
            line_color="black",
            source=self.bar_source,
        )
        self._bars: dict[str, pd.DataFrame] = {}  # the host's latest bars, per interval
        self._bars_shown: tuple[str, pd.Timestamp] | None = None  # interval, newest start
        self.interval = pn.widgets.RadioButtonGroup(options=["15m", "1h"], value="15m")
        # A per-session widget: the session's own preference, applied at once.
        self.interval.param.watch(lambda _event: self.show_bars(self._bars), "value")
        self.layout = pn.Column(
            pn.pane.Bokeh(equity, sizing_mode="stretch_width"),
            self.interval,
            pn.pane.Bokeh(bars, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    def show_equity(self, frame: pd.DataFrame) -> None:
        """Show the host's equity ring `frame` (times increasing): the points newer than the
        last shown are streamed; the whole curve is replaced only when it starts over (an
        empty frame, or a newest point older than the one shown)."""
        times = frame["time"]
        last = self._equity_last
        if frame.empty and last is None:
            return  # nothing shown, nothing to show
        if frame.empty or last is None or times.iloc[-1] < last:
            self._equity_last = None if frame.empty else times.iloc[-1]
            self.equity_source.data = {
                "time": times.to_numpy(),
                "net_pnl": frame["net_pnl"].to_numpy(),
            }
            return
        new = frame[times > last]
        if new.empty:
            return
        self._equity_last = new["time"].iloc[-1]
        self.equity_source.stream(
            {"time": new["time"].to_numpy(), "net_pnl": new["net_pnl"].to_numpy()},
            rollover=self.points,
        )

    def show_bars(self, bars: dict[str, pd.DataFrame]) -> None:
        """Show the chosen interval's closed bars (starts increasing, a bounded history): the
        bars newer than the newest shown are streamed, rolling over to the history's length;
        the whole chart is replaced on a switch of interval or when the history starts over."""
        self._bars = bars
        interval = self.interval.value
        frame = bars.get(interval)
        if frame is None or frame.empty:
            return
        newest = frame["start"].iloc[-1]
        shown = self._bars_shown
        self._bars_shown = (interval, newest)
        if shown is not None and shown[0] == interval and newest >= shown[1]:
            new = frame[frame["start"] > shown[1]]
            if not new.empty:
                self.bar_source.stream(_bar_columns(new), rollover=len(frame))
                self._fit_ranges(frame, keep=True)
            return
        self.bar_source.data = _bar_columns(frame)
        self._fit_ranges(frame, keep=False)

    def _fit_ranges(self, frame: pd.DataFrame, keep: bool) -> None:
        """Ranges holding every bar of `frame`; with `keep`, the ranges shown while they do."""
        x, y = self.bar_x_range, self.bar_y_range
        first, last = _naive_ms(frame["start"].iloc[0]), _naive_ms(frame["start"].iloc[-1])
        last_end = _naive_ms(frame["end"].iloc[-1])
        shown_x = (x.start, x.end) if keep else None
        shown_y = (y.start, y.end) if keep else None
        new_x = bar_x_range(shown_x, first, last_end, last_end - last)
        new_y = bar_y_range(shown_y, float(frame["low"].min()), float(frame["high"].max()))
        if new_x != shown_x:
            x.update(start=new_x[0], end=new_x[1])
        if new_y != shown_y:
            y.update(start=new_y[0], end=new_y[1])


def _time_figure(title: str, **ranges: Range1d) -> figure:
    """A chart over IST time whose size does not depend on its data (see the module docstring)."""
    return figure(
        **ranges,
        height=260,
        x_axis_type="datetime",
        title=title,
        x_axis_label="time (IST)",
        sizing_mode="stretch_width",
        min_border_left=_LEFT_BORDER_PX,
    )


def _naive_ms(at: pd.Timestamp) -> float:
    """`at` as the axis reads it: milliseconds of its naive local (IST) time."""
    return at.tz_localize(None).value / 1e6


def _bar_columns(frame: pd.DataFrame) -> dict[str, object]:
    # Naive local times: the axis then reads in IST, the exchange's clock.
    start = frame["start"].dt.tz_localize(None)
    end = frame["end"].dt.tz_localize(None)
    return {
        "start": start.to_numpy(),
        "end": end.to_numpy(),
        "mid": (start + (end - start) / 2).to_numpy(),
        "open": frame["open"].to_numpy(),
        "high": frame["high"].to_numpy(),
        "low": frame["low"].to_numpy(),
        "close": frame["close"].to_numpy(),
        "color": [
            "#2ca02c" if c >= o else "#d62728"
            for o, c in zip(frame["open"], frame["close"], strict=True)
        ],
    }
