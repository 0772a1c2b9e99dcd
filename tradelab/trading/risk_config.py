"""The risk limits a session runs with (`risk` in tradelab.yaml): `RiskConfig`."""

from __future__ import annotations

import param

from tradelab.trading.risk_state import HALT_MODES, HALTED


class RiskConfig(param.Parameterized):
    """Pre-trade limits and the daily loss limit. A limit of None is not checked.

    An exit (an order that only reduces its strategy's position: the opposite side, for no more
    than the position less that strategy's working exits in the symbol) is exempt from the
    order, notional, rate and open-position limits: they bound exposure, an exit lowers it, and
    a limit that refused one would trap the risk it is there to bound.
    """

    max_order_quantity = param.Integer(
        default=None,
        allow_None=True,
        bounds=(1, None),
        doc="Units (contracts) per order (exits exempt).",
    )
    max_open_positions = param.Integer(
        default=None,
        allow_None=True,
        bounds=(0, None),
        doc="Open positions across strategies, each counted from its first working order.",
    )
    max_order_notional = param.Number(
        default=None,
        allow_None=True,
        bounds=(0.0, None),
        doc="Premium value of one order (exits exempt): a limit order at its limit, a market "
        "order at the touch it would fill at (the ask to buy, the bid to sell), else the mark.",
    )
    max_total_notional = param.Number(
        default=None,
        allow_None=True,
        bounds=(0.0, None),
        doc="Premium value of open positions plus working orders plus this order (exits exempt).",
    )
    max_orders_per_minute = param.Integer(
        default=None,
        allow_None=True,
        bounds=(1, None),
        doc="Orders sent in any 60 s of market time (exits count but are never refused).",
    )
    daily_loss_limit = param.Number(
        default=None,
        allow_None=True,
        bounds=(0.0, None),
        doc="Rupees: a daily loss (P&L realized + unrealized - fees, below 0) of at least this "
        "breaches (0: any loss), once a day: after an operator resumes, it is not checked again "
        "until the next session.",
    )
    on_breach = param.Selector(
        default=HALTED,
        objects=list(HALT_MODES),
        doc="After a breach: 'halted' (no new orders) or 'reducing' (only exits); working "
        "orders the mode forbids are cancelled.",
    )
    flatten_on_breach = param.Boolean(
        default=False, doc="Close every open position with market orders after a breach."
    )
    check_interval_s = param.Number(
        default=0.5, bounds=(0.01, 60.0), doc="Longest wait between two daily-loss checks."
    )
