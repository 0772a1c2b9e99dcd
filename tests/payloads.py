"""Event payloads the journal and writer-process tests submit."""

from __future__ import annotations


def trade(i: int, *, side: str = "BUY", lot_size: int = 65) -> dict:
    """A `trade.executed` payload for one lot of NIFTY in strategy "t", trade id T<i>."""
    return {
        "position_id": "t:NIFTY",
        "strategy": "t",
        "symbol": "NIFTY",
        "lot_size": lot_size,
        "quantity": lot_size,
        "side": side,
        "price": 100.0 + i,
        "fee": 1.5,
        "trade_id": f"T{i}",
    }
