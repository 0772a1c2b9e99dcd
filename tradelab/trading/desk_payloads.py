"""What the execution desk journals about orders it refuses and reports it takes from a broker:
payloads and checks, pure functions of their inputs."""

from __future__ import annotations

from typing import Any

from tradelab.state.paths import check_path_level, is_path_level
from tradelab.trading.orders import OrderUpdate


def refused_payload(order_id, symbol, side, quantity, strategy, reason) -> dict[str, Any]:
    """The payload of an order refused before it was sent: only values that encode anywhere."""
    return {
        "order_id": order_id,
        "symbol": symbol,
        # Only text that encodes anywhere: the refused value is named in reason.
        "side": str(side) if str(side).isascii() else ascii(side),
        "quantity": quantity if isinstance(quantity, int) and abs(quantity) < 2**63 else None,
        "strategy": strategy if is_path_level(strategy) else "manual",
        "reason": reason,
    }


def check_update_ids(update: OrderUpdate) -> None:
    """Broker ids become state path levels: refuse a report that cannot name one."""
    check_path_level(update.order_id, "broker update order id")
    check_path_level(update.symbol, "broker update symbol")
    check_path_level(update.strategy, "broker update strategy name")
    fill = update.fill
    if fill is not None:
        check_path_level(fill.trade_id, "broker fill trade id")
        check_path_level(fill.symbol, "broker fill symbol")
        check_path_level(fill.strategy, "broker fill strategy name")
