"""Bar file times: dates without an offset, midnight dates, DST offsets and epoch numbers."""

import numpy as np
import pandas as pd
import pytest
from test_backtest import write_bars

from tradelab.errors import InvalidInputError
from tradelab.runner import SmaCross
from tradelab.runner.backtest import run_backtest


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        (
            ["2024-01-02 09:15", "2024-01-02 09:16"],
            ["2024-01-02 09:15+05:30", "2024-01-02 09:16+05:30"],
        ),
        (
            ["2024-03-01", "2024-03-02"],
            ["2024-03-01 00:00+05:30", "2024-03-02 00:00+05:30"],
        ),  # ISO: no doubt
        (
            ["02-01-2024", "03-01-2024"],
            ["2024-01-02 00:00+05:30", "2024-01-03 00:00+05:30"],
        ),  # day first
        (["12/01/2024", "13/01/2024"], ["2024-01-12 00:00+05:30", "2024-01-13 00:00+05:30"]),
        (
            ["01.12.2024", "01.13.2024"],
            ["2024-01-12 00:00+05:30", "2024-01-13 00:00+05:30"],
        ),  # only fits MDY
        (
            ["2024-01-02T03:45:00Z", "2024-01-02T09:16:00+05:30"],
            ["2024-01-02 03:45Z", "2024-01-02 03:46Z"],
        ),
        # Midnight with an offset is a date where it was written (yfinance's daily labels):
        # a Tokyo Monday read as an instant was Sunday evening in IST, every bar a day early.
        (
            ["2024-01-01 00:00:00+09:00", "2024-01-02 00:00:00+09:00"],
            ["2024-01-01 00:00+05:30", "2024-01-02 00:00+05:30"],
        ),
        (
            ["2024-03-08 00:00:00-05:00", "2024-03-11 00:00:00-04:00"],  # New York, across DST
            ["2024-03-08 00:00+05:30", "2024-03-11 00:00+05:30"],
        ),
        (
            ["2024-01-01T00:00:00Z", "2024-01-02T00:00Z"],
            ["2024-01-01 00:00+05:30", "2024-01-02 00:00+05:30"],
        ),
    ],
)
def test_bar_times_without_an_offset_are_exchange_time_and_dates_day_first(written, meant):
    from tradelab.market.bar_times import times_in_utc

    for column in (pd.Series(written), pd.Series(written, dtype=object)):  # as read; as built
        got = times_in_utc(column)
        assert got.tolist() == [pd.Timestamp(m).tz_convert("UTC") for m in meant]


def test_dates_stored_at_midnight_in_their_own_zone_keep_their_dates():
    from tradelab.market.bar_times import times_in_utc

    # As a Parquet file of a Tokyo ticker's daily bars holds them.
    stored = pd.Series(pd.date_range("2024-01-01", periods=3, freq="D", tz="Asia/Tokyo"))
    assert times_in_utc(stored).tolist() == [
        pd.Timestamp(f"2024-01-0{day} 00:00+05:30").tz_convert("UTC") for day in (1, 2, 3)
    ]
    # Intraday times keep naming instants, midnight or not.
    minutes = pd.Series(["2024-01-01 00:00:00+09:00", "2024-01-01 00:01:00+09:00"])
    assert times_in_utc(minutes).tolist() == [
        pd.Timestamp("2023-12-31 15:00Z"),
        pd.Timestamp("2023-12-31 15:01Z"),
    ]


def us_minutes_across_dst(days: int) -> pd.Series:
    """A US stock's 1-minute bar times as pandas writes New York times: -05:00, then -04:00."""
    sessions = [
        pd.date_range(f"{day.date()} 09:30", periods=390, freq="min", tz="America/New_York")
        for day in pd.bdate_range("2024-03-01", periods=days)
    ]
    return pd.Series(np.concatenate([minutes.astype(str) for minutes in sessions]))


def test_times_whose_offset_changes_with_dst_read_as_the_instants_they_name_and_fast():
    import time

    from tradelab.market.bar_times import _one_in_utc, times_in_utc

    odd = ["2024-03-08T14:30:00Z", "2024-03-08 20:01:00", "2024-03-08 20:02:00 +0530"]
    column = pd.concat([us_minutes_across_dst(10), pd.Series(odd)], ignore_index=True)
    assert {"-05:00", "-04:00"} <= set(column.str[-6:])  # the file spans the change
    # The same instants as reading each value on its own: an offset is the instant it names,
    # a time without one is exchange time (IST).
    expected = [_one_in_utc(value, False) for value in column]
    assert times_in_utc(column).tolist() == expected
    assert expected[0] == pd.Timestamp("2024-03-01 14:30Z")  # 09:30 EST
    assert expected[-4] == pd.Timestamp("2024-03-14 19:59Z")  # 15:59 EDT
    assert expected[-2:] == [pd.Timestamp("2024-03-08 14:31Z"), pd.Timestamp("2024-03-08 14:32Z")]
    # Read in one pass, not a value at a time (~75 s for 200K rows): 100K rows well within 10 s.
    many = us_minutes_across_dst(260)
    started = time.perf_counter()
    assert times_in_utc(many).notna().all()
    assert time.perf_counter() - started < 10


def test_a_daily_files_dates_are_reported_as_written(tmp_path):
    from tradelab.cli_backtest import backtest_report

    result = run_backtest(write_bars(tmp_path / "ABC.csv"), SmaCross(fast=2, slow=3, size=1))
    report = backtest_report(result)
    # The first fill is at bar 4's open, the file's 2024-03-05 (not the UTC date before it).
    assert "2024-03-05 BT-F000001" in report


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_epoch_times_in_any_unit_are_read_as_the_same_bars(tmp_path, unit):
    from tradelab.market.feeds.replay import load_bars
    from tradelab.runner.barfile import load_bar_file

    scale = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    start = pd.Timestamp("2024-03-04 09:15", tz="Asia/Kolkata").value
    rows = [f"{(start + i * 60 * 10**9) // scale},10,11,9,10" for i in range(3)]
    path = tmp_path / f"epoch_{unit}.csv"
    path.write_text("\n".join(["Date,Open,High,Low,Close", *rows]) + "\n")
    expected = [start + i * 60 * 10**9 for i in range(3)]
    assert load_bar_file(path).ts.tolist() == expected
    assert load_bars(path)["timestamp"].tolist() == expected  # the replay, too


@pytest.mark.parametrize(("unit", "suffix"), [("s", "csv"), ("ms", "parquet"), ("ms", "csv")])
def test_epoch_times_stored_as_floats_are_read_as_the_integers_are(tmp_path, unit, suffix):
    # A CSV's epoch column with a ".0" (or a blank cell elsewhere) is floats; so is a Parquet
    # float64 of ms. Read as nanoseconds they were 1970 dates one second apart.
    from tradelab.market.feeds.replay import load_bars
    from tradelab.runner.barfile import load_bar_file

    scale = {"s": 10**9, "ms": 10**6}[unit]
    start = pd.Timestamp("2024-03-01 09:15", tz="Asia/Kolkata").value
    expected = [start + i * 300 * 10**9 for i in range(4)]
    frame = pd.DataFrame(
        {
            "timestamp": [float(t // scale) for t in expected],
            "open": 10.0,
            "high": 11.0,
            "low": 9.0,
            "close": 10.0,
        }
    )
    path = tmp_path / f"epoch.{suffix}"
    frame.to_parquet(path) if suffix == "parquet" else frame.to_csv(path, index=False)
    series = load_bar_file(path)
    assert series.ts.tolist() == expected and series.interval == "5m"
    assert load_bars(path)["timestamp"].tolist() == expected  # the replay, too


@pytest.mark.parametrize(
    ("cell", "says"),
    [("", "line 3: blank is not a time"), ("1709264760.5", "line 3: 1709264760.5 is not a time")],
)
def test_a_blank_or_a_fraction_among_float_epoch_times_is_refused_naming_the_line(
    tmp_path, cell, says
):
    from tradelab.runner.barfile import load_bar_file

    path = tmp_path / "epoch.csv"
    path.write_text(
        "timestamp,open,high,low,close\n"
        f"1709264700.0,10,11,9,10\n{cell},10,11,9,10\n1709265300.0,10,11,9,10\n"
    )
    with pytest.raises(InvalidInputError, match=says):
        load_bar_file(path)


def test_epoch_times_of_two_units_or_before_2001_are_refused_naming_the_line(tmp_path):
    from tradelab.runner.barfile import load_bar_file

    (tmp_path / "mixed.csv").write_text(
        "Date,Open,High,Low,Close\n1709523900,10,11,9,10\n1709523960000,10,11,9,10\n"
    )
    with pytest.raises(InvalidInputError, match=r"line 3: 1709523960000 is not epoch s"):
        load_bar_file(tmp_path / "mixed.csv")
    (tmp_path / "small.csv").write_text("Date,Open,High,Low,Close\n17095,10,11,9,10\n")
    with pytest.raises(InvalidInputError, match=r"line 2: 17095 is no epoch time from 1973"):
        load_bar_file(tmp_path / "small.csv")


def test_times_with_and_without_an_offset_in_one_file_are_each_read_by_the_same_rule(tmp_path):
    from tradelab.runner.barfile import load_bar_file

    path = tmp_path / "mixed.csv"
    path.write_text(
        "timestamp,open,high,low,close\n"
        "2024-01-02T09:15:00+05:30,100,101,99,100\n"
        "2024-01-02T03:50:00Z,100,102,99,101\n"  # 09:20 IST
        "2024-01-02 09:25:00,101,103,100,102\n"  # no offset: exchange time
    )
    series = load_bar_file(path)
    assert pd.to_datetime(series.ts, utc=True).tz_convert("Asia/Kolkata").strftime(
        "%H:%M"
    ).tolist() == ["09:15", "09:20", "09:25"]
    assert series.interval == "5m"
    # Naive times first: pandas took the column's format from them and read the later times
    # with an offset as no time at all ("'...09:35:00+05:30' is not a date and time").
    path.write_text(
        "timestamp,open,high,low,close\n"
        + "".join(f"2024-01-02 09:{m}:00,100,101,99,100\n" for m in (15, 20, 25))
        + "".join(f"2024-01-02 09:{m}:00+05:30,100,101,99,100\n" for m in (30, 35))
    )
    series = load_bar_file(path)
    assert pd.to_datetime(series.ts, utc=True).tz_convert("Asia/Kolkata").strftime(
        "%H:%M"
    ).tolist() == ["09:15", "09:20", "09:25", "09:30", "09:35"]
    # And the other way round, with one offset: the naive times became no time.
    path.write_text(
        "timestamp,open,high,low,close\n"
        + "".join(f"2024-01-02 09:{m}:00+05:30,100,101,99,100\n" for m in (15, 20))
        + "".join(f"2024-01-02 09:{m}:00,100,101,99,100\n" for m in (25, 30, 35))
    )
    series = load_bar_file(path)
    assert pd.to_datetime(series.ts, utc=True).tz_convert("Asia/Kolkata").strftime(
        "%H:%M"
    ).tolist() == ["09:15", "09:20", "09:25", "09:30", "09:35"]
    # A value that is no time is still refused naming its line.
    path.write_text(path.read_text().replace("09:35:00", "09:3x:00"))
    with pytest.raises(InvalidInputError, match="line 6: '2024-01-02 09:3x:00"):
        load_bar_file(path)
