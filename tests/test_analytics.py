"""Analytics views over a scripted journal, against P&L worked out by hand (tests/analytics_script.py)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from tests import analytics_script as script
from tradelab.analytics import Analytics, QueryError, sql
from tradelab.engine import Engine
from tradelab.errors import JournalError


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    path = tmp_path_factory.mktemp("analytics") / "script.duckdb"
    built = script.build(path)
    return Analytics(path), built


def test_fills_carry_the_pnl_each_one_realized(scripted):
    analytics, _ = scripted
    fills = analytics.sql("SELECT trade_id, side, price, realized_pnl, position_after FROM fills")
    assert fills.to_dict("list") == {
        "trade_id": ["F1", "F2", "F3", "F4"],
        "side": ["BUY", "SELL", "SELL", "SELL"],
        "price": [100.0, 120.0, 95.0, 50.0],
        "realized_pnl": [0.0, 1500.0, -375.0, 0.0],  # (120-100)*75, (95-100)*75
        "position_after": [150, 75, 0, -75],
    }
    assert analytics.source == "journal" and analytics.note == ""


def test_round_trip_averages_its_exits(scripted):
    analytics, _ = scripted
    trades = analytics.sql("SELECT * FROM trades")
    assert len(trades) == 1  # the short in Y is still open
    trip = trades.iloc[0]
    assert (trip.direction, trip.quantity, trip.entry_price) == ("LONG", 150, 100.0)
    assert trip.exit_price == 107.5  # (120*75 + 95*75) / 150
    assert (trip.realized_pnl, trip.fees, trip.net_pnl) == (1125.0, 30.0, 1095.0)
    assert trip.holding_minutes == 100.0  # 09:20 -> 11:00


def test_equity_drawdown_and_daily_pnl_match_hand_computed(scripted):
    analytics, built = scripted
    equity = analytics.sql("SELECT net, drawdown FROM equity ORDER BY seq")
    # After F1, bar 09:45, F2, bar 10:45, F3 (day 1); F4, bar 10:00, bar 15:30 (day 2). At F2
    # the 75 left are valued at the mark (110), as the live book values them, not at F2's 120:
    # realized 1500 + unrealized 750 - fees 20.
    assert equity["net"].tolist() == [-10.0, 1490.0, 2230.0, 730.0, 1095.0, 1090.0, 1840.0, 340.0]
    # The peak starts at 0 (nothing traded yet): F1's fee is the first drawdown.
    assert equity["drawdown"].tolist() == [
        -10.0,
        0.0,
        0.0,
        -1500.0,
        -1135.0,
        -1140.0,
        -390.0,
        -1890.0,
    ]
    # The last point equals the live store's book P&L.
    final = built["pnl"]
    assert equity["net"].iloc[-1] == pytest.approx(
        final["realized"] + final["unrealized"] - final["fees"]
    )
    daily = analytics.sql("SELECT * FROM daily_pnl ORDER BY date")
    assert daily["date"].dt.date.tolist() == [dt.date(2025, 11, 12), dt.date(2025, 11, 13)]
    assert daily["realized"].tolist() == [1125.0, 0.0]
    assert daily["fees"].tolist() == [30.0, 5.0]
    assert daily["net"].tolist() == [1095.0, -755.0]
    assert daily["fills"].tolist() == [3, 1]


def test_positions_over_time_follow_each_fill(scripted):
    analytics, _ = scripted
    held = analytics.sql(
        "SELECT symbol, net_quantity, average_price, realized_pnl, fees FROM positions ORDER BY seq"
    )
    assert held.values.tolist() == [
        [script.X, 150, 100.0, 0.0, 10.0],
        [script.X, 75, 100.0, 1500.0, 20.0],
        [script.X, 0, 0.0, 1125.0, 30.0],
        [script.Y, -75, 50.0, 0.0, 5.0],
    ]


def test_orders_end_where_the_order_reducer_ends_them(scripted):
    analytics, _ = scripted
    orders = analytics.sql("SELECT order_id, status, filled_quantity, reason FROM orders")
    by_id = {row.order_id: row for row in orders.itertuples()}
    assert by_id["O1"].status == "filled" and by_id["O1"].filled_quantity == 150
    assert by_id["O4"].status == "rejected" and by_id["O4"].reason == "insufficient margin"
    assert by_id["O5"].status == "denied"
    latency = analytics.sql("SELECT order_id, accept_ms, first_fill_ms, done_ms FROM latency")
    assert sorted(latency.order_id) == ["O1", "O2", "O3", "O4", "O6"]
    filled = latency[latency.order_id != "O4"]
    assert (filled.accept_ms >= 0).all() and (filled.done_ms >= filled.accept_ms).all()
    stats = analytics.latency_stats().set_index("latency")
    assert stats.loc["done_ms", "orders"] == 5 and stats.loc["accept_ms", "orders"] == 4


def test_risk_and_reconciliation_views(scripted):
    analytics, _ = scripted
    # `who`, not the payload's `by`: a column named by would need quoting in every query.
    risk = analytics.sql("SELECT topic, reason, coalesce(who, '-') FROM risk_events ORDER BY seq")
    assert risk.values.tolist() == [
        ["order.denied", "max lots", "-"],
        ["risk.halted", "operator", "test"],
        ["risk.resumed", "operator", "test"],
    ]
    mismatch = analytics.sql("SELECT kind, item, expected, actual FROM reconciliation_mismatches")
    assert mismatch.values.tolist() == [["quantity_mismatch", "s1:NIFTY", "75", "0"]]


def test_unknown_column_names_the_view_and_its_columns(scripted):
    analytics, _ = scripted
    with pytest.raises(QueryError) as caught:
        analytics.sql("SELECT pnl FROM fills")
    text = str(caught.value)
    assert '"pnl" not found' in text
    assert "view 'fills' has columns: seq, ts, exchange_ts, time, trade_id" in text
    with pytest.raises(QueryError, match="the views are events, order_events, orders, fills"):
        analytics.sql("SELECT * FROM fill")
    with pytest.raises(QueryError, match="no view 'equity_curve'"):
        analytics.describe("equity_curve")


def test_views_lists_every_view_with_its_columns(scripted):
    analytics, _ = scripted
    listed = analytics.views().set_index("view")
    assert {"orders", "fills", "trades", "positions", "equity", "drawdown", "daily_pnl"} <= set(
        listed.index
    )
    assert {"reconciliation_mismatches", "risk_events", "latency"} <= set(listed.index)
    assert "realized_pnl" in listed.loc["fills", "columns"]
    described = analytics.describe("equity")
    assert described.set_index("column").loc["net", "type"] == "DOUBLE"


def test_module_level_sql_reads_the_same_journal(scripted):
    analytics, _ = scripted
    counts = sql("SELECT count(*) AS n FROM fills", journal=analytics.journal)
    assert counts["n"].tolist() == [4]


def test_plots_hold_the_views_data(scripted):
    import holoviews as hv

    from tradelab.analytics import plots

    analytics, _ = scripted
    layout = plots.equity_and_drawdown(analytics)
    curve, area = layout.Curve.I, layout.Area.I
    assert curve.dimension_values("net").tolist()[-1] == 340.0
    assert area.dimension_values("drawdown").min() == -1890.0
    days = plots.daily_pnl(analytics)
    assert days.dimension_values("net").tolist() == [1095.0, -755.0]
    # A profit day green, a loss day red (both were one blue).
    rendered = hv.render(days, backend="bokeh")
    [bars] = [r for r in rendered.renderers if hasattr(r.glyph, "fill_color")]
    colours = bars.glyph.fill_color["transform"].palette
    assert dict(zip(bars.glyph.fill_color["transform"].factors, colours, strict=True)) == {
        "profit": "#2ca02c",
        "loss": "#d62728",
    }
    overlay = plots.fills_on_price(analytics, script.X)
    assert overlay.Scatter.BUY.dimension_values("price").tolist() == [100.0]
    assert overlay.Scatter.SELL.dimension_values("price").tolist() == [120.0, 95.0]
    with pytest.raises(QueryError, match="no marks or fills of 'NOPE'"):
        plots.fills_on_price(analytics, "NOPE")
    histograms = plots.latency_histograms(analytics)
    assert sum(histograms.Histogram.III.dimension_values("orders")) == 5
    # Every axis says its clock or its unit.
    assert curve.kdims[0].pprint_label == "exchange time (IST), market hours only"
    assert overlay.Scatter.BUY.kdims[0].pprint_label == "exchange time (IST), market hours only"
    assert histograms.Histogram.I.kdims[0].pprint_label == "submit to accepted (ms)"


def test_a_missing_or_foreign_file_is_a_clear_error(tmp_path):
    with pytest.raises(JournalError, match="no journal at .*nope.duckdb and no sealed segments"):
        Analytics(tmp_path / "nope.duckdb").sql("SELECT 1")
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE prices (x INT)")
    con.close()
    with pytest.raises(JournalError, match="not a readable tradelab journal"):
        Analytics(other).sql("SELECT * FROM fills")
    with pytest.raises(QueryError, match="is empty"):
        Analytics(other).sql("  ")


def test_a_file_that_is_no_journal_is_named_for_what_it_is(tmp_path):
    from tradelab.journal import JournalReader

    bars = tmp_path / "bars.csv"
    bars.write_text("Date,Open,High,Low,Close\n2024-03-01,10,11,9,10\n")
    garbled = tmp_path / "lab.duckdb"
    garbled.write_bytes(b"\0" * 4096)
    for path, said in ((bars, "is a CSV file, not a journal"), (garbled, "does not start as")):
        with pytest.raises(JournalError, match=said):
            Analytics(path).sql("SELECT count(*) FROM fills")
        with pytest.raises(JournalError, match=said):
            JournalReader(path).counts_by_topic()


def test_bars_closing_together_are_one_point_of_the_equity_curve(tmp_path):
    from tradelab.engine import Engine

    path = tmp_path / "together.duckdb"
    with Engine(journal_path=str(path), writer_process=False) as engine:
        fill = {"order_id": "O1", "strategy": "s", "side": "BUY", "quantity": 75, "fee": 0.0}
        for symbol, price in ((script.X, 100.0), (script.Y, 50.0)):
            engine.submit(
                "trade.executed",
                fill
                | {"trade_id": f"T{symbol}", "position_id": f"s:{symbol}", "symbol": symbol}
                | {"price": price, "lot_size": 75, "ts": script.at(12, "09:20")},
                key=f"s:{symbol}",
            )
        for symbol, close in ((script.X, 110.0), (script.Y, 40.0)):  # +750, then -750
            engine.submit(
                "market.bar",
                {"symbol": symbol, "interval": "15m", "start": script.at(12, "09:30")}
                | {"end": script.at(12, "09:45"), "open": close, "high": close, "low": close}
                | {"close": close, "volume": 0, "ticks": 1, "mark": True},
                key=symbol,
            )
    equity = Analytics(path).sql("SELECT time, net FROM equity ORDER BY seq")
    at_close = equity[equity["time"] == dt.datetime(2025, 11, 12, 9, 45)]
    assert at_close["net"].tolist() == [0.0]  # one point, both bars in it (not +750 then 0)


def test_without_bars_the_equity_curve_has_a_point_a_second_after_all_its_marks(tmp_path):
    # A session stopped before its first bar closed: every mark was a point, so the curve drew
    # the book between two legs' re-marks (one re-priced, the other not yet), a comb of spikes.
    from tradelab.engine import Engine

    path = tmp_path / "marks.duckdb"
    second = 1_000_000_000
    start = script.at(12, "09:20")
    with Engine(journal_path=str(path), writer_process=False) as engine:
        fill = {"order_id": "O1", "strategy": "s", "side": "SELL", "quantity": 75, "fee": 0.0}
        for symbol in (script.X, script.Y):
            engine.submit(
                "trade.executed",
                fill
                | {"trade_id": f"T{symbol}", "position_id": f"s:{symbol}", "symbol": symbol}
                | {"price": 100.0, "lot_size": 75, "ts": start},
                key=f"s:{symbol}",
            )
        # Each second one leg goes up 2 and the other down 2: the book does not move.
        for i in range(1, 4):
            for offset, symbol, price in (
                (0.2, script.X, 100 + 2 * i),
                (0.6, script.Y, 100 - 2 * i),
            ):
                at = start + i * second + int(offset * second)
                engine.submit(
                    "mark.updated", {"symbol": symbol, "price": price, "ts": at}, key=symbol
                )
    equity = Analytics(path).sql("SELECT exchange_ts, net FROM equity ORDER BY seq")
    marked = equity[equity["exchange_ts"] > start]
    assert marked["net"].tolist() == [0.0, 0.0, 0.0]
    assert ((marked["exchange_ts"] - start) // second).tolist() == [1, 2, 3]


def test_an_order_that_never_filled_has_no_average_price_whatever_its_status(tmp_path):
    # The broker reports 0.0 before a fill: an avg() over orders counted each as a price of 0.
    from tradelab.engine import Engine

    path = tmp_path / "orders.duckdb"
    with Engine(journal_path=str(path), writer_process=False) as engine:
        for oid, end, filled in (("C", "order.cancelled", 0), ("F", "order.filled", 75)):
            base = {"order_id": oid, "symbol": script.X, "side": "BUY", "quantity": 75}
            engine.submit("order.submitted", base | {"strategy": "s", "order_type": "MARKET"})
            report = base | {"strategy": "s", "broker_order_id": f"B{oid}"}
            engine.submit("order.accepted", report | {"filled_quantity": 0, "average_price": 0.0})
            engine.submit(
                end, report | {"filled_quantity": filled, "average_price": 101.5 * bool(filled)}
            )
    analytics = Analytics(path)
    orders = analytics.sql("SELECT order_id, average_price FROM orders ORDER BY order_id")
    assert orders["order_id"].tolist() == ["C", "F"]
    assert orders["average_price"].isna().tolist() == [True, False]
    assert orders["average_price"].iloc[1] == 101.5
    accepted = analytics.sql("SELECT average_price FROM order_events WHERE status = 'accepted'")
    assert accepted["average_price"].isna().all()


def test_every_equity_point_is_the_book_pnl_the_live_store_had_at_that_seq(tmp_path):
    # Fills away from the mark (the spread paid counts at once, as for the loss limit), two
    # strategies on one symbol, both first filled before it had any mark (each valued at its
    # own first fill's price until one comes), adds, a reversal.
    path = tmp_path / "book.duckdb"
    with Engine(journal_path=str(path), writer_process=False, snapshot_every_seconds=0) as engine:
        n = 0

        def fill(strategy, side, qty, price, hhmm):
            nonlocal n
            n += 1
            payload = {
                "trade_id": f"F{n}",
                "order_id": f"O{n}",
                "position_id": f"{strategy}:{script.X}",
                "strategy": strategy,
                "symbol": script.X,
                "side": side,
                "quantity": qty,
                "price": price,
                "fee": 20.0,
                "lot_size": script.LOT,
                "ts": script.at(12, hhmm),
            }
            engine.submit("trade.executed", payload, key=payload["position_id"])

        def mark(price, hhmm):
            payload = {"symbol": script.X, "price": price, "ts": script.at(12, hhmm)}
            engine.submit("mark.updated", payload, key=script.X)

        fill("a", "BUY", 150, 101.0, "09:20")
        fill("b", "SELL", 75, 99.5, "09:21")
        mark(100.5, "09:22")
        fill("a", "BUY", 75, 111.0, "09:30")
        mark(110.5, "09:31")
        fill("a", "SELL", 300, 89.5, "09:40")  # reverses a to short 75
        fill("b", "BUY", 150, 91.0, "09:41")  # reverses b to long 75
        mark(95.0, "09:50")
    analytics = Analytics(path)
    equity = analytics.sql("SELECT seq, unrealized, net FROM equity ORDER BY seq")
    assert len(equity) >= 7
    for point in equity.itertuples():
        live = analytics.state_at(seq=int(point.seq)).get("pnl")
        assert (point.unrealized, point.net) == pytest.approx((live["unrealized"], live["net"])), (
            point.seq
        )


def test_a_weekend_takes_one_bar_of_the_time_axis_and_ticks_read_the_exchange_time(tmp_path):
    # On a plain datetime axis a Friday-and-Monday file gave its 12.5 trading hours 16 % of
    # the chart, the rest a flat line across the closed market.
    import holoviews as hv
    import numpy as np
    import pandas as pd

    from tradelab.analytics import plots
    from tradelab.analytics.market_axis import MarketAxis
    from tradelab.runner import SmaCross
    from tradelab.runner.backtest import run_backtest

    friday = pd.date_range("2025-11-14 09:15", "2025-11-14 15:29", freq="1min")
    monday = pd.date_range("2025-11-17 09:15", "2025-11-17 15:29", freq="1min")
    closes = 100 + 5 * np.sin(np.arange(len(friday) + len(monday)) / 20)
    frame = pd.DataFrame({"Date": [t.strftime("%Y-%m-%d %H:%M") for t in [*friday, *monday]]})
    frame = frame.assign(Open=closes, High=closes + 0.5, Low=closes - 0.5, Close=closes)
    frame.to_csv(tmp_path / "ABC.csv", index=False)
    result = run_backtest(
        tmp_path / "ABC.csv", SmaCross(fast=5, slow=20), journal_path=tmp_path / "bt.duckdb"
    )
    layout = plots.backtest_overview(Analytics(result.journal), "ABC")
    xs = layout.Overlay.I.Curve.ABC.dimension_values("market_time")
    assert np.diff(xs).max() <= 60.0  # the weekend is one minute of axis, as a minute bar is
    assert xs[-1] - xs[0] < 2 * 375 * 60  # two sessions of 375 minutes, nothing between
    hv.render(layout, backend="bokeh")  # the page draws it, ticks by the axis's formatter

    axis = MarketAxis(pd.Series([*friday, *monday]))
    at_monday = axis.x(pd.Series([monday[0], monday[61]]))
    assert [axis.label(x) for x in at_monday] == ["17 Nov 09:15", "17 Nov 10:16"]
    assert axis.label(at_monday[0] - 60) == "14 Nov 15:29"  # the bar before it, one step back
    daily = MarketAxis(pd.Series(pd.to_datetime(["2025-11-14", "2025-11-17"])))
    assert daily.label(daily.x(pd.Series(pd.to_datetime(["2025-11-17"])))[0]) == "17 Nov 2025"
    # Daily bars are marked at their last second: their ticks read dates, the nearest bar's,
    # never a time of day on a weekend between two of them.
    ends = pd.Series(pd.to_datetime([f"2025-11-{d} 23:59:59" for d in (12, 13, 14, 17, 18)]))
    daily = MarketAxis(ends)
    xs = daily.x(ends)
    assert [daily.label(x) for x in xs] == [
        "12 Nov 2025", "13 Nov 2025", "14 Nov 2025", "17 Nov 2025", "18 Nov 2025"
    ]  # fmt: skip
    between = {daily.label(xs[2] + f * (xs[3] - xs[2])) for f in (0.1, 0.4, 0.6, 0.9)}
    assert between == {"14 Nov 2025", "17 Nov 2025"}
