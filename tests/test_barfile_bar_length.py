"""A bar file's bar length is its smallest gap between two bars (a sparse 1-minute file stays
1m), and a file where that rule is fooled, by a stray time or by two bar lengths, is loaded
with a warning naming the rows."""

import logging

import numpy as np
import pandas as pd
import pytest

from tradelab.runner.barfile import load_bar_file


def write_times(path, times) -> str:
    prices = 100 + np.arange(len(times)) % 5
    pd.DataFrame(
        {"Date": pd.DatetimeIndex(times).strftime("%Y-%m-%d %H:%M:%S"), "Open": prices}
        | {"High": prices, "Low": prices, "Close": prices}
    ).to_csv(path, index=False)
    return str(path)


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_stray_time_among_15m_bars_is_named_not_taken_silently_as_1s_bars(tmp_path, caplog):
    times = list(pd.date_range("2024-03-01 09:15", periods=60, freq="15min"))
    times.insert(4, times[3] + pd.Timedelta(seconds=1))  # line 6, one second after line 5
    with caplog.at_level(logging.WARNING, logger="tradelab"):
        series = load_bar_file(write_times(tmp_path / "stray.csv", times))
    assert series.interval == "1s"  # the rule is kept, and said
    (warning,) = warnings_of(caplog)
    assert "taken as 1s long" in warning and "at line 5 and line 6" in warning
    assert "most are 15m apart" in warning and "stray time" in warning


def test_15m_bars_then_a_day_of_5m_bars_are_named_as_two_bar_lengths(tmp_path, caplog):
    first = pd.date_range("2024-03-01 09:15", periods=25, freq="15min")
    second = pd.date_range("2024-03-04 09:15", periods=75, freq="5min")
    with caplog.at_level(logging.WARNING, logger="tradelab"):
        series = load_bar_file(write_times(tmp_path / "mixed.csv", [*first, *second]))
    assert series.interval == "5m"
    (warning,) = warnings_of(caplog)
    assert "15m apart from line 2 to line 26 but 5m at line 27 and line 28" in warning


@pytest.mark.parametrize(
    "times",
    [
        # A sparse 1-minute contract: most minutes have no trade.
        pd.DatetimeIndex(
            np.cumsum(np.random.default_rng(7).choice([1, 2, 3, 7, 30], 600)) * 60 * 10**9
            + pd.Timestamp("2024-03-01 09:15").value
        ),
        pd.bdate_range("2024-01-01", periods=60),  # days with weekends
        pd.date_range("2023-01-01", periods=14, freq="MS"),  # months: 28 to 31 days apart
        # Three days of 1m bars, one of them quiet: no two trades a minute apart.
        pd.DatetimeIndex(
            [*pd.date_range("2024-03-01 09:15", periods=375, freq="min")]
            + [
                pd.Timestamp("2024-03-04 09:15") + pd.Timedelta(minutes=5 * i // 2)
                for i in range(40)
            ]
            + [*pd.date_range("2024-03-05 09:15", periods=375, freq="min")]
        ),
    ],
    ids=["sparse_1m", "daily", "monthly", "1m_with_a_quiet_day"],
)
def test_files_of_one_bar_length_load_without_a_warning(tmp_path, caplog, times):
    with caplog.at_level(logging.WARNING, logger="tradelab"):
        series = load_bar_file(write_times(tmp_path / "bars.csv", times))
    assert warnings_of(caplog) == []
    assert series.interval in ("1m", "1d", "1mo")


def write_stamped(path, stamps) -> str:
    """Bars with their times written as given (offsets and all)."""
    prices = 100 + np.arange(len(stamps)) % 5
    pd.DataFrame(
        {"Date": stamps, "Open": prices, "High": prices, "Low": prices, "Close": prices}
    ).to_csv(path, index=False)
    return str(path)


def test_daily_bars_across_a_dst_change_are_daily_ending_at_their_dates_midnight(tmp_path, caplog):
    # yfinance's history() of BTC-USD: dates at New York midnight, -05:00 then -04:00 from
    # 10 March 2024: one gap of 23 h among days.
    days = pd.date_range("2024-03-01", "2024-03-20", tz="America/New_York")
    stamps = [d.isoformat(sep=" ") for d in days]
    with caplog.at_level(logging.WARNING, logger="tradelab"):
        series = load_bar_file(write_stamped(tmp_path / "btc.csv", stamps))
    assert warnings_of(caplog) == []
    assert series.interval == "1d"
    # Each bar keeps the date it was written with (midnight where written is a date, as the
    # market.bar_times rule reads it) and ends a second before the next midnight, in exchange
    # time: the day of the DST change too.
    ends = pd.to_datetime(series.ends, utc=True).tz_convert("Asia/Kolkata")
    assert [e.strftime("%d %H:%M:%S") for e in ends[8:11]] == [
        "09 23:59:59",
        "10 23:59:59",
        "11 23:59:59",
    ]


def test_monthly_and_weekly_bars_are_months_and_weeks_whatever_their_gaps(tmp_path):
    months = pd.date_range("2015-01-01", periods=14, freq="MS").strftime("%Y-%m-%d")
    series = load_bar_file(write_stamped(tmp_path / "monthly.csv", list(months)))
    assert series.interval == "1mo"
    ends = pd.to_datetime(series.ends, utc=True).tz_convert("Asia/Kolkata")
    assert [e.strftime("%Y-%m-%d %H:%M:%S") for e in ends[:3]] == [
        "2015-01-31 23:59:59",
        "2015-02-28 23:59:59",
        "2015-03-31 23:59:59",
    ]
    # Mondays, one holiday week starting on Tuesday: weeks, not 6-day bars.
    weeks = pd.date_range("2023-01-02", periods=60, freq="W-MON")
    weeks = weeks.where(weeks != pd.Timestamp("2023-12-25"), pd.Timestamp("2023-12-26"))
    series = load_bar_file(write_stamped(tmp_path / "weekly.csv", list(weeks.strftime("%Y-%m-%d"))))
    assert series.interval == "7d"
    # The holiday week, from Tuesday, ends before the next Monday's bar starts.
    i = list(weeks).index(pd.Timestamp("2023-12-26"))
    ends = pd.to_datetime(series.ends[i - 1 : i + 1], utc=True).tz_convert("Asia/Kolkata")
    assert list(ends.strftime("%Y-%m-%d %H:%M:%S")) == [
        "2023-12-24 23:59:59",
        "2023-12-31 23:59:59",
    ]


def test_sma_cross_backtests_a_monthly_file(tmp_path):
    # Its bars are '1mo': the strategy reads them with ctx.bars(symbol, '1mo').
    from tradelab.runner import SmaCross
    from tradelab.runner.backtest import run_backtest

    months = pd.date_range("2010-01-01", periods=60, freq="MS").strftime("%Y-%m-%d")
    path = write_stamped(tmp_path / "monthly.csv", list(months))
    result = run_backtest(path, SmaCross(fast=2, slow=4, size=1))
    assert result.failed_strategies == {} and result.bars == 60


@pytest.mark.parametrize(
    ("written", "interval"),
    [
        ("2025-11-14 09:15", "1m"),
        ("2025-11-14", "1d"),
        ("1763091900", "1m"),  # epoch seconds of 09:15 IST
        ("2025-11-13 18:30:00+00:00", "1d"),  # IST midnight written in UTC: a day
    ],
)
def test_a_file_of_one_bar_is_a_minute_at_a_time_of_day_and_a_day_on_a_date(
    tmp_path, caplog, written, interval
):
    # One bar at 09:15 was taken as a daily bar: it ended, and was charted, on the next day
    # (a Saturday the file does not hold), and the page said "(1d)".
    from tradelab.market.instruments import IST

    path = tmp_path / "one.csv"
    path.write_text(f"Date,Open,High,Low,Close\n{written},100,101,99,100.5\n")
    with caplog.at_level(logging.WARNING, logger="tradelab"):
        series = load_bar_file(path)
    assert series.interval == interval
    start = pd.Timestamp(int(series.ts[0]), tz="UTC").tz_convert(IST)
    end = pd.Timestamp(int(series.ends[0]), tz="UTC").tz_convert(IST)
    assert end.date() == start.date()  # the bar ends on its own day
    assert start.date().isoformat() == "2025-11-14"
    said = warnings_of(caplog)
    assert ("taken as 1 minute long" in " ".join(said)) is (interval == "1m")
