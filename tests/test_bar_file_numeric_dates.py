"""Bar times written as numbers other than recent epochs: YYYYMMDD dates (tushare, Stooq,
MetaStock exports) and epoch times before 2001."""

import pandas as pd
import pytest

from tradelab.errors import InvalidInputError
from tradelab.market.feeds.replay import load_bars
from tradelab.runner.barfile import load_bar_file


def write(path, times):
    rows = [f"{t},10,11,9,10" for t in times]
    path.write_text("\n".join(["Date,Open,High,Low,Close", *rows]) + "\n")
    return path


def ist_midnights(*days):
    return [pd.Timestamp(d, tz="Asia/Kolkata").value for d in days]


@pytest.mark.parametrize("written", ["{}", "{}.0"])
def test_dates_written_yyyymmdd_are_read_as_those_dates(tmp_path, written):
    path = write(tmp_path / "digits.csv", [written.format(d) for d in (20240102, 20240103)])
    expected = ist_midnights("2024-01-02", "2024-01-03")
    series = load_bar_file(path)
    assert series.ts.tolist() == expected and series.interval == "1d"
    assert load_bars(path)["timestamp"].tolist() == expected  # the replay, too


def test_a_number_that_is_no_yyyymmdd_date_is_refused_saying_so(tmp_path):
    path = write(tmp_path / "digits.csv", [20240102, 20241302])
    with pytest.raises(InvalidInputError, match=r"line 3: 20241302 is not a date written YYYYMMDD"):
        load_bar_file(path)


@pytest.mark.parametrize("scale", [10**9, 10**6])
def test_epoch_times_before_2001_are_read_in_seconds_and_ms(tmp_path, scale):
    # A daily history from 1999 (915408000 s: 10 digits only from 2001-09-09), across 2001.
    days = [pd.Timestamp(d, tz="UTC").value for d in ("1999-01-04", "2001-09-10")]
    path = write(tmp_path / "old.csv", [d // scale for d in days])
    assert load_bar_file(path).ts.tolist() == days
    assert load_bars(path)["timestamp"].tolist() == days


@pytest.mark.parametrize(
    ("written", "interval"),
    [
        ((202401020915, 202401020916, 202401020917), "1m"),
        ((20240102091500, 20240102091505, 20240102091510), "5s"),
    ],
)
def test_dates_and_times_written_as_digits_are_read_as_exchange_times(tmp_path, written, interval):
    # 202401020915 is also epoch ms in 1976: a first value that reads as a date and time wins.
    series = load_bar_file(write(tmp_path / "digits.csv", written))
    first = pd.Timestamp(series.ts[0], tz="UTC").tz_convert("Asia/Kolkata")
    assert (first.strftime("%Y-%m-%d %H:%M"), series.interval) == ("2024-01-02 09:15", interval)


def test_tushare_and_stooq_exports_are_read_as_they_come(tmp_path):
    tushare = tmp_path / "tushare.csv"
    tushare.write_text(
        "ts_code,trade_date,open,high,low,close,pre_close,vol\n"
        "600000.SH,20240103,11,12,10,11,10,1000\n"
        "600000.SH,20240102,10,11,9,10,9,1000\n"  # newest first, as tushare writes
    )
    series = load_bar_file(tushare)
    assert series.symbol == "600000_SH" and series.interval == "1d"
    assert series.ts.tolist() == ist_midnights("2024-01-02", "2024-01-03")
    stooq = tmp_path / "stooq.csv"
    stooq.write_text(
        "<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>\n"
        "ABC,5,20240102,091500,10,11,9,10,1000,0\n"
        "ABC,5,20240102,092000,10,11,9,11,1000,0\n"
    )
    series = load_bar_file(stooq)
    first = pd.Timestamp(series.ts[0], tz="UTC").tz_convert("Asia/Kolkata")
    assert (series.symbol, first.strftime("%H:%M"), series.interval) == ("ABC", "09:15", "5m")
