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
    assert series.interval in ("1m", "1d", "28d")
