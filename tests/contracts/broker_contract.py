"""What every Broker must do. Subclass `BrokerContract` and implement `make_broker` and
`put_quote` (how the adapter's market is driven in tests); pytest then runs every test below
against that adapter. Symbols and times: NIFTY25NOV24000CE (lot 75) on 2025-11-12 10:00 IST."""

from __future__ import annotations

from typing import Any

import pytest

from tradelab.errors import LifecycleError, OrderRejectedError
from tradelab.trading.orders import OrderRequest, OrderStatus, OrderType, Side

SYMBOL = "NIFTY25NOV24000CE"
LOT = 75


class BrokerContract:
    def make_broker(self) -> Any:
        raise NotImplementedError

    def put_quote(self, broker: Any, symbol: str, bid: float, ask: float, size: int) -> None:
        raise NotImplementedError

    @pytest.fixture
    def broker(self):
        broker = self.make_broker()
        self.updates: list = []
        self.connections: list = []
        broker.add_listener(self.updates.append, lambda up, ts: self.connections.append(up))
        self.put_quote(broker, SYMBOL, 100.0, 100.5, 100 * LOT)
        return broker

    @staticmethod
    def order(order_id: str, side: Side = Side.BUY, qty: int = LOT, **kw) -> OrderRequest:
        return OrderRequest(order_id, kw.pop("symbol", SYMBOL), side, qty, **kw)

    def test_quantity_not_a_multiple_of_the_lot_is_rejected_naming_it(self, broker):
        with pytest.raises(
            OrderRejectedError,
            match=f"quantity 37 is not a multiple of lot size {LOT} for {SYMBOL}",
        ):
            broker.submit_order(self.order("o1", qty=37))
        assert [u.status for u in self.updates] == [OrderStatus.REJECTED]
        assert broker.positions() == {}

    @pytest.mark.parametrize("qty", [0, -75])
    def test_non_positive_quantity_is_rejected(self, broker, qty):
        with pytest.raises(OrderRejectedError, match="must be positive"):
            broker.submit_order(self.order("o1", qty=qty))
        assert broker.positions() == {}

    def test_unknown_symbol_is_rejected(self, broker):
        with pytest.raises(OrderRejectedError, match="NIFTYXYZ"):
            broker.submit_order(self.order("o1", symbol="NIFTYXYZ"))

    def test_market_order_reports_accepted_then_filled_and_shows_in_positions_and_fills(
        self, broker
    ):
        broker.submit_order(self.order("o1", qty=2 * LOT))
        assert [u.status for u in self.updates] == [OrderStatus.ACCEPTED, OrderStatus.FILLED]
        assert broker.positions() == {SYMBOL: 2 * LOT}
        fills = broker.fills_since(0)
        assert sum(f.quantity for f in fills) == 2 * LOT
        assert all(f.order_id == "o1" and f.price > 0 for f in fills)
        assert broker.fills_since(fills[-1].fill_seq) == []
        assert broker.fills_since(ts=fills[0].ts) == fills

    def test_working_limit_order_is_open_and_cancellable_once(self, broker):
        broker.submit_order(self.order("o1", order_type=OrderType.LIMIT, limit_price=90.0))
        assert [u.order_id for u in broker.open_orders()] == ["o1"]
        cancelled = broker.cancel_order("o1")
        assert cancelled.status is OrderStatus.CANCELLED
        assert broker.open_orders() == []
        with pytest.raises(OrderRejectedError, match="already cancelled"):
            broker.cancel_order("o1")

    def test_orders_while_disconnected_are_rejected_and_work_again_after_reconnect(self, broker):
        broker.disconnect()
        assert not broker.is_connected
        with pytest.raises(OrderRejectedError, match="disconnected"):
            broker.submit_order(self.order("o1"))
        with pytest.raises(LifecycleError):
            broker.fills_since(0)
        broker.connect()
        assert broker.is_connected and self.connections == [False, True]
        broker.submit_order(self.order("o2"))
        assert broker.positions() == {SYMBOL: LOT}

    def test_fill_during_a_disconnect_is_reported_after_reconnect(self, broker):
        broker.submit_order(self.order("o1", order_type=OrderType.LIMIT, limit_price=95.0))
        broker.disconnect()
        self.put_quote(broker, SYMBOL, 94.0, 94.5, 100 * LOT)
        assert OrderStatus.FILLED not in [u.status for u in self.updates]
        broker.connect()
        assert self.updates[-1].status is OrderStatus.FILLED
        assert [f.order_id for f in broker.fills_since(0)] == ["o1"]
