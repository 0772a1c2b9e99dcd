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
"""

from __future__ import annotations

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

# Wide enough for the P&L axis's tick labels ("-250000", "-1.5e+6") and the index's, and ticks.
_LEFT_BORDER_PX = 80


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
        bars = _time_figure("NIFTY")
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
            return
        self.bar_source.data = _bar_columns(frame)


def _time_figure(title: str) -> figure:
    """A chart over IST time whose size does not depend on its data (see the module docstring)."""
    return figure(
        height=260,
        x_axis_type="datetime",
        title=title,
        x_axis_label="time (IST)",
        sizing_mode="stretch_width",
        min_border_left=_LEFT_BORDER_PX,
    )


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
