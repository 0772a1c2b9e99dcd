"""Per-session Bokeh figures: the intraday equity (net P&L) curve and the index's bars (15m, 1h).

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
over, replaces them. The bars' axis is market hours only, a slot per bar
(`tradelab.ui.bar_slots`): a few days of 15m bars were mostly closed market on a time axis.

Both charts' ranges are set here, not fitted to the data by the browser (a `DataRange1d` moved
at every bar close and every equity point, so each brought new tick labels to measure and a
relayout of the figure, in every page at once: a bar close was the longest frame of a storm):
they move in steps, only when the data leave them (`tradelab.ui.ranges`), so most updates
repaint the glyphs and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, Range1d
from bokeh.plotting import figure

from tradelab.ui.bar_slots import AXIS_LABEL, bar_columns, slot_formatter
from tradelab.ui.frames import EXCHANGE_TIME_COLUMN
from tradelab.ui.ranges import time_range, value_range

# Wide enough for the P&L axis's tick labels ("-250000", "-1.5e+6") and the index's, and ticks.
_LEFT_BORDER_PX = 80
# When a range has to move, the bars' reaches this many bars past the newest, the equity's a
# quarter of its span past the newest point (at least a minute).
_BARS_AHEAD = 8
_EQUITY_AHEAD_MS, _EQUITY_AHEAD_SHARE = 60_000.0, 0.25
_BAR_COLUMNS = (
    *("slot", "right", "mid", "start_ms", "width_ms"),
    *("open", "high", "low", "close", "color"),
)
_EQUITY_TITLE, _NO_EQUITY = "Intraday net P&L", "nothing traded yet"  # the title while empty


class Charts:
    """Equity and index bar charts of one session; `interval` is a session preference.
    `points`: the equity samples kept in the browser (the host's ring keeps as many);
    `intervals`: the bar lengths the session builds, offered in that order (15m first shown);
    `symbol`: the instrument whose bars are charted (the lab's `chart_symbol`)."""

    def __init__(
        self,
        points: int = 2000,
        intervals: tuple[str, ...] = ("15m", "1h"),
        symbol: str = "NIFTY",
    ) -> None:
        self.points = points
        self.equity_source = ColumnDataSource({"time": [], "net_pnl": []})
        self._equity_last: pd.Timestamp | None = None  # the newest equity point shown
        self.equity_x_range, self.equity_y_range = Range1d(0, 1), Range1d(0, 1)
        # One clock for both charts, the market's (as the trades' "exchange time"): the equity
        # is sampled on the feed's clock, so a fill's step in the P&L lines up with its bar
        # even in a simulated session running 60x the wall clock.
        self.equity_figure = equity = _time_figure(
            _EQUITY_TITLE,
            EXCHANGE_TIME_COLUMN,
            x_range=self.equity_x_range,
            y_range=self.equity_y_range,
        )
        equity.line("time", "net_pnl", source=self.equity_source, line_width=2)
        _mark_empty(equity, _EQUITY_TITLE, _NO_EQUITY)
        self.bar_source = ColumnDataSource({name: [] for name in _BAR_COLUMNS})
        self.bar_x_range, self.bar_y_range = Range1d(0, 1), Range1d(0, 1)
        self.bars_figure = bars = _time_figure(
            symbol,
            AXIS_LABEL,
            x_range=self.bar_x_range,
            y_range=self.bar_y_range,
            x_axis_type="linear",
        )
        bars.xaxis.formatter = slot_formatter(self.bar_source)
        bars.segment("mid", "high", "mid", "low", source=self.bar_source, color="black")
        bars.quad(
            left="slot",
            right="right",
            top="open",
            bottom="close",
            fill_color="color",
            line_color="black",
            source=self.bar_source,
        )
        self._symbol = symbol
        _mark_empty(bars, symbol, "no bar has closed yet")
        self._bars: dict[str, pd.DataFrame] = {}  # the host's latest bars, per interval
        self._bars_shown: tuple[str, pd.Timestamp] | None = None  # interval, newest start
        self.interval = pn.widgets.RadioButtonGroup(
            options=list(intervals), value="15m" if "15m" in intervals else intervals[0]
        )
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
            if frame.empty:
                _mark_empty(self.equity_figure, _EQUITY_TITLE, _NO_EQUITY)
            else:
                _mark_empty(self.equity_figure, _EQUITY_TITLE, None)
                self._fit_equity_ranges(frame, keep=False)
            return
        new = frame[times > last]
        if new.empty:
            return
        self._equity_last = new["time"].iloc[-1]
        self.equity_source.stream(
            {"time": new["time"].to_numpy(), "net_pnl": new["net_pnl"].to_numpy()},
            rollover=self.points,
        )
        self._fit_equity_ranges(frame.iloc[-self.points :], keep=True)  # what the browser keeps

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
                next_slot = int(self.bar_source.data["slot"][-1]) + 1
                self.bar_source.stream(bar_columns(new, next_slot), rollover=len(frame))
                self._fit_bar_ranges(keep=True)
            return
        self.bar_source.data = bar_columns(frame, 0)
        _mark_empty(self.bars_figure, self._symbol, None)
        self._fit_bar_ranges(keep=False)

    def _fit_bar_ranges(self, keep: bool) -> None:
        """Ranges holding every bar shown; with `keep`, the ranges shown while they do."""
        data = self.bar_source.data
        first, last_end = data["slot"][0], data["right"][-1]
        low, high = float(min(data["low"])), float(max(data["high"]))
        _fit(self.bar_x_range, keep, lambda s: time_range(s, first, last_end, 0.5, _BARS_AHEAD))
        _fit(self.bar_y_range, keep, lambda s: value_range(s, low, high))

    def _fit_equity_ranges(self, frame: pd.DataFrame, keep: bool) -> None:
        """Ranges holding the whole curve `frame` (not empty); with `keep`, as for the bars."""
        first, last = _naive_ms(frame["time"].iloc[0]), _naive_ms(frame["time"].iloc[-1])
        ahead = max(_EQUITY_AHEAD_MS, _EQUITY_AHEAD_SHARE * (last - first))
        low, high = float(frame["net_pnl"].min()), float(frame["net_pnl"].max())
        _fit(self.equity_x_range, keep, lambda s: time_range(s, first, last, 0.0, ahead))
        _fit(self.equity_y_range, keep, lambda s: value_range(s, low, high))


Fit = Callable[[tuple[float, float] | None], tuple[float, float]]


def _fit(axis: Range1d, keep: bool, fit: Fit) -> None:
    """Set `axis` to `fit(shown)`, shown being the range last set here with `keep` (else None);
    nothing is sent while that range holds. It is also the axis's reset range: the reset tool
    goes back to it, and a user's zoom or pan stays until the data leave it."""
    shown = (axis.reset_start, axis.reset_end) if keep and axis.reset_start is not None else None
    start, end = fit(shown)
    if (start, end) != shown:
        axis.update(start=start, end=end, reset_start=start, reset_end=end)


def _mark_empty(chart: figure, title: str, why_empty: str | None) -> None:
    """Title `title`, or while the chart has no data, `title: why_empty` with no axes: an empty
    range's axis would read 1970 (changed only when it changes: a relayout in every page)."""
    text = title if why_empty is None else f"{title}: {why_empty}"
    if chart.title.text != text:
        chart.title.text = text
        for axis in (*chart.xaxis, *chart.yaxis):
            axis.visible = why_empty is None


def _time_figure(
    title: str, x_label: str, x_axis_type: str = "datetime", **ranges: Range1d
) -> figure:
    """A chart over IST time whose size does not depend on its data (see the module docstring)."""
    return figure(
        **ranges,
        height=260,
        x_axis_type=x_axis_type,
        title=title,
        x_axis_label=x_label,
        sizing_mode="stretch_width",
        min_border_left=_LEFT_BORDER_PX,
    )


def _naive_ms(at: pd.Timestamp) -> float:
    """`at` as the axis reads it: milliseconds of its naive local (IST) time."""
    return at.tz_localize(None).value / 1e6
