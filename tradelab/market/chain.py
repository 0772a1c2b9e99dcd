"""Black-Scholes prices and greeks of a whole option chain in one vectorized (numpy) call.

The array twins of `pricing.bs_price` / `pricing.bs_greeks`: every argument may be a scalar or
an array, broadcast together. Tails use `scipy.special.ndtr` (no 1 + erf cancellation), so deep
out-of-the-money prices stay positive. Pure functions, safe from any thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from tradelab.errors import InvalidInputError

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


@dataclass(frozen=True, slots=True)
class ChainGreeks:
    """Price, delta, gamma, vega (per 1.00 vol) and theta (per year), one entry per option."""

    price: NDArray[np.float64]
    delta: NDArray[np.float64]
    gamma: NDArray[np.float64]
    vega: NDArray[np.float64]
    theta: NDArray[np.float64]


def _checked(name: str, value: ArrayLike, *, allow_zero: bool, signed: bool = False):
    arr = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if not signed:
        bad |= (arr < 0) if allow_zero else (arr <= 0)
    if bad.any():
        index = int(np.flatnonzero(bad.ravel())[0])
        expected = "finite" if signed else ("non-negative" if allow_zero else "positive")
        raise InvalidInputError(
            f"{name} {float(arr.ravel()[index])!r} at index {index} must be a {expected} number"
        )
    return arr


def _inputs(spot, strike, years, rate, vol, q):
    return (
        _checked("spot", spot, allow_zero=False),
        _checked("strike", strike, allow_zero=False),
        _checked("time to expiry", years, allow_zero=True),
        _checked("rate", rate, allow_zero=True, signed=True),
        _checked("volatility", vol, allow_zero=True),
        _checked("dividend yield", q, allow_zero=True, signed=True),
    )


def chain_prices(
    spot: ArrayLike,
    strike: ArrayLike,
    years: ArrayLike,
    rate: ArrayLike,
    vol: ArrayLike,
    is_call: ArrayLike,
    q: ArrayLike = 0.0,
) -> NDArray[np.float64]:
    """Black-Scholes prices; at expiry or zero vol, the discounted intrinsic value."""
    s, k, t, r, v, d = _inputs(spot, strike, years, rate, vol, q)
    call = np.asarray(is_call, dtype=bool)
    df_r, df_q = np.exp(-r * t), np.exp(-d * t)
    sq = v * np.sqrt(t)
    live = sq > 0.0
    # Dead entries (T = 0 or vol = 0) get a dummy width so the division stays finite.
    width = np.where(live, sq, 1.0)
    d1 = (np.log(s / k) + (r - d) * t) / width + 0.5 * width
    d2 = d1 - width
    sign = np.where(call, 1.0, -1.0)
    fwd_s, fwd_k = s * df_q, k * df_r
    price = sign * (fwd_s * ndtr(sign * d1) - fwd_k * ndtr(sign * d2))
    intrinsic = np.maximum(sign * (fwd_s - fwd_k), 0.0)
    return np.where(live, price, intrinsic)


def chain_greeks(
    spot: ArrayLike,
    strike: ArrayLike,
    years: ArrayLike,
    rate: ArrayLike,
    vol: ArrayLike,
    is_call: ArrayLike,
    q: ArrayLike = 0.0,
) -> ChainGreeks:
    """Price and greeks of every option in one pass; needs T > 0 and vol > 0 everywhere."""
    s, k, t, r, v, d = _inputs(spot, strike, years, rate, vol, q)
    t_all, v_all = np.broadcast_arrays(t, v)
    dead = (t_all == 0.0) | (v_all == 0.0)
    if dead.any():
        index = int(np.flatnonzero(dead.ravel())[0])
        raise InvalidInputError(
            "greeks need time to expiry > 0 and volatility > 0, got "
            f"T={float(t_all.ravel()[index])!r}, vol={float(v_all.ravel()[index])!r} "
            f"at index {index}"
        )
    call = np.asarray(is_call, dtype=bool)
    sign = np.where(call, 1.0, -1.0)
    df_r, df_q = np.exp(-r * t), np.exp(-d * t)
    sqrt_t = np.sqrt(t)
    sq = v * sqrt_t
    d1 = (np.log(s / k) + (r - d) * t) / sq + 0.5 * sq
    d2 = d1 - sq
    n_d1, n_d2 = ndtr(sign * d1), ndtr(sign * d2)
    pdf_d1 = _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    fwd_s, fwd_k = s * df_q, k * df_r
    price = sign * (fwd_s * n_d1 - fwd_k * n_d2)
    delta = sign * df_q * n_d1
    gamma = df_q * pdf_d1 / (s * sq)
    vega = fwd_s * pdf_d1 * sqrt_t
    theta = -fwd_s * pdf_d1 * v / (2.0 * sqrt_t) - sign * (r * fwd_k * n_d2 - d * fwd_s * n_d1)
    return ChainGreeks(price=price, delta=delta, gamma=gamma, vega=vega, theta=theta)
