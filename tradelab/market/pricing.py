"""Black-Scholes(-Merton) prices, greeks and implied volatility for European index options.

Pure functions on floats (stdlib `statistics.NormalDist`, no scipy); safe from any thread.
Units: time in years, rates and volatility annualised (0.2 = 20%), continuous dividend yield q.
Vega is per 1.00 of volatility (divide by 100 for "per vol point"); theta is per year
(divide by 365 for per calendar day).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from tradelab.errors import InvalidInputError

_N = NormalDist()
_pdf = _N.pdf
_SQRT2 = math.sqrt(2.0)


def _cdf(x: float) -> float:
    # Same value as NormalDist().cdf, without its per-call overhead (the feed prices every tick).
    return 0.5 * (1.0 + math.erf(x / _SQRT2))


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
    """The volatility at which `bs_price` equals `price` (Brent's method on [1e-6, 5]).

    Raises `InvalidInputError` naming the price and the bounds when no volatility in that range
    reproduces it (outside no-arbitrage bounds, or implying more than 500% vol).
    """
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

    def f(vol: float) -> float:
        return bs_price(spot, strike, years, rate, vol, is_call, q) - price

    a, b = IV_LOWER, IV_UPPER
    fa, fb = f(a), f(b)
    if fa > 0 or fb < 0:
        raise InvalidInputError(
            f"option price {price!r} implies a volatility outside [{a}, {b}] "
            f"(model prices {fa + price:.6f} .. {fb + price:.6f})"
        )
    return _brent(f, a, b, fa, fb, tol, max_iter)


def _brent(f, a: float, b: float, fa: float, fb: float, tol: float, max_iter: int) -> float:
    # Brent's root finder: inverse quadratic / secant steps, falling back to bisection so it
    # always converges on a bracketed monotone function.
    if abs(fa) < abs(fb):
        a, b, fa, fb = b, a, fb, fa
    c, fc, d = a, fa, b - a
    bisected = True
    for _ in range(max_iter):
        if fb == 0.0 or abs(b - a) < tol:
            return b
        if fa != fc and fb != fc:
            s = (
                a * fb * fc / ((fa - fb) * (fa - fc))
                + b * fa * fc / ((fb - fa) * (fb - fc))
                + c * fa * fb / ((fc - fa) * (fc - fb))
            )
        else:
            s = b - fb * (b - a) / (fb - fa)
        mid = (3 * a + b) / 4
        if (
            not (min(mid, b) < s < max(mid, b))
            or (bisected and abs(s - b) >= abs(b - c) / 2)
            or (not bisected and abs(s - b) >= abs(c - d) / 2)
            or (bisected and abs(b - c) < tol)
            or (not bisected and abs(c - d) < tol)
        ):
            s = (a + b) / 2
            bisected = True
        else:
            bisected = False
        fs = f(s)
        d, c, fc = c, b, fb
        if fa * fs < 0:
            b, fb = s, fs
        else:
            a, fa = s, fs
        if abs(fa) < abs(fb):
            a, b, fa, fb = b, a, fb, fa
    return b
