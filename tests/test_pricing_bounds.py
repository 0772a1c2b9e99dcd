"""A put's no-arbitrage upper bound is the discounted strike, and implied
volatility with a dividend yield round-trips."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest

from tradelab.market.chain import chain_prices
from tradelab.market.instruments import OptionUniverse
from tradelab.market.pricing import bs_price, implied_vol, no_arbitrage_bounds


def test_a_puts_upper_bound_is_the_discounted_strike():
    lower, upper = no_arbitrage_bounds(24000.0, 24000.0, 0.5, 0.065, is_call=False)
    assert upper == pytest.approx(24000.0 * math.exp(-0.065 * 0.5))
    assert lower == 0.0


@pytest.mark.parametrize("is_call", [True, False])
def test_implied_vol_with_a_dividend_yield_gives_back_the_vol_it_was_priced_at(is_call):
    price = bs_price(24000.0, 24500.0, 0.25, 0.065, 0.18, is_call, q=0.02)
    assert implied_vol(price, 24000.0, 24500.0, 0.25, 0.065, is_call, q=0.02) == pytest.approx(
        0.18, abs=1e-9
    )


def test_a_chain_at_zero_vol_is_priced_at_the_discounted_intrinsic_value_as_bs_price():
    strikes = np.array([23000.0, 24000.0, 25000.0])
    for is_call in (True, False):
        got = chain_prices(24000.0, strikes, 0.5, 0.065, 0.0, is_call)
        want = [bs_price(24000.0, k, 0.5, 0.065, 0.0, is_call) for k in strikes]
        assert got.tolist() == pytest.approx(want)


def test_time_to_expiry_is_zero_once_expired_and_prices_at_intrinsic():
    universe = OptionUniverse()
    expiry = universe.calendar.weekly_expiries(date(2025, 11, 12), 1)[0]
    [contract] = [c for c in universe.chain(expiry, 24000.0, 0) if c.is_call]
    after = contract.expiry_close() + timedelta(hours=2)
    assert contract.years_to_expiry(after) == 0.0
    years = contract.years_to_expiry(after)
    assert bs_price(24100.0, contract.strike, years, 0.065, 0.13, True) == 100.0
