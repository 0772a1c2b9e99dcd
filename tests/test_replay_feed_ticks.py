"""A replayed bar's volume comes with its close, and a stop during a paced
wait delivers nothing more."""

from __future__ import annotations

import threading
import time

import pandas as pd
from test_market_feeds import SAMPLE, write

from tradelab.market.feeds import ReplayFeed, ReplayFeedConfig


def test_a_bars_volume_is_on_its_close_tick_not_known_at_its_open(tmp_path):
    frame = pd.read_csv(SAMPLE).query("symbol == 'NIFTY'").head(3).reset_index(drop=True)
    frame["volume"] = [100, 200, 300]
    feed = ReplayFeed(ReplayFeedConfig(path=str(write(tmp_path, frame)), as_fast_as_possible=True))
    volumes = [t.volume for t in feed.ticks()]
    assert volumes == [0, 0, 0, 100, 0, 0, 0, 200, 0, 0, 0, 300]


def test_a_stop_during_a_paced_wait_delivers_no_tick_after_it(tmp_path):
    frame = pd.read_csv(SAMPLE).query("symbol == 'NIFTY'").head(2).reset_index(drop=True)
    feed = ReplayFeed(ReplayFeedConfig(path=str(write(tmp_path, frame)), speed=1.0))
    stop, got = threading.Event(), []
    threading.Timer(0.3, stop.set).start()  # during the 15 s wait for the bar's second tick
    started = time.perf_counter()
    feed.run(got.append, stop=stop)
    assert time.perf_counter() - started < 5.0
    assert len(got) == 1  # the first tick at once; the one being waited for never came
