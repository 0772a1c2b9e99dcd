"""Position and P&L arithmetic: pure functions on plain dicts, shared by reducers and the desk.

Quantities are signed units (long > 0, short < 0). Average price is the volume-weighted entry of
the open quantity; closing against it realizes (exit - average) x closed units x direction.
Fees are kept apart from gross P&L: net = realized + unrealized - fees. Thread-free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from math import fsum
from typing import Any


def without_float_noise(value: float, scale: float | None = None) -> float:
    """`value` to 12 significant digits of `scale` (its own by default): a sum's
    836.2500000000005 reads 836.25, a price of any scale keeps its decimals (a coin's 0.0000216,
    EURUSD's 1.0914514), which a fixed number of decimals would not; a difference of two
    amounts (a P&L) rounded at their scale reads 0.0 where it is noise (5.55e-17)."""
    size = abs(value if scale is None else scale)
    if not size or not math.isfinite(size):
        return float(value)
    return round(value, 11 - math.floor(math.log10(size)))


def excess_over(amount: float, limit: float) -> float:
    """How far `amount` is above `limit` (negative: below), at the limit's precision (a limit
    of 0 at one unit's): a 4.15 x 225 notional of 933.7500000000001 is exactly at a 933.75
    limit, not over it, and a flat day's -5.7e-14 is no loss."""
    return without_float_noise(amount - limit, limit or 1.0)


def position_id(strategy: str, symbol: str) -> str:
    """Positions are per strategy and symbol, so P&L is attributed to the strategy that traded."""
    return f"{strategy}:{symbol}"


def empty_position(strategy: str, symbol: str, lot_size: int) -> dict[str, Any]:
    return {
        "position_id": position_id(strategy, symbol),
        "strategy": strategy,
        "symbol": symbol,
        "lot_size": lot_size,
        "net_quantity": 0,
        "lots": 0.0,
        "average_price": 0.0,
        "realized_pnl": 0.0,
        "unrealized_pnl": 0.0,
        "fees": 0.0,
        "mark": None,
        "trades": 0,
        "status": "flat",
    }


def entry_average(net: int, average: float, signed_quantity: int, price: float) -> float:
    """The average entry price after a fill of `signed_quantity` at `price` on `net` units
    held at `average`: adding re-averages, reducing keeps it, crossing through zero opens the
    rest at `price`; 0.0 once flat. The book's rule, and the paper broker's own."""
    new_net = net + signed_quantity
    if new_net == 0:
        return 0.0
    if net == 0 or (net > 0) == (signed_quantity > 0):
        return (abs(net) * average + abs(signed_quantity) * price) / abs(new_net)
    if (new_net > 0) == (net > 0):
        return average
    return price  # reversed: the remainder opened at this fill's price


def apply_fill(
    position: Mapping[str, Any], signed_quantity: int, price: float, fee: float = 0.0
) -> tuple[dict[str, Any], float]:
    """The position after a fill of `signed_quantity` at `price`, and the P&L it realized.

    Adding to a position re-averages the entry; reducing realizes P&L on the closed units and
    keeps the average; crossing through zero closes everything and opens the rest at `price`.
    """
    net = int(position["net_quantity"])
    average = float(position["average_price"])
    realized = 0.0
    if net != 0 and (net > 0) != (signed_quantity > 0):
        closing = min(abs(signed_quantity), abs(net))
        direction = 1 if net > 0 else -1
        realized = closing * (price - average) * direction
    new_net = net + signed_quantity
    new_average = entry_average(net, average, signed_quantity, price)
    mark = position.get("mark")
    updated = dict(position)
    updated["net_quantity"] = new_net
    updated["lots"] = new_net / int(position["lot_size"])
    updated["average_price"] = new_average
    updated["realized_pnl"] = float(position["realized_pnl"]) + realized
    updated["fees"] = float(position["fees"]) + fee
    updated["mark"] = price if mark is None else mark
    updated["unrealized_pnl"] = unrealized(new_net, new_average, updated["mark"])
    updated["trades"] = int(position.get("trades", 0)) + 1
    updated["status"] = "open" if new_net else "flat"
    return updated, realized


def unrealized(net_quantity: int, average_price: float, mark: float | None) -> float:
    if not net_quantity or mark is None:
        return 0.0
    return (mark - average_price) * net_quantity


def remark(position: Mapping[str, Any], mark: float) -> dict[str, Any]:
    """The position valued at a new mark price."""
    updated = dict(position)
    updated["mark"] = mark
    updated["unrealized_pnl"] = unrealized(
        int(position["net_quantity"]), float(position["average_price"]), mark
    )
    return updated


def totals(positions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Book-wide and per-strategy realized, unrealized, fees and net P&L, from scratch.

    The reducers keep these totals by deltas (tradelab.trading.pnl); this is the audit that
    recomputes them. `math.fsum` is exactly rounded, so the result does not depend on the order
    the positions are iterated in (a store restored from a snapshot iterates them in another).
    """
    parts: dict[str, dict[str, list[float]]] = {}
    for pos in positions.values():
        s = parts.setdefault(pos["strategy"], {"realized": [], "unrealized": [], "fees": []})
        s["realized"].append(float(pos["realized_pnl"]))
        s["unrealized"].append(float(pos["unrealized_pnl"]))
        s["fees"].append(float(pos["fees"]))
    by_strategy: dict[str, dict[str, float]] = {}
    for strategy in sorted(parts):
        s = parts[strategy]
        realized, unreal, fees = fsum(s["realized"]), fsum(s["unrealized"]), fsum(s["fees"])
        by_strategy[strategy] = {
            "realized": realized,
            "unrealized": unreal,
            "fees": fees,
            "net": fsum((realized, unreal, -fees)),
        }
    book = {
        name: fsum(x for s in parts.values() for x in s[name])
        for name in ("realized", "unrealized", "fees")
    }
    return {
        **book,
        "net": fsum((book["realized"], book["unrealized"], -book["fees"])),
        "by_strategy": by_strategy,
    }


def with_open(open_ids: Sequence[str] | None, pid: str) -> tuple[str, ...]:
    """The open-position index entry after `pid` opens. Kept sorted, so the index (and the order
    marks re-value positions in) depends only on which positions are open, not on history."""
    ids = tuple(open_ids or ())
    return ids if pid in ids else tuple(sorted((*ids, pid)))


def without_open(open_ids: Sequence[str] | None, pid: str) -> tuple[str, ...]:
    """The open-position index entry after `pid` goes flat."""
    return tuple(i for i in open_ids or () if i != pid)
