"""Plot-ready HoloViews objects for the common questions: equity and drawdown, daily P&L, fills
on the price, latency histograms. Each takes an `Analytics` and returns an element or layout
whose data is the view it plots; render it with `hv.extension("bokeh")` or `pn.panel`.
"""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (styling options need a backend registered)
import numpy as np

from tradelab.analytics.analytics import Analytics
from tradelab.analytics.market_axis import DIMENSION, MarketAxis
from tradelab.errors import QueryError

# Hover says the exchange time of a point: the axis itself is market time (market_axis.py),
# whose seconds mean nothing to a reader.
_TIME = hv.Dimension("time", label="exchange time (IST)")
_AT = ("exchange time (IST)", "@{time}{%F %T}")
_LATENCIES = {
    "accept_ms": "submit to accepted (ms)",
    "first_fill_ms": "submit to first fill (ms)",
    "done_ms": "submit to done (ms)",
}


def equity_and_drawdown(
    analytics: Analytics, title: str = "Equity", axis: MarketAxis | None = None
) -> hv.Layout:
    """The equity curve (net P&L) above its drawdown, sharing the time axis (market hours
    only: `axis`, or one of the curve's own times)."""
    frame = analytics.sql("SELECT time, net, drawdown FROM equity ORDER BY seq")
    axis = axis or MarketAxis(frame["time"])
    frame = axis.place(frame)
    x = {"xformatter": axis.formatter(), "responsive": True}
    equity = hv.Curve(frame, DIMENSION, [("net", "net P&L"), _TIME]).opts(
        title=title, height=250, tools=["hover"], hover_tooltips=[_AT, ("net P&L", "@{net}")], **x
    )
    drawdown = hv.Area(frame, DIMENSION, ("drawdown", "drawdown")).opts(
        height=150, color="firebrick", alpha=0.5, **x
    )
    return (equity + drawdown).cols(1)


def daily_pnl(analytics: Analytics) -> hv.Bars:
    """Net P&L of each exchange day."""
    frame = analytics.sql("SELECT CAST(date AS VARCHAR) AS date, net FROM daily_pnl ORDER BY date")
    # Green for a profit day, red for a loss, as the backtest page colours its figures.
    frame["result"] = np.where(frame["net"] < 0, "loss", "profit")
    return hv.Bars(frame, ("date", "exchange day"), [("net", "net P&L"), "result"]).opts(
        title="Daily P&L",
        height=250,
        color="result",
        cmap={"profit": "#2ca02c", "loss": "#d62728"},
    )


def fills_on_price(analytics: Analytics, symbol: str, axis: MarketAxis | None = None) -> hv.Overlay:
    """The marks of `symbol` with its buys (green) and sells (red) at their fill prices, on a
    time axis of market hours (`axis`, or one of these marks and fills)."""
    marks, fills = _marks_and_fills(analytics, symbol)
    axis = axis or MarketAxis(marks["time"], fills["time"])
    marks, fills = axis.place(marks), axis.place(fills)
    price = hv.Curve(marks, DIMENSION, ["price", _TIME], label=symbol)
    if len(marks) < 2:  # a line of one point draws nothing
        price = price * hv.Scatter(marks, DIMENSION, ["price", _TIME], label=symbol).opts(size=6)
    dims = ["price", "quantity", _TIME]
    buys = hv.Scatter(fills[fills.side == "BUY"], DIMENSION, dims, label="BUY")
    sells = hv.Scatter(fills[fills.side == "SELL"], DIMENSION, dims, label="SELL")
    hover = {
        "tools": ["hover"],
        "hover_tooltips": [_AT, ("price", "@{price}"), ("quantity", "@{quantity}")],
    }
    return (
        price
        * buys.opts(color="green", size=8, marker="triangle", **hover)
        * sells.opts(color="red", size=8, marker="inverted_triangle", **hover)
    ).opts(title=f"Fills on {symbol}", responsive=True, height=300, xformatter=axis.formatter())


def backtest_overview(analytics: Analytics, symbol: str) -> hv.Layout:
    """A backtest at a glance: the price of `symbol` with every fill, then the equity and its
    drawdown below it, on one time axis of market hours."""
    marks, fills = _marks_and_fills(analytics, symbol)
    equity = analytics.sql("SELECT time FROM equity")
    axis = MarketAxis(marks["time"], fills["time"], equity["time"])
    return (
        fills_on_price(analytics, symbol, axis) + equity_and_drawdown(analytics, axis=axis)
    ).cols(1)


def _marks_and_fills(analytics: Analytics, symbol: str):
    marks = analytics.sql("SELECT time, price FROM marks WHERE symbol = ? ORDER BY seq", [symbol])
    fills = analytics.sql(
        "SELECT time, price, side, quantity FROM fills WHERE symbol = ? ORDER BY seq", [symbol]
    )
    if marks.empty and fills.empty:
        known = analytics.sql("SELECT DISTINCT symbol FROM marks ORDER BY 1")["symbol"]
        raise QueryError(
            f"no marks or fills of {symbol!r}; marked symbols: {', '.join(known) or 'none'}"
        )
    return marks, fills


def latency_histograms(analytics: Analytics, bins: int = 20) -> hv.Layout:
    """One histogram per order latency (accepted, first fill, done), in ms of journal time."""
    frame = analytics.sql("SELECT accept_ms, first_fill_ms, done_ms FROM latency")
    plots = []
    for column in frame.columns:
        values = frame[column].dropna().to_numpy()
        edges = np.histogram_bin_edges(values, bins=bins) if len(values) else np.arange(2.0)
        counts, edges = np.histogram(values, bins=edges)
        label = _LATENCIES.get(column, column)
        plots.append(
            hv.Histogram(
                (edges, counts), kdims=[hv.Dimension(column, label=label)], vdims=["orders"]
            ).opts(title=label)
        )
    return hv.Layout(plots).cols(3)
