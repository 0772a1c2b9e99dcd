"""A yfinance download of tickers from two exchanges (or one listed later) spans every ticker's
days, blank for a ticker on the days it did not trade: those rows are no bars of it."""

import numpy as np
import pytest
from test_backtest import CLOSES
from test_bar_file_layouts import _yfinance_frame

from tradelab.errors import InvalidInputError
from tradelab.market.feeds.replay import load_bars
from tradelab.runner.barfile import load_bar_file


def _with_holidays(tickers_days):
    frame = _yfinance_frame(list(tickers_days))
    for ticker, days in tickers_days.items():
        frame.loc[frame.index[days], (slice(None), ticker)] = np.nan
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_tickers_blank_days_are_left_out_of_its_bars(tmp_path, suffix):
    path = tmp_path / f"download{suffix}"
    frame = _with_holidays({"AAPL": [3, 7], "RELIANCE.NS": [0, 1]})  # a holiday; a later listing
    frame.to_csv(path) if suffix == ".csv" else frame.to_parquet(path)
    aapl = load_bar_file(path, "AAPL")
    assert aapl.close.tolist() == [c for i, c in enumerate(CLOSES) if i not in (3, 7)]
    reliance = load_bar_file(path, "RELIANCE.NS")
    assert reliance.close.tolist() == [2.0 * c for c in CLOSES[2:]]
    assert load_bars(path).groupby("symbol").size().to_dict() == {"AAPL": 8, "RELIANCE_NS": 8}


def test_a_row_with_some_prices_blank_is_still_refused_by_its_line(tmp_path):
    path = tmp_path / "download.csv"
    frame = _yfinance_frame(["AAPL", "MSFT"])
    frame.loc[frame.index[4], ("Open", "AAPL")] = np.nan  # the rest of AAPL's row is there
    frame.to_csv(path)
    with pytest.raises(InvalidInputError, match=r"column 'Open', line 8: nan is not a positive"):
        load_bar_file(path, "AAPL")
