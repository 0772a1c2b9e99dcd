"""Per-session Bokeh figures: the intraday equity (net P&L) curve and the index's 15m / 1h bars.

A Bokeh figure cannot be shared between sessions: each session builds its own and replaces
its sources' data in its own periodic callback (under the session's document lock).
"""

from __future__ import annotations

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure


class Charts:
    """Equity and index bar charts of one session; `interval` is a session preference."""

    def __init__(self) -> None:
        self.equity_source = ColumnDataSource({"time": [], "net_pnl": []})
        equity = figure(
            height=260,
            x_axis_type="datetime",
            title="Intraday net P&L",
            x_axis_label="time (IST)",
            sizing_mode="stretch_width",
        )
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
        bars = figure(
            height=260,
            x_axis_type="datetime",
            x_axis_label="time (IST)",
            title="NIFTY",
            sizing_mode="stretch_width",
        )
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
        self.interval = pn.widgets.RadioButtonGroup(options=["15m", "1h"], value="15m")
        self.layout = pn.Column(
            pn.pane.Bokeh(equity, sizing_mode="stretch_width"),
            self.interval,
            pn.pane.Bokeh(bars, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    def show_equity(self, frame: pd.DataFrame) -> None:
        self.equity_source.data = {
            "time": frame["time"].to_numpy(),
            "net_pnl": frame["net_pnl"].to_numpy(),
        }

    def show_bars(self, bars: dict[str, pd.DataFrame]) -> None:
        frame = bars.get(self.interval.value)
        if frame is None or frame.empty:
            return
        # Naive local times: the axis then reads in IST, the exchange's clock.
        start = frame["start"].dt.tz_localize(None)
        end = frame["end"].dt.tz_localize(None)
        self.bar_source.data = {
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
