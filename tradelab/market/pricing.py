"""Black-Scholes(-Merton) prices, greeks and implied volatility for European index options.

Pure functions, safe from any thread: scalar ones on floats (`bs_price`, `bs_greeks`), and
vectorized ones on numpy arrays for a whole chain in one call (`chain_prices`, `chain_greeks`,
in `tradelab.market.chain`). Implied volatility uses Jaeckel's "Let's Be Rational".
Units: time in years, rates and volatility annualised (0.2 = 20%), continuous dividend yield q.
Vega is per 1.00 of volatility (divide by 100 for "per vol point"); theta is per year
(divide by 365 for per calendar day).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from py_lets_be_rational import (
    implied_volatility_from_a_transformed_rational_guess as _lets_be_rational,
)

from tradelab.errors import InvalidInputError

_N = NormalDist()
_pdf = _N.pdf
_SQRT2 = math.sqrt(2.0)


def _cdf(x: float) -> float:
    # erfc, not 1 + erf: in the lower tail 1 + erf(x) cancels to 0 below ~1e-17, which priced
    # deep out-of-the-money options at exactly 0; erfc keeps full relative precision there.
    return 0.5 * math.erfc(-x / _SQRT2)


IV_LOWER = 1e-6
IV_UPPER = 5.0


@dataclass(frozen=True, slots=True)
class Greeks:
    price: float
    delta: float
    gamma: float
    vega: float
    theta: float


def _check(name: str, value: float, *, positive: bool = True, allow_zero: bool = False) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{name} {value!r} must be a finite number")
    if positive and (value < 0 or (value == 0 and not allow_zero)):
        raise InvalidInputError(
            f"{name} {value!r} must be {'non-negative' if allow_zero else 'positive'}"
        )


def _inputs(spot: float, strike: float, years: float, rate: float, vol: float, q: float) -> None:
    _check("spot", spot)
    _check("strike", strike)
    _check("time to expiry", years, allow_zero=True)
    _check("rate", rate, positive=False)
    _check("volatility", vol, allow_zero=True)
    _check("dividend yield", q, positive=False)


def _d1_d2(spot: float, strike: float, years: float, rate: float, vol: float, q: float):
    sq = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate - q + 0.5 * vol * vol) * years) / sq
    return d1, d1 - sq


def bs_price(
    spot: float, strike: float, years: float, rate: float, vol: float, is_call: bool, q: float = 0.0
) -> float:
    """Black-Scholes price; at expiry or zero vol, the discounted intrinsic value."""
    _inputs(spot, strike, years, rate, vol, q)
    df_r, df_q = math.exp(-rate * years), math.exp(-q * years)
    if years == 0.0 or vol == 0.0:
        forward_intrinsic = spot * df_q - strike * df_r
        return max(forward_intrinsic, 0.0) if is_call else max(-forward_intrinsic, 0.0)
    d1, d2 = _d1_d2(spot, strike, years, rate, vol, q)
    if is_call:
        return spot * df_q * _cdf(d1) - strike * df_r * _cdf(d2)
    return strike * df_r * _cdf(-d2) - spot * df_q * _cdf(-d1)


def bs_greeks(
    spot: float, strike: float, years: float, rate: float, vol: float, is_call: bool, q: float = 0.0
) -> Greeks:
    """Price, delta, gamma, vega (per 1.00 vol) and theta (per year) in one pass."""
    _inputs(spot, strike, years, rate, vol, q)
    if years == 0.0 or vol == 0.0:
        raise InvalidInputError(
            f"greeks need time to expiry > 0 and volatility > 0, got T={years!r}, vol={vol!r}"
        )
    df_r, df_q = math.exp(-rate * years), math.exp(-q * years)
    d1, d2 = _d1_d2(spot, strike, years, rate, vol, q)
    sqrt_t = math.sqrt(years)
    pdf_d1 = _pdf(d1)
    gamma = df_q * pdf_d1 / (spot * vol * sqrt_t)
    vega = spot * df_q * pdf_d1 * sqrt_t
    decay = -spot * df_q * pdf_d1 * vol / (2.0 * sqrt_t)
    if is_call:
        price = spot * df_q * _cdf(d1) - strike * df_r * _cdf(d2)
        delta = df_q * _cdf(d1)
        theta = decay - rate * strike * df_r * _cdf(d2) + q * spot * df_q * _cdf(d1)
    else:
        price = strike * df_r * _cdf(-d2) - spot * df_q * _cdf(-d1)
        delta = -df_q * _cdf(-d1)
        theta = decay + rate * strike * df_r * _cdf(-d2) - q * spot * df_q * _cdf(-d1)
    return Greeks(price=price, delta=delta, gamma=gamma, vega=vega, theta=theta)


def no_arbitrage_bounds(
    spot: float, strike: float, years: float, rate: float, is_call: bool, q: float = 0.0
) -> tuple[float, float]:
    """(lower, upper) price bounds of a European option."""
    df_r, df_q = math.exp(-rate * years), math.exp(-q * years)
    if is_call:
        return max(spot * df_q - strike * df_r, 0.0), spot * df_q
    return max(strike * df_r - spot * df_q, 0.0), strike * df_r


def implied_vol(
    price: float,
    spot: float,
    strike: float,
    years: float,
    rate: float,
    is_call: bool,
    q: float = 0.0,
    *,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> float:
    """The volatility at which `bs_price` equals `price`, to machine precision.

    Solved with Jaeckel's "Let's Be Rational" on the Black (forward) price: two Householder
    steps from a rational guess, no bracketing loop. `tol` and `max_iter` are accepted for
    compatibility and not needed. Raises `InvalidInputError` naming the price and the bounds
    when no volatility in [1e-6, 5] reproduces it (outside no-arbitrage bounds, or implying
    more than 500% vol).
    """
    del tol, max_iter
    _check("option price", price, allow_zero=True)
    _inputs(spot, strike, years, rate, 0.0, q)
    if years == 0.0:
        raise InvalidInputError("implied volatility needs time to expiry > 0, got 0")
    lower, upper = no_arbitrage_bounds(spot, strike, years, rate, is_call, q)
    if not lower < price < upper:
        raise InvalidInputError(
            f"option price {price!r} is outside the no-arbitrage bounds "
            f"({lower:.6f}, {upper:.6f}) for spot {spot}, strike {strike}, T={years:.6f}"
        )
    growth = math.exp(rate * years)
    forward = spot * math.exp((rate - q) * years)
    vol = _lets_be_rational(price * growth, forward, strike, years, 1.0 if is_call else -1.0)
    if not IV_LOWER <= vol <= IV_UPPER:
        raise InvalidInputError(
            f"option price {price!r} implies a volatility {vol:.6g} outside "
            f"[{IV_LOWER}, {IV_UPPER}] (model prices "
            f"{bs_price(spot, strike, years, rate, IV_LOWER, is_call, q):.6f} .. "
            f"{bs_price(spot, strike, years, rate, IV_UPPER, is_call, q):.6f})"
        )
    return vol
