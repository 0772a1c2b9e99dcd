"""What the paper broker charges and the price it fills at: `PaperBrokerConfig` (costs,
frictions, limits), `checked_terms` (whether it takes an order) and `fill_terms` (an order
against the quote at the touch). Pure functions of
their inputs; the broker calls them under its lock.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Any

import param

from tradelab.broker.account import PaperAccount
from tradelab.broker.paper_order import PaperOrder
from tradelab.broker.settlement import expiry_close_ns
from tradelab.errors import InvalidInputError, OrderRejectedError
from tradelab.market.clock import NS_PER_S, MarketHours
from tradelab.market.instruments import IST, TICK_SIZE
from tradelab.trading.orders import OrderRequest, OrderType, Side, check_price, check_quantity


class PaperBrokerConfig(param.Parameterized):
    """Costs, frictions and limits of the paper broker."""

    slippage_ticks = param.Integer(
        default=0,
        bounds=(0, 1000),
        doc="Ticks (an option's 0.05) paid beyond the touch on market orders; an instrument "
        "without a tick (a replayed coin or currency) takes none.",
    )
    latency_ms = param.Integer(
        default=0, bounds=(0, 600_000), doc="Clock time from acceptance until an order can fill."
    )
    brokerage_per_fill = param.Number(default=20.0, bounds=(0.0, None), doc="Flat fee, rupees.")
    charges_rate = param.Number(
        default=0.0, bounds=(0.0, 0.1), doc="Fees as a fraction of premium turnover."
    )
    capital = param.Number(default=1_000_000.0, bounds=(0.0, None), doc="Starting cash, rupees.")
    short_margin_rate = param.Number(
        default=0.12, bounds=(0.0, 1.0), doc="Margin blocked per short unit, x strike."
    )
    enforce_market_hours = param.Boolean(default=True, doc="Reject orders outside 09:15-15:30.")
    history_fills = param.Integer(
        default=20_000,
        bounds=(1, None),
        doc="Fills the account keeps (the newest); older ones leave its file, as a real broker's "
        "trade book keeps only recent days. Positions and cash are always kept.",
    )
    history_orders = param.Integer(
        default=20_000,
        bounds=(1, None),
        doc="Finished orders the account keeps (those changed last); working orders are always "
        "kept. An order id that left may be used again.",
    )


def tick_size_of(contract: Any) -> float:
    """The price step a fill of `contract` is rounded to: its `tick_size` (NIFTY options: 0.05);
    0 for an instrument without one (a backtest's stock, currency or coin): no rounding."""
    return float(getattr(contract, "tick_size", TICK_SIZE))


def _decimals(tick: float) -> int:
    # 0.05 -> 2, 0.0001 -> 4, 1e-05 -> 5: rounding to these strips float noise off touch +- slip.
    return max(0, -int(Decimal(repr(tick)).normalize().as_tuple().exponent))


def fill_terms(
    order: PaperOrder, quote: list[float], config: PaperBrokerConfig
) -> tuple[int, float, float] | None:
    """(units, price, fee) the order fills now against `quote` ([bid, ask, bid size left, ask
    size left]), taking the units from the size left; None if it cannot fill. The price is
    rounded to the instrument's tick decimals (and a sell never slips below one tick) and the
    fee to paise; an instrument without a tick fills at the price quoted and pays the exact fee
    (a commission of 0.0003 on a fill of 11.30 is 0.00339, not 0.00)."""
    r = order.request
    buy = r.side is Side.BUY
    touch = quote[1] if buy else quote[0]
    available = int(quote[3] if buy else quote[2])
    if touch <= 0 or not math.isfinite(touch):
        return None
    tick = tick_size_of(order.contract)
    # Slippage is counted in the instrument's ticks: one without a tick (a coin at 0.00002, a
    # currency) takes none, as 0.05 a unit would be thousands of times its price on buys.
    slip = config.slippage_ticks * tick
    if buy:
        price = touch + slip
    else:
        price = touch - slip
        if tick and price < tick:  # slippage never takes a sell below one tick
            price = min(tick, touch)
    if r.order_type is OrderType.LIMIT:
        if (buy and touch > r.limit_price) or (not buy and touch < r.limit_price):
            return None
        price = min(price, r.limit_price) if buy else max(price, r.limit_price)
    # Fill whole lots only, up to the size shown at the touch.
    size = min(order.remaining, available) // order.lot_size * order.lot_size
    if size <= 0:
        return None
    fee = config.brokerage_per_fill + config.charges_rate * price * size
    if tick:  # an exchange's contract note: the price on its tick, the fee in paise
        price = round(price, _decimals(tick))
        fee = round(config.brokerage_per_fill + config.charges_rate * price * size, 2)
    quote[3 if buy else 2] = available - size
    return size, price, fee


def checked_terms(
    request: OrderRequest,
    now: int,
    universe: Any,
    hours: MarketHours,
    config: PaperBrokerConfig,
    account: PaperAccount,
    quotes: dict[str, list[float]],
) -> tuple[Any, int]:
    """(contract, lot size) of an order the broker can take at `now`; else the
    InvalidInputError (bad terms) or OrderRejectedError (a market or account state) it raises."""
    contract = universe.parse(request.symbol)
    if expiry_close_ns(contract) <= now:
        raise OrderRejectedError(
            f"contract {request.symbol} expired on {contract.expiry.isoformat()}"
        )
    if config.enforce_market_hours and not hours.is_open(now):
        at = datetime.fromtimestamp(now / NS_PER_S, tz=IST).strftime("%Y-%m-%d %H:%M:%S")
        raise OrderRejectedError(
            f"market is closed at {at} IST; orders are taken 09:15-15:30 IST on trading days"
        )
    lot = universe.lot_size(contract)
    check_quantity(request.quantity, lot, request.symbol)
    if request.order_type is OrderType.LIMIT:
        if request.limit_price is None:
            raise InvalidInputError(f"limit order for {request.symbol} has no limit price")
        check_price(request.limit_price, "limit price", request.symbol)
    if request.order_type is OrderType.MARKET and request.symbol not in quotes:
        raise OrderRejectedError(f"no quote for {request.symbol}; cannot place a market order")
    account.check_margin(
        request, contract, quotes, (config.brokerage_per_fill, config.charges_rate)
    )
    return contract, lot
