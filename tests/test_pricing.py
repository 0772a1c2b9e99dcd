import math
from statistics import NormalDist

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradelab.errors import InvalidInputError
from tradelab.market.chain import chain_greeks, chain_prices
from tradelab.market.pricing import bs_greeks, bs_price, implied_vol, no_arbitrage_bounds

N = NormalDist()


def closed_form(s, k, t, r, v, call):
    # Written out independently of the module (NormalDist.cdf, no shared helpers).
    d1 = (math.log(s / k) + (r + v * v / 2) * t) / (v * math.sqrt(t))
    d2 = d1 - v * math.sqrt(t)
    if call:
        return s * N.cdf(d1) - k * math.exp(-r * t) * N.cdf(d2)
    return k * math.exp(-r * t) * N.cdf(-d2) - s * N.cdf(-d1)


def test_hull_reference_call_and_put_prices():
    # Hull, Options Futures and Other Derivatives, example 15.6: S=42, K=40, r=10%, vol=20%, T=0.5.
    call = bs_price(42, 40, 0.5, 0.10, 0.20, True)
    put = bs_price(42, 40, 0.5, 0.10, 0.20, False)
    assert round(call, 2) == 4.76
    assert round(put, 2) == 0.81
    assert call == pytest.approx(closed_form(42, 40, 0.5, 0.10, 0.20, True), abs=1e-9)
    assert put == pytest.approx(closed_form(42, 40, 0.5, 0.10, 0.20, False), abs=1e-9)


@pytest.mark.parametrize("spot", [20000.0, 23975.5, 24000.0, 26000.0])
@pytest.mark.parametrize("strike", [22000, 24000, 25500])
@pytest.mark.parametrize("years", [1 / 365, 7 / 365, 0.25, 1.0])
def test_put_call_parity_holds_to_1e6(spot, strike, years):
    r, vol = 0.065, 0.14
    call = bs_price(spot, strike, years, r, vol, True)
    put = bs_price(spot, strike, years, r, vol, False)
    assert call - put == pytest.approx(spot - strike * math.exp(-r * years), abs=1e-6)
    assert call == pytest.approx(closed_form(spot, strike, years, r, vol, True), abs=1e-6)


def test_greeks_match_finite_differences():
    s, k, t, r, v = 24000.0, 24100.0, 10 / 365, 0.065, 0.13
    for call in (True, False):
        g = bs_greeks(s, k, t, r, v, call)
        h = 0.01
        delta = (bs_price(s + h, k, t, r, v, call) - bs_price(s - h, k, t, r, v, call)) / (2 * h)
        gamma = bs_price(s + 1, k, t, r, v, call) - 2 * g.price + bs_price(s - 1, k, t, r, v, call)
        vega = (bs_price(s, k, t, r, v + 1e-5, call) - bs_price(s, k, t, r, v - 1e-5, call)) / 2e-5
        theta = (
            -(bs_price(s, k, t + 1e-6, r, v, call) - bs_price(s, k, t - 1e-6, r, v, call)) / 2e-6
        )
        assert g.delta == pytest.approx(delta, rel=1e-6)
        assert g.gamma == pytest.approx(gamma, rel=1e-4)
        assert g.vega == pytest.approx(vega, rel=1e-6)
        assert g.theta == pytest.approx(theta, rel=1e-5)
    assert bs_greeks(s, k, t, r, v, True).delta - bs_greeks(s, k, t, r, v, False).delta == (
        pytest.approx(1.0, abs=1e-12)
    )


def test_hull_reference_implied_vol_recovers_twenty_percent():
    price = closed_form(42, 40, 0.5, 0.10, 0.20, True)
    assert implied_vol(price, 42, 40, 0.5, 0.10, True) == pytest.approx(0.20, abs=1e-8)


@settings(max_examples=200, deadline=None)
@given(
    vol=st.floats(0.03, 1.5),
    moneyness=st.floats(0.8, 1.2),
    days=st.integers(1, 365),
    call=st.booleans(),
)
def test_implied_vol_inverts_the_price(vol, moneyness, days, call):
    spot, strike, years, r = 24000.0, 24000.0 * moneyness, days / 365, 0.065
    price = bs_price(spot, strike, years, r, vol, call)
    lower, upper = no_arbitrage_bounds(spot, strike, years, r, call)
    if price - lower < 1e-6 * spot:  # no time value left to invert: vol is not identifiable
        return
    assert implied_vol(price, spot, strike, years, r, call) == pytest.approx(vol, abs=1e-6)


def test_price_below_intrinsic_is_a_clear_error():
    with pytest.raises(InvalidInputError, match=r"option price 1\.0 is outside the no-arbitrage"):
        implied_vol(1.0, 42, 40, 0.5, 0.10, True)  # intrinsic alone is ~3.95


def test_price_above_spot_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="outside the no-arbitrage bounds"):
        implied_vol(43.0, 42, 40, 0.5, 0.10, True)


@pytest.mark.parametrize(
    "args, name",
    [
        ((float("nan"), 40, 0.5, 0.1, 0.2), "spot"),
        ((-42, 40, 0.5, 0.1, 0.2), "spot"),
        ((42, 0, 0.5, 0.1, 0.2), "strike"),
        ((42, 40, -0.5, 0.1, 0.2), "time to expiry"),
        ((42, 40, 0.5, 0.1, float("inf")), "volatility"),
    ],
)
def test_bad_pricing_inputs_name_the_value(args, name):
    with pytest.raises(InvalidInputError, match=name):
        bs_price(*args, True)


def test_at_expiry_price_is_intrinsic():
    assert bs_price(24100, 24000, 0.0, 0.065, 0.2, True) == pytest.approx(100.0)
    assert bs_price(24100, 24000, 0.0, 0.065, 0.2, False) == 0.0


def mp_price(s, k, t, r, v, call):
    # 50-digit reference: mpmath's ncdf has no cancellation at any depth of the tail.
    mp.mp.dps = 50
    s, k, t, r, v = (mp.mpf(x) for x in (s, k, t, r, v))
    d1 = (mp.log(s / k) + (r + v * v / 2) * t) / (v * mp.sqrt(t))
    d2 = d1 - v * mp.sqrt(t)
    if call:
        return float(s * mp.ncdf(d1) - k * mp.exp(-r * t) * mp.ncdf(d2))
    return float(k * mp.exp(-r * t) * mp.ncdf(-d2) - s * mp.ncdf(-d1))


@pytest.mark.parametrize(
    "strike, call", [(30000.0, True), (32000.0, True), (18000.0, False), (16000.0, False)]
)
def test_deep_out_of_the_money_price_is_positive_and_exact(strike, call):
    # d2 is about -12 to -19 here: 1 + erf(d/sqrt 2) rounds to exactly 0 at these depths.
    args = (24000.0, strike, 7 / 365, 0.065, 0.13)
    reference = mp_price(*args, call)
    assert 0 < reference < 1e-20
    # abs=0: approx's default absolute slack (1e-12) would accept a price rounded to 0.
    assert bs_price(*args, call) > 0
    assert bs_price(*args, call) == pytest.approx(reference, rel=1e-9, abs=0)
    assert chain_prices(*args, call)[()] == pytest.approx(reference, rel=1e-9, abs=0)


def test_chain_prices_and_greeks_match_the_scalar_path_option_by_option():
    strikes = np.arange(23000.0, 25001.0, 50.0)
    strikes = np.concatenate([strikes, strikes])
    calls = np.repeat([True, False], len(strikes) // 2)
    vols = 0.12 + 0.1 * np.abs(np.log(strikes / 24000.0))
    years, spot, r, q = 9 / 365, 24013.5, 0.065, 0.01
    vector = chain_greeks(spot, strikes, years, r, vols, calls, q)
    prices = chain_prices(spot, strikes, years, r, vols, calls, q)
    for i, (k, v, c) in enumerate(zip(strikes, vols, calls, strict=True)):
        g = bs_greeks(spot, float(k), years, r, float(v), bool(c), q)
        assert prices[i] == pytest.approx(g.price, rel=1e-12, abs=1e-9)
        for name in ("price", "delta", "gamma", "vega", "theta"):
            got = getattr(vector, name)[i]
            assert got == pytest.approx(getattr(g, name), rel=1e-10, abs=1e-12), (name, k, c)


def test_chain_prices_at_expiry_are_intrinsic():
    got = chain_prices(24100.0, [24000.0, 24200.0], 0.0, 0.065, 0.2, [True, True])
    assert got.tolist() == pytest.approx([100.0, 0.0])


def test_chain_bad_input_names_the_value_and_its_index():
    with pytest.raises(InvalidInputError, match=r"strike -5\.0 at index 2 must be a positive"):
        chain_prices(24000.0, [24000.0, 24050.0, -5.0], 0.1, 0.065, 0.13, True)
    with pytest.raises(InvalidInputError, match="greeks need time to expiry > 0"):
        chain_greeks(24000.0, [24000.0, 24050.0], [0.1, 0.0], 0.065, 0.13, True)


def test_implied_vol_is_exact_to_machine_precision():
    # Let's Be Rational converges to the last few ulps, whatever the moneyness.
    for vol in (0.05, 0.13, 0.2, 0.8):
        price = closed_form(24000.0, 24300.0, 10 / 365, 0.065, vol, True)
        assert implied_vol(price, 24000.0, 24300.0, 10 / 365, 0.065, True) == pytest.approx(
            vol, abs=1e-13
        )


def test_price_implying_more_than_500pct_vol_is_a_clear_error():
    price = bs_price(24000.0, 24000.0, 30 / 365, 0.065, 6.0, True)
    with pytest.raises(InvalidInputError, match=r"implies a volatility 6 outside \[1e-06, 5\.0\]"):
        implied_vol(price, 24000.0, 24000.0, 30 / 365, 0.065, True)
