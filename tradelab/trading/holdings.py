"""What a strategy holds and has working in a symbol, read from the store: the risk gate's
exit checks and a halt's cancels (which working orders do not reduce a position) share them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tradelab.trading.book import position_id


def working_orders(
    store: Any, strategy: str, symbol: str, side: str | None = None
) -> dict[str, dict[str, Any]]:
    """The working orders of `strategy` in `symbol` (only `side`'s if given), by order id."""
    return {
        order_id: order
        for order_id, order in (store.get("trading.working", None) or {}).items()
        if order.get("strategy") == strategy
        and order["symbol"] == symbol
        and (side is None or order["side"] == side)
    }


def held_units(store: Any, strategy: str, symbol: str) -> int:
    """The net units `strategy` holds in `symbol`, as the store has them (0: none)."""
    pid = position_id(strategy, symbol)
    return (store.get(f"trading.positions.{pid}", None) or {}).get("net_quantity", 0)


def orders_not_reducing(
    working: Mapping[str, Mapping[str, Any]], held: Callable[[str, str], int]
) -> list[str]:
    """Of `working` orders (id -> record, in the order they were placed), those that do not
    reduce their strategy's position (`held(strategy, symbol)`): an opening order, and the
    later exits once earlier ones already cover the position."""
    blocked = []
    exit_room: dict[str, int] = {}  # per position: exit quantity not yet covered
    for order_id, order in working.items():
        units = held(order.get("strategy"), order["symbol"])
        pid = position_id(order.get("strategy"), order["symbol"])
        room = exit_room.setdefault(pid, abs(units))
        quantity = order.get("remaining_quantity") or 0
        exits = units != 0 and order["side"] == ("SELL" if units > 0 else "BUY")
        if exits and quantity <= room:
            exit_room[pid] = room - quantity
        else:
            blocked.append(order_id)
    return blocked


def flatten_closes_that_fit(
    working: Mapping[str, Mapping[str, Any]], held: Callable[[str, str], int]
) -> list[str]:
    """Of `working` orders (in the order they were placed), the flatten's closes (`exit_only`)
    that still only reduce their position, together no more than it holds: left to fill by a
    later flatten and by a halt. One that no longer fits (the strategy sold meanwhile, the
    position turned) is not: kept, it took the position past zero."""
    closes = {order_id: order for order_id, order in working.items() if order.get("exit_only")}
    blocked = set(orders_not_reducing(closes, held))
    return [order_id for order_id in closes if order_id not in blocked]
