"""The simulated market quotes the spread it is configured with."""

from __future__ import annotations

import itertools

from tradelab.market.feeds import SimulatedFeed, SimulatedFeedConfig


def test_option_quotes_are_spread_pct_wide_around_their_price():
    cfg = SimulatedFeedConfig(seed=5, as_fast_as_possible=True, spread_pct=0.2)
    ticks = list(itertools.islice(SimulatedFeed(cfg).ticks(), 3000))
    options = [t for t in ticks if t.symbol != "NIFTY" and t.bid > 10.0]
    assert len(options) > 500
    for t in options:
        mid = (t.bid + t.ask) / 2
        assert abs((t.ask - t.bid) - 0.2 * mid) <= 0.15, (t.symbol, t.bid, t.ask)


def test_an_untraded_options_last_price_is_its_last_trade():
    cfg = SimulatedFeedConfig(seed=7, as_fast_as_possible=True)
    last_trade: dict[str, float] = {}
    checked = 0
    for t in itertools.islice(SimulatedFeed(cfg).ticks(), 20_000):
        if t.symbol == "NIFTY":
            continue
        if t.volume:
            last_trade[t.symbol] = t.last
        elif t.symbol in last_trade:
            assert t.last == last_trade[t.symbol], t
            checked += 1
    assert checked > 1000
