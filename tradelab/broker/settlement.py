"""Expiry settlement of NIFTY options in the paper account, as NSE settles them: in cash, at the
intrinsic value against the index's price at the expiry's close.

An option still held when its expiry closes (15:30 IST on its expiry day) is closed by the
exchange, not by an order of ours: a call at max(index - strike, 0), a put at max(strike -
index, 0), so an out-of-the-money option expires worthless (price 0). The exchange settles the
account's net; the paper broker reports it split per strategy, as the book holds the contract
when the caller says how (`held_by`: the Lab passes its book), else as the account's own fills
tag it. Two strategies long and short one contract are each settled though the account nets them
to nothing; the account's units beyond the split (held from outside) settle as SETTLEMENT_OWNER,
the strategy the reconciler books such units under: adopted, they close with it; only flagged,
the book is left short of them, a difference the reconciler reports. The account never keeps an
expired contract. Each part is an order filled at that price with no fee (NSE's STT on an
exercised option is not charged), dated at the expiry's close however late it is booked,
reported like any fill. Its order id is `EXP-<symbol>-<strategy>`: a contract expires once, so a
settlement booked again after a restart is recognized and never doubled.

Pure functions of the account and its contracts; the broker calls them under its lock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from tradelab.broker.account import PaperAccount
from tradelab.broker.paper_order import PaperOrder
from tradelab.errors import InvalidInputError
from tradelab.market.clock import NS_PER_S
from tradelab.market.instruments import OptionContract
from tradelab.trading.orders import OrderRequest, OrderType, Side

log = logging.getLogger(__name__)

# The strategy of units no holder explains: the reconciler's (reconcile/fixes.py BY), which
# books what the broker holds beyond the book.
SETTLEMENT_OWNER = "reconciler"
SETTLEMENT_PREFIX = "EXP-"


def settlement_price(contract: OptionContract, index_price: float) -> float:
    """What one unit of `contract` settles at with the index at `index_price` (2 decimals)."""
    strike = contract.strike
    value = index_price - strike if contract.is_call else strike - index_price
    return round(max(value, 0.0), 2)


def holdings_by_strategy(account: Any) -> dict[str, dict[str, int]]:
    """Units held per symbol and strategy, as the account's fills tag them."""
    return {symbol: dict(by) for symbol, by in account.held_by_strategy.items()}


def settlement_split(
    account: Any, symbol: str, held_by: Mapping[str, int] | None
) -> dict[str, int]:
    """Units to settle per strategy: `held_by`'s, and the account's net beyond their sum
    (SETTLEMENT_OWNER's); empty when nothing is held."""
    # A strategy whose settlement the account booked before holds none of it any more, whatever
    # a book that has not seen that fill yet says (a restart after a crash between the two):
    # counted, its units would be settled again, as the reconciler's, the other way.
    split = {
        strategy: units
        for strategy, units in (held_by or {}).items()
        if units and settlement_order_id(symbol, strategy) not in account.orders
    }
    rest = account.positions.get(symbol, 0) - sum(split.values())
    if rest:
        split[SETTLEMENT_OWNER] = split.get(SETTLEMENT_OWNER, 0) + rest
    # The reconciler's units in the book may be what the rest takes back: no order of 0 units.
    return {strategy: units for strategy, units in split.items() if units}


def expiry_close_ns(contract: Any) -> int:
    """When `contract` stops trading, in ns since the epoch (a plain instrument: never)."""
    return int(contract.expiry_close().timestamp()) * NS_PER_S


def expired(universe: Any, symbol: str, now_ns: int) -> OptionContract | None:
    """`symbol`'s contract if it is an option whose expiry has closed by `now_ns`."""
    try:
        contract = universe.parse(symbol)
    except InvalidInputError:  # not traded here (a book's symbol from another market)
        return None
    if not isinstance(contract, OptionContract):
        return None  # a plain instrument never expires
    return contract if expiry_close_ns(contract) <= now_ns else None


def settlement_order_id(symbol: str, strategy: str) -> str:
    """The id of the order that settles `strategy`'s units of `symbol` (one per expiry)."""
    return f"{SETTLEMENT_PREFIX}{symbol}-{strategy}"[:128]


def settlement_requests(contract: OptionContract, held_by: Mapping[str, int]) -> list[OrderRequest]:
    """The orders that close what each strategy holds of `contract` (`held_by`: units by
    strategy), in the direction that takes its units to zero."""
    symbol = contract.symbol
    requests = []
    for strategy, units in sorted(held_by.items()):  # no zeros: settlement_split leaves none
        requests.append(
            OrderRequest(
                settlement_order_id(symbol, strategy),
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
    account: PaperAccount,
    universe: Any,
    contract: OptionContract,
    held_by: Mapping[str, int],
    index_price: float,
) -> list[tuple[PaperOrder, Any, str]]:
    """Book the settlement of `contract` in `account`, dated at its expiry's close (a restart
    a day later settles it then, but it closed at the expiry): (order, fill, reason) per
    strategy holding it."""
    price = settlement_price(contract, index_price)
    reason = settlement_reason(contract, index_price, price)
    at = expiry_close_ns(contract)
    booked = []
    for request in settlement_requests(contract, held_by):
        if request.order_id in account.orders:  # booked before: its units are not held
            continue
        order = PaperOrder(
            request, account.new_broker_order_id(), universe.lot_size(contract), contract, at
        )
        account.add_order(order)
        fill = account.record_fill(order, request.quantity, price, 0.0, at)
        booked.append((order, fill, reason))
    return booked


def settle_expired(
    account: PaperAccount,
    universe: Any,
    quotes: Mapping[str, list[float]],
    index_prices: Mapping[str, float] | None,
    now_ns: int,
    held_by: Mapping[str, Mapping[str, int]] | None = None,
) -> list[tuple[PaperOrder, Any, str]]:
    """Book the settlement of every option held that expired by `now_ns` (held in the account,
    or by a strategy in `held_by`: symbol -> strategy -> units; None: as the fills tag it), at
    its index's quote in `quotes` (mid), else its price in `index_prices`; a contract with
    neither waits, logged."""
    holders = holdings_by_strategy(account) if held_by is None else held_by
    booked = []
    for symbol in sorted(set(account.positions) | set(holders)):
        split = settlement_split(account, symbol, holders.get(symbol))
        contract = expired(universe, symbol, now_ns) if split else None
        if contract is None:
            continue
        quote = quotes.get(contract.underlying)
        index = (
            (quote[0] + quote[1]) / 2 if quote else (index_prices or {}).get(contract.underlying)
        )
        if index is None:
            log.warning("%s expired; no %s price to settle it at yet", symbol, contract.underlying)
            continue
        booked += book_settlement(account, universe, contract, split, index)
    return booked
