"""What every Broker must do. Subclass `BrokerContract` and implement `make_broker` and
`put_quote` (how the adapter's market is driven in tests), and `restart_broker` (a new instance
on the same account, as after a process restart); pytest then runs every test below against
that adapter. Symbols and times: NIFTY25NOV24000CE (lot 75) on 2025-11-12 10:00 IST."""

from __future__ import annotations

from typing import Any

import pytest

from tradelab.broker import BrokerUnavailableError
from tradelab.errors import LifecycleError, OrderRejectedError
from tradelab.trading.orders import OrderRequest, OrderStatus, OrderType, Side

SYMBOL = "NIFTY25NOV24000CE"
LOT = 75


class BrokerContract:
    def make_broker(self) -> Any:
        raise NotImplementedError

    def put_quote(self, broker: Any, symbol: str, bid: float, ask: float, size: int) -> None:
        raise NotImplementedError

    def restart_broker(self, broker: Any) -> Any:
        """Stop `broker` and return a new instance on the same account."""
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

    def test_average_price_is_the_entry_of_what_is_held_and_kept_when_reducing(self, broker):
        broker.submit_order(self.order("o1"))
        self.put_quote(broker, SYMBOL, 110.0, 110.5, 100 * LOT)
        broker.submit_order(self.order("o2"))
        bought = broker.fills_since(0)
        entry = sum(f.price * f.quantity for f in bought) / (2 * LOT)
        assert broker.average_prices() == {SYMBOL: pytest.approx(entry)}
        broker.submit_order(self.order("o3", Side.SELL))  # reducing keeps the entry
        assert broker.average_prices() == {SYMBOL: pytest.approx(entry)}
        broker.submit_order(self.order("o4", Side.SELL, 2 * LOT))  # through zero: a new entry
        assert broker.positions() == {SYMBOL: -LOT}
        assert broker.average_prices() == {SYMBOL: broker.fills_since(0)[-1].price}
        broker.submit_order(self.order("o5"))
        assert broker.average_prices() == {}  # flat: nothing held, no cost

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

    # -- report fills since a point --------------------------------------------------------
    def test_fills_since_a_point_are_exactly_the_later_fills_in_order(self, broker):
        for i in range(4):
            broker.submit_order(self.order(f"o{i}"))
        fills = broker.fills_since(0)
        seqs = [f.fill_seq for f in fills]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) == 4
        assert len({f.trade_id for f in fills}) == 4
        for k, fill in enumerate(fills):
            assert broker.fills_since(fill.fill_seq) == fills[k + 1 :]
        assert broker.fills_since(ts=fills[2].ts) == [f for f in fills if f.ts >= fills[2].ts]

    def test_order_lookup_reports_the_latest_state_of_any_order(self, broker):
        broker.submit_order(self.order("o1"))
        broker.submit_order(self.order("o2", order_type=OrderType.LIMIT, limit_price=90.0))
        broker.cancel_order("o2")
        assert broker.order("o1").status is OrderStatus.FILLED
        assert broker.order("o1").filled_quantity == LOT
        assert broker.order("o2").status is OrderStatus.CANCELLED
        assert broker.order("nope") is None

    # -- survive a disconnect --------------------------------------------------------------
    def test_reads_while_disconnected_raise_unavailable_and_state_is_intact_after(self, broker):
        broker.submit_order(self.order("o1"))
        broker.submit_order(self.order("o2", order_type=OrderType.LIMIT, limit_price=90.0))
        before = (broker.positions(), broker.open_orders(), broker.fills_since(0))
        broker.disconnect()
        for read in (
            broker.positions,
            broker.average_prices,
            broker.open_orders,
            lambda: broker.fills_since(0),
            lambda: broker.order("o1"),
        ):
            with pytest.raises(BrokerUnavailableError, match="disconnected"):
                read()
        broker.connect()
        assert (broker.positions(), broker.open_orders(), broker.fills_since(0)) == before

    # -- remember its account across a restart ---------------------------------------------
    def test_restarted_broker_remembers_positions_orders_and_fills(self, broker):
        broker.submit_order(self.order("o1", qty=2 * LOT))
        broker.submit_order(self.order("o2", order_type=OrderType.LIMIT, limit_price=90.0))
        positions, fills = broker.positions(), broker.fills_since(0)
        average_prices = broker.average_prices()
        open_ids = [u.order_id for u in broker.open_orders()]
        again = self.restart_broker(broker)
        assert again.account_id == broker.account_id
        assert again.positions() == positions
        assert again.average_prices() == average_prices
        assert again.fills_since(0) == fills
        assert [u.order_id for u in again.open_orders()] == open_ids
        assert again.order("o1").status is OrderStatus.FILLED

    def test_fill_ids_after_a_restart_continue_and_never_repeat(self, broker):
        broker.submit_order(self.order("o1"))
        again = self.restart_broker(broker)
        self.put_quote(again, SYMBOL, 100.0, 100.5, 100 * LOT)
        again.submit_order(self.order("o2"))
        fills = again.fills_since(0)
        assert [f.fill_seq for f in fills] == [1, 2]
        assert len({f.trade_id for f in fills}) == 2
        with pytest.raises(OrderRejectedError, match="already used"):
            again.submit_order(self.order("o1"))
