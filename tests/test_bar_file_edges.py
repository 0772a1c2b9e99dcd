"""Bar files as people have them: blank symbols, fractional volumes, float32 prices, HHMM times,
a newest-first file with a repeated row, a long replay, and a chart path checked up front."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from tradelab.cli import main as cli
from tradelab.errors import InvalidInputError
from tradelab.market.feeds.replay import ReplayFeed, ReplayFeedConfig, load_bars
from tradelab.runner import Strategy
from tradelab.runner.backtest import run_backtest
from tradelab.runner.barfile import load_bar_file

DAILY = "Date,Open,High,Low,Close,Volume\n"


class Recorder(Strategy):
    strategy_name = "recorder"

    def on_start(self, ctx):
        self.bars = []

    def on_bar(self, ctx, bar):
        self.bars.append(dict(bar))
        if len(self.bars) == 1:
            ctx.buy(bar["symbol"], 1)


def test_a_blank_symbol_cell_is_refused_naming_its_line_in_a_backtest_as_in_a_replay(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text(
        "Date,Symbol,Open,High,Low,Close\n"
        "2024-01-01,ACME,10,11,9,10\n2024-01-02,ACME,10,11,9,10\n2024-01-03,,10,11,9,10\n"
    )
    for load in (load_bar_file, load_bars):
        with pytest.raises(InvalidInputError, match="column '[Ss]ymbol', line 4: empty symbol"):
            load(path)
    with pytest.raises(InvalidInputError, match="line 4: empty symbol"):
        load_bar_file(path, "ACME")  # not a bar left out without a word


@pytest.mark.parametrize(
    "row",
    [
        "2024-01-02,101,106,103,102",  # low above the close
        "2024-01-02,101,106,101.5,102",  # low above the open
        "2024-01-02,101,101.5,99,102",  # high below the close
    ],
)
def test_a_bar_whose_high_or_low_does_not_contain_its_open_and_close_is_refused(tmp_path, row):
    path = tmp_path / "ABC.csv"
    path.write_text(DAILY.replace(",Volume", "") + "2024-01-01,100,105,99,101\n" + row + "\n")
    for load in (load_bar_file, load_bars):
        with pytest.raises(InvalidInputError, match="do not contain"):
            load(path)


def test_fractional_volumes_reach_strategies_and_the_journal_as_written(tmp_path):
    path = tmp_path / "coin.csv"
    path.write_text(
        DAILY + "2024-01-01,420,425,418,423,0.75\n2024-01-02,423,430,421,429,12.9\n"
        "2024-01-03,429,431,420,422,1234.56\n"
    )
    strategy = Recorder()
    run_backtest(path, strategy)
    assert [b["volume"] for b in strategy.bars] == [0.75, 12.9, 1234.56]
    # Whole volumes stay integers (a share count), as journals have always had them.
    whole = tmp_path / "shares.csv"
    whole.write_text(DAILY + "2024-01-01,10,11,9,10,700\n2024-01-02,10,11,9,10,800\n")
    strategy = Recorder()
    run_backtest(whole, strategy)
    assert [b["volume"] for b in strategy.bars] == [700, 800]
    assert all(type(b["volume"]) is int for b in strategy.bars)
    ticks = list(ReplayFeed(ReplayFeedConfig(path=str(path), as_fast_as_possible=True)).ticks())
    assert [t.volume for t in ticks if t.volume] == [0.75, 12.9, 1234.56]


def test_float32_prices_fill_at_the_price_the_file_shows(tmp_path):
    path = tmp_path / "f32.parquet"
    frame = pd.DataFrame(
        {
            "Date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
            "Open": [100.5, 102.41, 104.29],
            "High": [101.0, 103.0, 105.0],
            "Low": [100.0, 102.0, 104.0],
            "Close": [100.5, 102.5, 104.5],
        }
    )
    frame.astype({c: "float32" for c in ("Open", "High", "Low", "Close")}).to_parquet(path)
    result = run_backtest(path, Recorder())
    assert [f["price"] for f in result.fills] == [102.41]


def test_hhmm_times_are_hours_and_minutes(tmp_path):
    path = tmp_path / "hhmm.csv"
    rows = "".join(f"20240102,{t},10,11,9,10\n" for t in (915, 916, 917, 1529))
    path.write_text("Date,Time,Open,High,Low,Close\n" + rows)
    series = load_bar_file(path)
    assert series.interval == "1m"
    assert (
        pd.Timestamp(int(series.ts[0]), tz="UTC").tz_convert("Asia/Kolkata").strftime("%H:%M")
        == "09:15"
    )


def test_a_newest_first_file_with_a_repeated_row_names_that_row(tmp_path):
    path = tmp_path / "rev.csv"
    days = ["2024-01-05", "2024-01-04", "2024-01-03", "2024-01-03", "2024-01-02"]
    path.write_text(DAILY + "".join(f"{d},10,11,9,10,0\n" for d in days))
    # The two rows of 2024-01-03 (lines 4 and 5), not the first two (newest first, as meant).
    with pytest.raises(InvalidInputError, match="line 4: times must increase .'2024-01-03' is"):
        load_bar_file(path)


def test_a_replay_plays_its_first_tick_before_reading_the_whole_file(tmp_path, monkeypatch):
    path = tmp_path / "two.csv"
    rows = []
    for minute in range(200):
        for symbol, price in (("AAA", 100.0), ("BBB", 50.0)):
            stamp = pd.Timestamp("2024-01-02 09:15") + pd.Timedelta(minutes=minute)
            rows.append(f"{stamp},{symbol},{price},{price + 1},{price - 1},{price + 0.5},10\n")
    path.write_text("Date,Symbol,Open,High,Low,Close,Volume\n" + "".join(rows))
    feed = ReplayFeed(ReplayFeedConfig(path=str(path), as_fast_as_possible=True))
    spans, read = feed._spans(), []

    def counted():
        for span in spans:
            read.append(span)
            yield span

    monkeypatch.setattr(feed, "_spans", counted)
    ticks = feed.ticks()
    next(ticks)
    assert len(read) <= 3  # not the file's 400 bars
    rest = list(ticks)
    assert len(rest) == 4 * 400 - 1
    stamps = [t.ts for t in rest]
    assert stamps == sorted(stamps)  # one stream in time order, both symbols merged


def test_an_unwritable_html_path_is_refused_before_the_run(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(DAILY + "2024-01-01,10,11,9,10,0\n2024-01-02,10,11,9,10,0\n")
    unwritable = "/proc/tradelab-chart.html"  # no file can be made there, root or not
    result = CliRunner().invoke(
        cli, ["backtest", str(path), "--strategy", "sma_cross", "--html", unwritable]
    )
    assert result.exit_code == 2 and "cannot be written" in result.output
    assert "round trip" not in result.output  # nothing ran
