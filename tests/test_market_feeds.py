import itertools
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from tradelab.errors import InvalidInputError
from tradelab.market.bars import BarAggregator
from tradelab.market.clock import MarketHours
from tradelab.market.feeds import (
    ReplayFeed,
    ReplayFeedConfig,
    SimulatedFeed,
    SimulatedFeedConfig,
    load_bars,
)
from tradelab.market.instruments import TICK_SIZE

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "nifty_sample_1m.csv"


def first(feed, n):
    return list(itertools.islice(feed.ticks(), n))


def test_same_seed_gives_identical_ticks_and_another_seed_does_not():
    a = first(SimulatedFeed(SimulatedFeedConfig(seed=3, as_fast_as_possible=True)), 5000)
    b = first(SimulatedFeed(SimulatedFeedConfig(seed=3, as_fast_as_possible=True)), 5000)
    c = first(SimulatedFeed(SimulatedFeedConfig(seed=4, as_fast_as_possible=True)), 5000)
    assert a == b
    assert a != c


def test_strikes_are_listed_as_the_index_moves_so_the_chain_stays_centred():
    from tradelab.market.instruments import OptionUniverse

    universe = OptionUniverse()
    cfg = SimulatedFeedConfig(annual_vol=0.8, strikes_each_side=2, speed=600.0, seed=5)
    feed = SimulatedFeed(cfg, universe=universe)
    rounds, spots = [], []  # the options quoted in each round, the index level starting it
    for tick in feed.ticks():
        if tick.symbol == "NIFTY":
            rounds.append(set())
            spots.append(tick.last)
        else:
            rounds[-1].add(universe.parse(tick.symbol).strike)
    assert max(spots) - min(spots) > 400  # the index moved well past the opening strikes
    whole = rounds[1:-1]  # the last round is cut short by the close
    for before, quoted in zip(spots, whole, strict=False):
        atm = universe.atm_strike(before)
        assert {atm + k * 50 for k in range(-2, 3)} <= quoted  # 2 strikes each side, at least
    opening = {universe.atm_strike(cfg.spot) + k * 50 for k in range(-2, 3)}
    assert opening <= whole[-1]  # none delisted: a position in one can still be closed
    again = SimulatedFeed(cfg, universe=universe)
    assert list(itertools.islice(again.ticks(), 20_000)) == list(
        itertools.islice(SimulatedFeed(cfg, universe=universe).ticks(), 20_000)
    )


def test_simulated_quotes_are_two_sided_on_the_tick_grid_within_market_hours():
    feed = SimulatedFeed(SimulatedFeedConfig(as_fast_as_possible=True, speed=600.0))
    ticks = first(feed, 20_000)
    hours = MarketHours()
    for t in ticks:
        assert hours.is_open(t.ts)
        assert 0 < t.bid <= t.ask
        assert abs(t.bid / TICK_SIZE - round(t.bid / TICK_SIZE)) < 1e-6
    options = [t for t in ticks if t.symbol != "NIFTY"]
    assert all(t.ask_size % 75 == 0 and t.ask_size > 0 for t in options)
    assert {t.symbol for t in ticks} == set(feed.symbols)
    assert feed.clock.now_ns() == ticks[-1].ts


def test_simulated_session_ends_at_the_close():
    feed = SimulatedFeed(
        SimulatedFeedConfig(ticks_per_second=1, speed=60.0, as_fast_as_possible=True)
    )
    ticks = list(feed.ticks())
    assert len(ticks) == 375  # one tick per simulated minute, 09:15 to 15:29
    assert ticks[-1].ts < feed.close_ns <= ticks[-1].ts + 60 * 10**9


def test_put_prices_fall_and_call_prices_rise_with_strike_order():
    feed = SimulatedFeed(SimulatedFeedConfig(as_fast_as_possible=True))
    ticks = first(feed, len(feed.symbols))
    calls = [t.ask for t in ticks if t.symbol.endswith("CE")]
    puts = [t.ask for t in ticks if t.symbol.endswith("PE")]
    assert calls == sorted(calls, reverse=True)
    assert puts == sorted(puts)


def test_paced_feed_does_not_run_faster_than_its_rate():
    feed = SimulatedFeed(SimulatedFeedConfig(ticks_per_second=2000))
    started = time.perf_counter()
    sent = feed.run(lambda tick: None, max_ticks=400)
    assert sent == 400
    assert time.perf_counter() - started >= 0.15  # 399 intervals of 0.5 ms = 0.2 s


def test_replay_of_sample_bars_reaggregates_to_the_file():
    feed = ReplayFeed(ReplayFeedConfig(path=str(SAMPLE), as_fast_as_possible=True))
    bars = BarAggregator(("1m", "15m"))
    closed = []
    for tick in feed.ticks():
        closed.extend(bars.on_tick(tick))
    closed.extend(bars.flush())
    frame = load_bars(SAMPLE)
    one_minute = [b for b in closed if b.interval == "1m"]
    assert len(one_minute) == len(frame)
    got = {(b.symbol, b.start): (b.open, b.high, b.low, b.close, b.volume) for b in one_minute}
    row = frame.iloc[100]
    assert got[(row.symbol, row.timestamp)] == (row.open, row.high, row.low, row.close, row.volume)
    nifty = frame[frame.symbol == "NIFTY"].head(15)
    first_15m = next(b for b in closed if b.interval == "15m" and b.symbol == "NIFTY")
    assert (first_15m.high, first_15m.low) == (nifty.high.max(), nifty.low.min())


def test_replay_parquet_and_csv_give_the_same_ticks():
    csv = ReplayFeed(ReplayFeedConfig(path=str(SAMPLE), as_fast_as_possible=True))
    parquet = ReplayFeed(
        ReplayFeedConfig(path=str(SAMPLE.with_suffix(".parquet")), as_fast_as_possible=True)
    )
    assert first(csv, 2000) == first(parquet, 2000)


def test_replay_at_speed_is_paced():
    feed = ReplayFeed(ReplayFeedConfig(path=str(SAMPLE), speed=600.0))  # 1 minute in 0.1 s
    started = time.perf_counter()
    got: list[tuple[float, int]] = []
    feed.run(lambda t: got.append((time.perf_counter(), t.ts)), max_ticks=7 * 4 * 2 + 1)
    # Every tick delivered, in time order, none before its market time / 600 from the first:
    # two full minutes of the 7 symbols take at least 0.2 s.
    assert len(got) == 7 * 4 * 2 + 1
    assert [ts for _, ts in got] == sorted(ts for _, ts in got)
    first_wall, first_ts = got[0]
    late = 0.02  # a wake-up's slack, one way only: never early
    assert all(wall - first_wall >= (ts - first_ts) / 1e9 / 600 - late for wall, ts in got)
    assert time.perf_counter() - started >= 0.15


def test_a_stop_during_a_paced_wait_ends_the_wait_at_once(tmp_path):
    # A night (or a hole in the file) between two bars: at speed 1 the feed used to sleep
    # through the whole wait, so a run's Ctrl-C or --duration waited on the Lab's 60 s join.
    frame = pd.read_csv(SAMPLE).query("symbol == 'NIFTY'").head(2).reset_index(drop=True)
    frame.loc[1, "timestamp"] = "2025-11-13T09:15:00+05:30"  # the next morning
    feed = ReplayFeed(ReplayFeedConfig(path=str(write(tmp_path, frame)), speed=1.0))
    stop, got = threading.Event(), []
    threading.Timer(0.3, stop.set).start()
    started = time.perf_counter()
    feed.run(got.append, stop=stop)
    assert time.perf_counter() - started < 5.0  # the stop's own latency, not the night's
    assert got and all(t.ts < got[0].ts + 60 * 10**9 for t in got)  # nothing after the wait


def write(tmp_path, frame, name="bars.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def sample_frame():
    return pd.read_csv(SAMPLE).head(20)


def test_missing_column_names_the_file_and_the_column(tmp_path):
    path = write(tmp_path, sample_frame().drop(columns=["close"]))
    with pytest.raises(InvalidInputError, match=r"bars\.csv' has no column 'close'"):
        load_bars(path)


def test_nan_price_names_the_column_and_where_it_is_in_the_file(tmp_path):
    frame = sample_frame()
    frame.loc[7, "low"] = float("nan")
    # A CSV's line as an editor shows it (the header is line 1); a Parquet row counted from 1.
    with pytest.raises(InvalidInputError, match=r"column 'low', line 9"):
        load_bars(write(tmp_path, frame))
    frame.to_parquet(tmp_path / "bars.parquet")
    with pytest.raises(InvalidInputError, match=r"column 'low', row 8"):
        load_bars(tmp_path / "bars.parquet")


def test_negative_price_and_bad_timestamp_are_rejected(tmp_path):
    frame = sample_frame()
    frame.loc[3, "open"] = -1.0
    with pytest.raises(InvalidInputError, match=r"column 'open', line 5"):
        load_bars(write(tmp_path, frame))
    frame = sample_frame()
    frame["timestamp"] = frame["timestamp"].astype(object)
    frame.loc[2, "timestamp"] = "yesterday"
    with pytest.raises(InvalidInputError, match=r"column 'timestamp', line 4: 'yesterday'"):
        load_bars(write(tmp_path, frame))


def test_high_below_close_is_rejected(tmp_path):
    frame = sample_frame()
    frame.loc[5, "high"] = frame.loc[5, "close"] - 1
    with pytest.raises(InvalidInputError, match=r"'high'/'low', line 7"):
        load_bars(write(tmp_path, frame))


def test_unreadable_or_unknown_files_are_clear_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_bars(tmp_path / "nope.csv")
    (tmp_path / "bars.json").write_text("{}")
    with pytest.raises(InvalidInputError, match="expected .csv or .parquet"):
        load_bars(tmp_path / "bars.json")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(InvalidInputError, match="broken.parquet' cannot be read"):
        load_bars(tmp_path / "broken.parquet")


def test_a_backtest_style_file_replays_as_its_own_instrument(tmp_path):
    # tradelab backtest's columns (any case, Date, no Symbol, no Volume) replay as they are.
    frame = sample_frame()
    frame = frame[frame["symbol"] == "NIFTY"].drop(columns=["symbol", "volume"])
    frame = frame.rename(columns={"timestamp": "Date", "open": "Open", "close": "CLOSE"})
    bars = load_bars(write(tmp_path, frame, name="my-index.csv"))
    assert list(bars.columns) == ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    assert set(bars["symbol"]) == {"MY_INDEX"} and (bars["volume"] == 0).all()
    assert bars["close"].tolist() == frame["CLOSE"].tolist()
    frame.loc[frame.index[1], "Date"] = "yesterday"
    with pytest.raises(InvalidInputError, match=r"column 'Date', line 3: 'yesterday'"):
        load_bars(write(tmp_path, frame, name="bad.csv"))


def test_a_daily_bar_stamped_at_the_open_replays_its_ticks_inside_that_session(tmp_path):
    # Spread over 24 hours, three of its four quotes fell at 15:15, 21:15 and 03:15 IST, and a
    # session's broker refused every order placed on them as "market is closed".
    path = tmp_path / "ACME.csv"
    path.write_text(
        "Date,Open,High,Low,Close\n"
        "2025-01-06 09:15,100,104,99,103\n"
        "2025-01-07 09:15,103,105,101,102\n"
    )
    feed = ReplayFeed(
        ReplayFeedConfig(path=str(path), bar_seconds=86_400, as_fast_as_possible=True)
    )
    ticks = list(feed.ticks())
    times = pd.to_datetime([t.ts for t in ticks], unit="ns", utc=True).tz_convert("Asia/Kolkata")
    assert [t.strftime("%m-%d %H:%M") for t in times] == [
        "01-06 09:15", "01-06 10:48", "01-06 12:22", "01-06 13:56",
        "01-07 09:15", "01-07 10:48", "01-07 12:22", "01-07 13:56",
    ]  # fmt: skip
    assert [t.last for t in ticks] == [100, 99, 104, 103, 103, 105, 101, 102]
    # A minute bar keeps its minute; one starting outside the hours keeps its length.
    path.write_text(
        "Date,Open,High,Low,Close\n2025-01-06 15:29,1,1,1,1\n2025-01-06 16:00,1,1,1,1\n"
    )
    feed = ReplayFeed(ReplayFeedConfig(path=str(path), bar_seconds=60, as_fast_as_possible=True))
    starts = [t.ts for t in feed.ticks()]
    assert starts[3] - starts[0] == 45 * 10**9 and starts[7] - starts[4] == 45 * 10**9
