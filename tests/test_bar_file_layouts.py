"""Bar files as exports and tools write them: separators, pandas, yfinance, investing.com."""

import numpy as np
import pandas as pd
import pytest
from test_backtest import CLOSES, OPENS, write_bars

from tradelab.errors import InvalidInputError
from tradelab.runner import SmaCross
from tradelab.runner.backtest import run_backtest


def test_bar_files_as_exports_write_them_and_bars_no_market_had(tmp_path):
    from tradelab.market.feeds.replay import load_bars
    from tradelab.runner.barfile import load_bar_file

    # ';'-separated, as many exports are; a blank Volume cell (index data has none) is 0.
    (tmp_path / "semi.csv").write_text(
        "Date;Open;High;Low;Close;Volume\n2024-03-01;10;11;9;10;\n2024-03-02;10;12;9;11;7\n"
    )
    series = load_bar_file(tmp_path / "semi.csv")
    assert series.close.tolist() == [10.0, 11.0] and series.volume.tolist() == [0.0, 7.0]
    assert load_bars(tmp_path / "semi.csv")["volume"].tolist() == [0.0, 7.0]  # the replay, too
    # Text in Volume is still an error, named for what volume allows.
    (tmp_path / "text.csv").write_text(
        "Date,Open,High,Low,Close,Volume\n2024-03-01,10,11,9,10,lots\n"
    )
    with pytest.raises(
        InvalidInputError,
        match=r"'Volume', line 2: 'lots' is not a finite number from 0 to 2\*\*63",
    ):
        load_bar_file(tmp_path / "text.csv")
    # High below low (columns swapped in the export): refused as the replay feed refuses it.
    (tmp_path / "swapped.csv").write_text(
        "Date,Open,High,Low,Close\n2024-03-01,10,11,9,10\n2024-03-02,10,9,11,10\n"
    )
    with pytest.raises(InvalidInputError, match=r"'High'/'Low', line 3: high 9.0 / low 11.0"):
        load_bar_file(tmp_path / "swapped.csv")


def test_a_frame_saved_by_pandas_with_its_times_as_the_index_is_read_as_is(tmp_path):
    from tradelab.market.feeds.replay import load_bars
    from tradelab.runner.barfile import load_bar_file

    named = load_bar_file(write_bars(tmp_path / "named.csv"))
    # As backtesting.py's GOOG is kept: an unnamed DatetimeIndex, written with to_csv/to_parquet.
    frame = pd.read_csv(tmp_path / "named.csv", parse_dates=["Date"]).set_index("Date")
    frame.index.name = None
    frame.to_csv(tmp_path / "indexed.csv")
    frame.to_parquet(tmp_path / "indexed.parquet")
    for name in ("indexed.csv", "indexed.parquet"):
        series = load_bar_file(tmp_path / name)
        assert series.ts.tolist() == named.ts.tolist() and series.interval == "1d"
        assert series.close.tolist() == named.close.tolist()
        assert load_bars(tmp_path / name)["timestamp"].tolist() == named.ts.tolist()
    result = run_backtest(tmp_path / "indexed.csv", SmaCross(fast=2, slow=3, size=1), cash=1000.0)
    assert [f["price"] for f in result.fills] == [8.5, 12.0, 8.8]
    # An unnamed column of numbers is a saved row number, not times: still no time column.
    frame.reset_index(drop=True).to_csv(tmp_path / "numbered.csv")
    with pytest.raises(InvalidInputError, match=r"has no column 'Date'.*found Unnamed: 0, Open"):
        load_bar_file(tmp_path / "numbered.csv")
    with pytest.raises(InvalidInputError, match=r"has no column 'Date'"):
        load_bars(tmp_path / "numbered.csv")


def _yfinance_frame(tickers):
    """What yfinance.download(tickers) returns: columns (Price, Ticker), a Date index."""
    named = pd.DataFrame(
        {"Open": OPENS, "High": map(max, OPENS, CLOSES), "Low": map(min, OPENS, CLOSES)}
    )
    named["Close"], named["Volume"] = CLOSES, 1000
    named.index = pd.date_range("2024-03-01", periods=len(CLOSES), name="Date")
    frame = pd.concat({t: named * (1 + i) for i, t in enumerate(tickers)}, axis=1)
    return frame.swaplevel(axis=1).rename_axis(["Price", "Ticker"], axis=1)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_yfinance_download_saved_as_is_is_read_one_symbol_per_ticker(tmp_path, suffix):
    from tradelab.market.feeds.replay import load_bars
    from tradelab.runner.barfile import load_bar_file

    path = tmp_path / f"download{suffix}"
    frame = _yfinance_frame(["AAPL", "MSFT"])
    frame.to_csv(path) if suffix == ".csv" else frame.to_parquet(path)
    with pytest.raises(InvalidInputError, match=r"holds 2 symbols \(AAPL, MSFT\)"):
        load_bar_file(path)
    msft = load_bar_file(path, "MSFT")
    assert msft.symbol == "MSFT" and msft.close.tolist() == [2.0 * c for c in CLOSES]
    replayed = load_bars(path)
    assert replayed.groupby("symbol").size().to_dict() == {"AAPL": 10, "MSFT": 10}
    # One ticker: its bars trade as any file's would.
    one = tmp_path / f"one{suffix}"  # the symbol comes from the Ticker, not the name
    single = _yfinance_frame(["AAPL"])
    single.to_csv(one) if suffix == ".csv" else single.to_parquet(one)
    result = run_backtest(one, SmaCross(fast=2, slow=3, size=1), cash=1000.0)
    assert [f["price"] for f in result.fills] == [8.5, 12.0, 8.8]
    assert {f["symbol"] for f in result.fills} == {"AAPL"}


def test_nse_tickers_as_yahoo_writes_them_trade_under_ids_a_state_path_can_hold(tmp_path):
    from tradelab.market.feeds.replay import load_bars
    from tradelab.runner.barfile import load_bar_file

    path = tmp_path / "nse.csv"
    _yfinance_frame(["RELIANCE.NS", "^NSEI", "M&M.NS"]).to_csv(path)
    assert set(load_bars(path)["symbol"]) == {"RELIANCE_NS", "NSEI", "M_M_NS"}
    # Asked for as the vendor writes it or as it trades: the same bars.
    for asked in ("RELIANCE.NS", "RELIANCE_NS"):
        assert load_bar_file(path, asked).symbol == "RELIANCE_NS"
    single = tmp_path / "one.csv"
    _yfinance_frame(["^NSEI"]).to_csv(single)
    result = run_backtest(single, SmaCross(fast=2, slow=3, size=1), cash=1000.0)
    assert {f["symbol"] for f in result.fills} == {"NSEI"}
    clash = tmp_path / "clash.csv"
    _yfinance_frame(["A.B", "A_B"]).to_csv(clash)
    with pytest.raises(InvalidInputError, match=r"'A.B' and 'A_B' would both trade as 'A_B'"):
        load_bars(clash)


@pytest.mark.parametrize(
    "flags",
    [
        ["--param", "symbol=TCS.NS"],
        ["--param", "symbol=TCS.NS", "--symbol", "TCS.NS"],
        ["--param", "symbol=TCS_NS", "--symbol", "TCS.NS"],
    ],
)
def test_a_strategy_names_a_yahoo_ticker_in_either_spelling_as_symbol_does(tmp_path, flags):
    import json

    from click.testing import CliRunner

    from tradelab.cli import main as cli

    path = tmp_path / "nse.csv"
    _yfinance_frame(["RELIANCE.NS", "TCS.NS"]).to_csv(path)
    args = ["backtest", str(path), "--strategy", "sma_cross", "--param", "fast=2"]
    result = CliRunner().invoke(cli, [*args, "--param", "slow=3", *flags, "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.output)
    assert report["symbol"] == "TCS_NS" and report["fills"]
    assert {f["symbol"] for f in report["fills"]} == {"TCS_NS"}
    # From a notebook too: the strategy's parameter is set to the spelling it trades under.
    strategy = SmaCross(fast=2, slow=3, symbol="TCS.NS")
    assert run_backtest(path, strategy).symbol == "TCS_NS" and strategy.symbol == "TCS_NS"


def test_a_bad_value_in_a_yfinance_csv_is_named_by_its_line_in_the_file(tmp_path):
    from tradelab.runner.barfile import load_bar_file

    path = tmp_path / "aapl.csv"
    _yfinance_frame(["AAPL"]).to_csv(path)
    lines = path.read_text().splitlines()
    assert lines[1].startswith("Ticker,") and lines[2].startswith("Date,")
    cells = lines[5].split(",")  # the 3rd bar, on line 6
    cells[lines[0].split(",").index("Close")] = "abc"
    lines[5] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInputError, match=r"column 'Close', line 6: 'abc'"):
        load_bar_file(path)


def test_an_intraday_export_with_date_and_time_columns_is_read_as_one_time(tmp_path):
    from tradelab.market.feeds.replay import load_bars
    from tradelab.runner.barfile import load_bar_file

    path = tmp_path / "nifty.csv"  # as MetaTrader and many vendors write 1-minute bars
    path.write_text(
        "Date,Time,Open,High,Low,Close,Volume\n"
        "2024.01.02,09:15,10,11,9,10,5\n2024.01.02,09:16,10,12,9,11,7\n"
        "2024.01.02,09:17,11,12,10,12,3\n"
    )
    series = load_bar_file(path)
    start = pd.Timestamp("2024-01-02 09:15", tz="Asia/Kolkata").value  # no offset: IST
    assert series.interval == "1m"
    assert series.ts.tolist() == [start + i * 60_000_000_000 for i in range(3)]
    assert load_bars(path)["timestamp"].tolist() == series.ts.tolist()
    path.write_text(path.read_text().replace("09:16", "09:76"))
    with pytest.raises(InvalidInputError, match=r"column 'Date Time', line 3: '2024.01.02 09:76'"):
        load_bar_file(path)


def _investing_com_csv(path, days):
    """As investing.com downloads history: newest first, US dates, quoted thousands, 'Price'."""
    lines = ['"Date","Price","Open","High","Low","Vol.","Change %"']
    for day in reversed(days):
        close, open_ = 21_000.0 + 10 * day, 21_000.0 + 10 * day - 5
        lines.append(
            f'"01/{day:02d}/2024","{close:,.2f}","{open_:,.2f}","{close + 20:,.2f}",'
            f'"{open_ - 20:,.2f}","253.46M","-0.47%"'
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_investing_com_download_newest_first_with_thousands_is_read_oldest_first(tmp_path):
    from tradelab.market.feeds.replay import load_bars
    from tradelab.runner.barfile import load_bar_file

    days = [2, 3, 4, 5, 8, 9, 10, 11, 12, 15, 16]  # 01/15/2024 fits only month first
    path = _investing_com_csv(tmp_path / "nifty.csv", days)
    series = load_bar_file(path)
    assert series.interval == "1d" and len(series) == len(days)
    first = pd.Timestamp("2024-01-02", tz="Asia/Kolkata").value
    assert series.ts[0] == first and (series.ts[1:] > series.ts[:-1]).all()
    assert series.close.tolist() == [21_000.0 + 10 * d for d in days]  # 'Price' is the close
    assert load_bars(path)["close"].tolist() == series.close.tolist()
    # A bad value is still named by its line: the file's line 3 is its second-newest bar.
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"01/15/2024","21,150.00"', '"01/15/2024","n.a."')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInputError, match=r"column 'Price', line 3: 'n.a.'"):
        load_bar_file(path)


def test_a_frame_saved_as_csv_reads_back_exactly_as_its_parquet(tmp_path):
    from tradelab.market.feeds.replay import load_bars
    from tradelab.runner.barfile import load_bar_file

    rng = np.random.default_rng(3)
    prices = 100 + rng.random(200) * 10  # full-precision floats, as a computed frame holds
    frame = pd.DataFrame(
        {"Open": prices, "High": prices + 1, "Low": prices - 1, "Close": prices + 0.5},
        index=pd.date_range("2024-01-01", periods=200, freq="D", name="Date"),
    )
    frame.to_csv(tmp_path / "x.csv")
    frame.to_parquet(tmp_path / "x.parquet")
    from_csv, from_parquet = (load_bar_file(tmp_path / f"x.{kind}") for kind in ("csv", "parquet"))
    assert from_csv.open.tolist() == from_parquet.open.tolist() == prices.tolist()
    assert load_bars(tmp_path / "x.csv")["close"].tolist() == (prices + 0.5).tolist()


def test_a_volume_too_large_to_journal_is_refused_naming_its_line(tmp_path):
    from tradelab.runner.barfile import load_bar_file

    path = tmp_path / "big.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,1,1,1,1,3e19\n")
    with pytest.raises(InvalidInputError, match=r"'Volume', line 2: 3e\+19 is not a finite number"):
        load_bar_file(path)
