"""Expiry settlement of NIFTY options in the paper account, as NSE settles them: in cash, at the
intrinsic value against the index's price at the expiry's close.

An option still held when its expiry closes (15:30 IST on its expiry day) is closed by the
exchange, not by an order of ours: a call at max(index - strike, 0), a put at max(strike -
index, 0), so an out-of-the-money option expires worthless (price 0). The paper broker books
that as one settlement order per strategy holding the contract (the strategy its fills carry;
units no fill explains, which only an edited account file can hold, settle as SETTLEMENT_OWNER),
filled at once at that price with no fee, and reports it like any fill. Its order id is
`EXP-<symbol>-<strategy>`: a contract expires once, so a settlement booked again after a restart
is recognized and never doubled.

Pure functions of the account and its contracts; the broker calls them under its lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from tradelab.broker.account import PaperAccount, PaperOrder
from tradelab.market.clock import NS_PER_S
from tradelab.market.instruments import OptionContract
from tradelab.trading.orders import OrderRequest, OrderType, Side

log = logging.getLogger(__name__)

SETTLEMENT_OWNER = "unattributed"  # the strategy of units no fill of the account explains
SETTLEMENT_PREFIX = "EXP-"


def settlement_price(contract: OptionContract, index_price: float) -> float:
    """What one unit of `contract` settles at with the index at `index_price` (2 decimals)."""
    strike = contract.strike
    value = index_price - strike if contract.is_call else strike - index_price
    return round(max(value, 0.0), 2)


def expired_holdings(account: Any, universe: Any, now_ns: int) -> Iterator[OptionContract]:
    """The option contracts the account holds whose expiry has closed by `now_ns`, by symbol."""
    for symbol in sorted(account.positions):
        contract = universe.parse(symbol)
        if not isinstance(contract, OptionContract):
            continue  # a plain instrument never expires
        if contract.expiry_close().timestamp() * NS_PER_S <= now_ns:
            yield contract


def settlement_requests(account: Any, contract: OptionContract) -> list[OrderRequest]:
    """The orders that close the account's position in `contract`: one per strategy holding
    it, in the direction that takes that strategy's units to zero."""
    symbol = contract.symbol
    held_by: dict[str, int] = {}
    for fill in account.fills:
        if fill.symbol == symbol:
            signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
            held_by[fill.strategy] = held_by.get(fill.strategy, 0) + signed
    unexplained = account.positions.get(symbol, 0) - sum(held_by.values())
    if unexplained:
        held_by[SETTLEMENT_OWNER] = held_by.get(SETTLEMENT_OWNER, 0) + unexplained
    requests = []
    for strategy, units in sorted(held_by.items()):
        if units == 0:
            continue
        requests.append(
            OrderRequest(
                f"{SETTLEMENT_PREFIX}{symbol}-{strategy}"[:128],
                symbol,
                Side.SELL if units > 0 else Side.BUY,
                abs(units),
                OrderType.MARKET,
                None,
                strategy,
            )
        )
    return requests


def settlement_reason(contract: OptionContract, index_price: float, price: float) -> str:
    return (
        f"expiry settlement: {contract.symbol} expired {contract.expiry.isoformat()} with "
        f"{contract.underlying} at {index_price:.2f}, settled at intrinsic value {price:.2f}"
    )


def book_settlement(
    account: Any, universe: Any, contract: OptionContract, index_price: float, now_ns: int
) -> list[tuple[Any, Any, str]]:
    """Book the settlement of `contract` in `account`: (order, fill, reason) per strategy."""
    price = settlement_price(contract, index_price)
    reason = settlement_reason(contract, index_price, price)
    booked = []
    for request in settlement_requests(account, contract):
        if request.order_id in account.orders:  # booked before: its units are not held
            continue
        order = PaperOrder(
            request, account.new_broker_order_id(), universe.lot_size(contract), contract, now_ns
        )
        account.add_order(order)
        fill = account.record_fill(order, request.quantity, price, 0.0, now_ns)
        booked.append((order, fill, reason))
    return booked


def settle_expired(
    account: PaperAccount,
    universe: Any,
    quotes: Mapping[str, list[float]],
    index_prices: Mapping[str, float] | None,
    now_ns: int,
) -> list[tuple[PaperOrder, Any, str]]:
    """Book the settlement of every held option expired by `now_ns`, at its index's quote in
    `quotes` (mid), else its price in `index_prices`; a contract with neither waits, logged."""
    booked = []
    for contract in expired_holdings(account, universe, now_ns):
        quote = quotes.get(contract.underlying)
        index = (
            (quote[0] + quote[1]) / 2 if quote else (index_prices or {}).get(contract.underlying)
        )
        if index is None:
            log.warning(
                "%s expired; no %s price to settle it at yet", contract, contract.underlying
            )
            continue
        booked += book_settlement(account, universe, contract, index, now_ns)
    return booked
