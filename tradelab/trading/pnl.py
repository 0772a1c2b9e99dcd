"""Book, per-strategy and daily P&L totals kept current by deltas: O(positions touched) per event.

A fill or a mark reports what it changed per position as `PnlDelta`s; `pnl_changes` folds them
into the stored totals and returns only the paths whose value changed. The same float operations
run in the same (event) order live and on every replay, never over a dict's iteration order, so
recovered totals equal the live ones bit for bit. Pure functions on plain data; thread-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

Change = tuple[str, Any]
_NO_STRATEGY = {"realized": 0.0, "unrealized": 0.0, "fees": 0.0, "net": 0.0}
_NO_DAY = {
    "session_date": None,
    "realized": 0.0,
    "fees": 0.0,
    "unrealized_at_open": 0.0,
    "net": 0.0,
}


class PnlDelta(NamedTuple):
    """How one event moved one position's P&L (strategy it belongs to; amounts in rupees)."""

    strategy: str
    realized: float = 0.0
    unrealized: float = 0.0
    fees: float = 0.0


def pnl_changes(
    pnl: Mapping[str, Any] | None,
    deltas: Iterable[PnlDelta],
    *,
    flat_strategies: Iterable[str] = (),
    book_flat: bool = False,
) -> list[Change]:
    """The `pnl.*` writes after `deltas`, given the current `pnl` subtree (None: nothing yet).

    A strategy in `flat_strategies` (or the whole book when `book_flat`) holds no open position
    any more, so its unrealized P&L is set to exactly 0.0 rather than left to the residue of
    adding and subtracting deltas.
    """
    pnl = pnl or {}
    realized = pnl.get("realized", 0.0)
    unrealized = pnl.get("unrealized", 0.0)
    fees = pnl.get("fees", 0.0)
    stored_strategies = pnl.get("by_strategy") or {}
    strategies: dict[str, dict[str, float]] = {}
    day_realized = day_fees = 0.0
    for strategy, r, u, f in deltas:
        totals = strategies.get(strategy)
        if totals is None:
            totals = strategies[strategy] = dict(stored_strategies.get(strategy) or _NO_STRATEGY)
        if r:
            totals["realized"] += r
            realized += r
            day_realized += r
        if u:
            totals["unrealized"] += u
            unrealized += u
        if f:
            totals["fees"] += f
            fees += f
            day_fees += f
    for strategy in flat_strategies:
        strategies.setdefault(strategy, dict(stored_strategies.get(strategy) or _NO_STRATEGY))[
            "unrealized"
        ] = 0.0
    if book_flat:
        unrealized = 0.0

    return _written_totals(
        pnl, realized, unrealized, fees, strategies, stored_strategies, day_realized, day_fees
    )


def unrealized_pnl_changes(
    pnl: Mapping[str, Any] | None, moves: list[tuple[str, float]]
) -> list[Change]:
    """`pnl_changes` for a mark, which moves only unrealized P&L: `moves` are (strategy,
    amount) in event order, each nonzero. The same float operations in the same order as
    `pnl_changes` on `PnlDelta(strategy, 0.0, amount, 0.0)`s (the totals equal bit for bit),
    without its branches for realized P&L, fees and flat strategies: a mark runs every bar."""
    pnl = pnl or {}
    unrealized = pnl.get("unrealized", 0.0)
    stored_strategies = pnl.get("by_strategy") or {}
    strategies: dict[str, dict[str, float]] = {}
    for strategy, amount in moves:
        totals = strategies.get(strategy)
        if totals is None:
            totals = strategies[strategy] = dict(stored_strategies.get(strategy) or _NO_STRATEGY)
        totals["unrealized"] += amount
        unrealized += amount
    realized, fees = pnl.get("realized", 0.0), pnl.get("fees", 0.0)
    return _written_totals(pnl, realized, unrealized, fees, strategies, stored_strategies)


def _written_totals(
    pnl: Mapping[str, Any],
    realized: float,
    unrealized: float,
    fees: float,
    strategies: dict[str, dict[str, float]],
    stored_strategies: Mapping[str, Any],
    day_realized: float = 0.0,
    day_fees: float = 0.0,
) -> list[Change]:
    """The `pnl.*` writes for the new totals, each only when it moved or was never written (a
    new book); `strategies` are the per-strategy totals the deltas touched."""
    changes: list[Change] = []
    if realized != pnl.get("realized", 0.0) or "realized" not in pnl:
        changes.append(("pnl.realized", realized))
    if unrealized != pnl.get("unrealized", 0.0) or "unrealized" not in pnl:
        changes.append(("pnl.unrealized", unrealized))
    if fees != pnl.get("fees", 0.0) or "fees" not in pnl:
        changes.append(("pnl.fees", fees))
    net = realized + unrealized - fees
    if net != pnl.get("net"):
        changes.append(("pnl.net", net))
    for strategy, totals in strategies.items():
        totals["net"] = totals["realized"] + totals["unrealized"] - totals["fees"]
        if totals != stored_strategies.get(strategy):
            changes.append((f"pnl.by_strategy.{strategy}", totals))
    stored_day = pnl.get("daily")
    day = dict(stored_day or _NO_DAY)
    if day_realized:
        day["realized"] += day_realized
    if day_fees:
        day["fees"] += day_fees
    # Daily P&L is the change in marked-to-market value since the session reset:
    # today's realized + (unrealized now - unrealized at the reset) - today's fees.
    day["net"] = day["realized"] + unrealized - day["unrealized_at_open"] - day["fees"]
    if day != stored_day:
        changes.append(("pnl.daily", day))
    return changes
