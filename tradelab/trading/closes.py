"""`position.closed`: when a fill left a position flat, and the closes a crash left unjournaled.

The desk (and the reconciler, for its adjusting trades) journals `position.closed` just after the
`trade.executed` that left a position flat, as a second critical event; a crash between the two
leaves the position 'flat' instead of 'closed' until `unclosed_positions` finds it on the next
start. Pure reads of the store.
"""

from __future__ import annotations

from typing import Any


def position_closed_payload(store: Any, trade_id: str) -> dict[str, Any] | None:
    """The `position.closed` payload of a trade the store has applied, if it left its position
    flat (else None): the desk's fills and the reconciler's adjusting trades alike."""
    trade = store.get(f"trading.trades.{trade_id}", None)
    if trade is None or trade["position_after"] != 0:
        return None
    return {
        "position_id": trade["position_id"],
        "symbol": trade["symbol"],
        "strategy": trade["strategy"],
        "trade_id": trade_id,
        "realized_pnl": trade["position_realized_pnl"],
        "fees": trade["position_fees"],
    }


def unclosed_positions(store: Any) -> list[dict[str, Any]]:
    """The `position.closed` payloads of positions a fill left flat, never marked closed."""
    positions = store.get("trading.positions", None) or {}
    missed = []
    for position in positions.values():
        trade_id = position.get("last_trade_id")
        if position.get("status") == "flat" and not position.get("net_quantity") and trade_id:
            closed = position_closed_payload(store, trade_id)
            if closed is not None:
                missed.append(closed)
    return missed
