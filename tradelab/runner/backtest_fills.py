"""The backtest's fill model for resting limits: which limit prices a bar traded through.

Each bar is played as its open quote, then its close quote (tradelab.runner.backtest); a limit
between the two was passed inside the bar, so it is quoted too and fills at its limit.
"""

from __future__ import annotations


def limits_passed(working: dict, symbol: str, open_: float, close: float) -> list[float]:
    """The limit prices of `symbol`'s working orders strictly between a bar's open and close,
    in the order the price passed them. The bar traded through them, so each is quoted: a
    resting limit fills at its limit there, not at the close beyond it (only a gap at the
    open fills one at a better price)."""
    low, high = min(open_, close), max(open_, close)
    prices = {
        o.request.limit_price
        for o in working.values()
        if o.request.symbol == symbol
        and o.request.limit_price is not None
        and low < o.request.limit_price < high
    }
    return sorted(prices, reverse=close < open_)
