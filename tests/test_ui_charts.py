"""The charts' ranges are set by the server and move in steps: a bar closing or an equity point
arriving inside them sends the data and nothing else (no tick labels to re-measure in the
browser); data outside them move them to hold it."""

from __future__ import annotations

import pandas as pd
from bokeh.document import Document

from tradelab.ui.bar_slots import slot_label
from tradelab.ui.charts import Charts
from tradelab.ui.ranges import nice_step, time_range, value_range


def test_nice_step_is_one_two_or_five_times_a_power_of_ten():
    assert [nice_step(s) for s in (100, 240, 900, 0.3)] == [20, 50, 200, 0.1]


def test_value_range_holds_while_values_fit_and_moves_in_steps_when_they_leave():
    first = value_range(None, 23_905.0, 23_990.0)
    assert first[0] <= 23_905 and first[1] >= 23_990
    step = nice_step(85 * 1.2)
    assert first[0] % step == 0 and first[1] % step == 0
    assert value_range(first, 23_910.0, 23_985.0) == first  # a bar inside: nothing moves
    wider = value_range(first, 23_905.0, 24_100.0)  # a bar above: it moves to hold it
    assert wider != first and wider[1] >= 24_100
    # Far tighter bars than the range (a new day's): it fits them again.
    assert value_range((20_000.0, 30_000.0), 23_905.0, 23_990.0) == first


def test_value_range_of_a_flat_series_is_not_empty():
    low, high = value_range(None, 0.0, 0.0)  # a P&L of zero before the first trade
    assert low < 0.0 < high


def test_time_range_leaves_room_ahead_and_moves_only_when_it_is_used():
    bar = 15 * 60_000.0
    first = time_range(None, 0.0, bar, bar / 2, 8 * bar)
    assert first == (-bar / 2, 9 * bar)
    # Seven more bars close: they fit in the room left ahead.
    assert time_range(first, 0.0, 8 * bar, bar / 2, 8 * bar) == first
    moved = time_range(first, 0.0, 10 * bar, bar / 2, 8 * bar)
    assert moved == (-bar / 2, 18 * bar)
    # The history rolled far past the left edge: the range follows it.
    assert time_range(moved, 12 * bar, 14 * bar, bar / 2, 8 * bar)[0] == 11.5 * bar


def _bars(start: int, stop: int, price: float = 100.0) -> pd.DataFrame:
    starts = pd.Timestamp("2026-01-05 09:15", tz="Asia/Kolkata") + pd.to_timedelta(
        [i * 15 for i in range(start, stop)], unit="min"
    )
    prices = [price + i for i in range(start, stop)]
    return pd.DataFrame(
        {
            "start": starts,
            "end": starts + pd.Timedelta(minutes=15),
            "open": prices,
            "high": [p + 2 for p in prices],
            "low": [p - 2 for p in prices],
            "close": [p + 1 for p in prices],
        }
    )


def _equity(start: int, stop: int, pnl: float = 0.0) -> pd.DataFrame:
    times = pd.Timestamp("2026-01-05 09:15") + pd.to_timedelta(range(start, stop), unit="s")
    return pd.DataFrame({"time": times, "net_pnl": [pnl + i for i in range(start, stop)]})


def _document(*models) -> list[str]:
    document = Document()
    for model in models:
        document.add_root(model)
    sent: list[str] = []
    document.on_change(lambda event: sent.append(type(event).__name__))
    return sent


def test_an_equity_point_inside_the_ranges_sends_the_point_and_nothing_else():
    charts = Charts(points=100)
    x, y = charts.equity_x_range, charts.equity_y_range
    sent = _document(charts.equity_source, x, y)
    charts.show_equity(_equity(0, 10, pnl=100.0))
    shown = (x.start, x.end, y.start, y.end)
    assert x.start <= _ms("09:15:00") and x.end >= _ms("09:15:09") + 60_000  # a minute ahead
    assert y.start <= 100.0 and y.end >= 109.0
    del sent[:]
    charts.show_equity(_equity(0, 11, pnl=100.0))  # one more second, one more rupee
    assert sent == ["ColumnsStreamedEvent"]
    assert (x.start, x.end, y.start, y.end) == shown
    charts.show_equity(_equity(0, 12, pnl=100.0).assign(net_pnl=lambda f: f["net_pnl"] * 10))
    assert y.end >= 1110.0  # a jump of the P&L: the range moves to hold it
    charts.show_equity(_equity(0, 100, pnl=100.0))  # past the room ahead: time moves on
    assert x.end >= _ms("09:16:39")


def _ms(clock: str) -> float:
    return pd.Timestamp(f"2026-01-05 {clock}").value / 1e6


def test_a_bar_close_inside_the_ranges_sends_the_bar_and_nothing_else():
    charts = Charts()
    document = Document()
    for model in (charts.bar_source, charts.bar_x_range, charts.bar_y_range):
        document.add_root(model)
    charts.show_bars({"15m": _bars(0, 3)})
    x, y = (charts.bar_x_range.start, charts.bar_x_range.end), charts.bar_y_range.end
    sent: list[str] = []
    document.on_change(lambda event: sent.append(type(event).__name__))
    charts.show_bars({"15m": _bars(0, 4)})
    assert sent == ["ColumnsStreamedEvent"]
    assert (charts.bar_x_range.start, charts.bar_x_range.end) == x
    assert charts.bar_y_range.end == y
    # Every bar shown lies inside the ranges.
    data = charts.bar_source.data
    assert charts.bar_y_range.start <= min(data["low"]) and max(data["high"]) <= y
    charts.show_bars({"15m": _bars(0, 5, price=500.0)})  # a new session far above: refitted
    assert charts.bar_y_range.start <= 498.0 and charts.bar_y_range.end >= 506.0


def test_a_users_zoom_stays_while_the_bars_fit_and_reset_goes_to_the_fitted_range():
    charts = Charts()
    x = charts.bar_x_range
    charts.show_bars({"15m": _bars(0, 3)})
    fitted = (x.start, x.end)
    assert (x.reset_start, x.reset_end) == fitted  # the reset tool's range
    x.update(start=fitted[0] + 1000.0, end=fitted[0] + 2000.0)  # the user zooms in the browser
    charts.show_bars({"15m": _bars(0, 4)})  # a close inside the fitted range
    assert (x.start, x.end) == (fitted[0] + 1000.0, fitted[0] + 2000.0)
    charts.show_bars({"15m": _bars(0, 12)})  # past the room ahead: the range moves
    assert x.end > fitted[1] and (x.reset_start, x.reset_end) == (x.start, x.end)


def test_both_charts_run_on_the_market_clock_and_say_so_as_the_trades_do():
    # The equity is sampled on the feed's clock, as the bars are: in a fast replay the wall
    # clock is hours away, and two axes on two clocks put a fill's P&L step beside no bar.
    charts = Charts()
    assert charts.equity_figure.xaxis[0].axis_label == "exchange time (IST)"
    assert charts.bars_figure.xaxis[0].axis_label == "exchange time (IST), market hours only"


def test_bars_across_a_night_and_a_weekend_sit_side_by_side_and_ticks_read_their_times():
    # On a time axis three days of 15m bars were three strips in a mostly empty chart.
    friday = _bars(0, 2).assign(
        start=lambda f: f["start"] + pd.Timedelta(hours=6),  # 15:15 and 15:30 on Friday 9 Jan
        end=lambda f: f["end"] + pd.Timedelta(hours=6),
    )
    friday[["start", "end"]] += pd.Timedelta(days=4)
    monday = _bars(0, 2).assign(
        start=lambda f: f["start"] + pd.Timedelta(days=7),  # 09:15 and 09:30 on Monday 12 Jan
        end=lambda f: f["end"] + pd.Timedelta(days=7),
    )
    charts = Charts()
    charts.show_bars({"15m": friday.iloc[:1]})
    charts.show_bars({"15m": pd.concat([friday, monday.iloc[:1]], ignore_index=True)})
    charts.show_bars({"15m": pd.concat([friday, monday], ignore_index=True)})
    data = charts.bar_source.data
    assert list(data["slot"]) == [0.0, 1.0, 2.0, 3.0]  # streamed bars take the next slots
    assert list(data["right"]) == [1.0, 2.0, 3.0, 4.0]
    x = charts.bar_x_range
    assert x.start <= 0.0 and x.end >= 4.0 and x.end - x.start < 20  # room for a few bars ahead

    def label(at: float) -> str:
        return slot_label(list(data["slot"]), list(data["start_ms"]), list(data["width_ms"]), at)

    assert [label(s) for s in (0, 1, 1.5, 2, 3)] == [
        "09 Jan 15:15",
        "09 Jan 15:30",
        "09 Jan 15:37",
        "12 Jan 09:15",
        "12 Jan 09:30",
    ]
    assert label(4) == "12 Jan 09:45"  # the newest bar's end
    assert label(6) == label(-1) == ""  # room for bars to come: their times are not known
    # A history that starts over (older than the bars shown) starts at slot 0 again.
    charts.show_bars({"15m": friday})
    assert list(charts.bar_source.data["slot"]) == [0.0, 1.0]


def test_the_interval_buttons_are_the_sessions_bar_lengths_and_switching_shows_that_series():
    charts = Charts(intervals=("1m", "15m", "1h"))
    assert charts.interval.options == ["1m", "15m", "1h"] and charts.interval.value == "15m"
    charts.show_bars({"1m": _bars(0, 6, price=200.0), "15m": _bars(0, 2)})
    assert len(charts.bar_source.data["close"]) == 2
    charts.interval.value = "1m"
    assert len(charts.bar_source.data["close"]) == 6
    assert Charts(intervals=("1m",)).interval.value == "1m"


def test_an_empty_chart_says_why_and_shows_no_axes_until_it_has_data():
    # An empty range's datetime axis reads "Jan 01, 1970": a chart with no data says so instead.
    charts = Charts(symbol="RELIANCE")
    equity, bars = charts.equity_figure, charts.bars_figure

    def axes_shown(chart) -> set[bool]:
        return {axis.visible for axis in (*chart.xaxis, *chart.yaxis)}

    assert equity.title.text == "Intraday net P&L: nothing traded yet"
    assert bars.title.text == "RELIANCE: no bar has closed yet"
    assert axes_shown(equity) == axes_shown(bars) == {False}
    charts.show_equity(_equity(0, 10))
    charts.show_bars({"15m": _bars(0, 3)})
    assert (equity.title.text, bars.title.text) == ("Intraday net P&L", "RELIANCE")
    assert axes_shown(equity) == axes_shown(bars) == {True}
    charts.show_equity(_equity(0, 0))  # the curve starts over (a new session)
    assert equity.title.text == "Intraday net P&L: nothing traded yet"
    assert axes_shown(equity) == {False}
