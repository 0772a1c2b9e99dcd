from datetime import datetime

import pytest
from contracts.local_kernel import LocalKernel

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.errors import OrderRejectedError
from tradelab.market.clock import SimulatedClock
from tradelab.market.instruments import IST
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.orders import OrderRequest, OrderStatus, OrderType, Side

SYM = "NIFTY25NOV24000CE"


def at(hour, minute=0, day=12, month=11):
    return int(datetime(2025, month, day, hour, minute, tzinfo=IST).timestamp()) * 10**9


def paper(start=None, **config):
    clock = SimulatedClock(start or at(10))
    config.setdefault("brokerage_per_fill", 0.0)
    broker = PaperBroker(PaperBrokerConfig(**config), clock=clock)
    updates = []
    broker.add_listener(updates.append)
    return broker, clock, updates


def buy(order_id, qty=75, **kw):
    return OrderRequest(order_id, kw.pop("symbol", SYM), Side.BUY, qty, **kw)


def test_order_beyond_quoted_size_fills_partially_then_completes_on_next_quote():
    broker, _, updates = paper()
    broker.set_quote(SYM, 100.0, 101.0, size=150)
    broker.submit_order(buy("o1", qty=375))
    assert [(u.status, u.filled_quantity) for u in updates] == [
        (OrderStatus.ACCEPTED, 0),
        (OrderStatus.PARTIALLY_FILLED, 150),
    ]
    broker.set_quote(SYM, 100.5, 101.5, size=750)
    assert (updates[-1].status, updates[-1].filled_quantity) == (OrderStatus.FILLED, 375)
    # average = (150 * 101.0 + 225 * 101.5) / 375 = 101.3
    assert updates[-1].average_price == pytest.approx(101.3)


def test_a_touch_showing_part_of_a_lot_more_fills_whole_lots_only():
    broker, _, updates = paper()
    broker.set_quote(SYM, 100.0, 101.0, size=100)  # lot 75: one lot and 25 units shown
    broker.submit_order(buy("o1", qty=150))
    assert (updates[-1].status, updates[-1].filled_quantity) == (OrderStatus.PARTIALLY_FILLED, 75)
    assert all(u.fill is None or u.fill.quantity % 75 == 0 for u in updates)


@pytest.mark.parametrize(("side", "limit"), [(Side.BUY, 101.0), (Side.SELL, 100.0)])
def test_a_limit_order_at_exactly_the_touch_fills_at_its_limit(side, limit):
    broker, _, updates = paper()
    broker.set_quote(SYM, 100.0, 101.0)
    broker.submit_order(OrderRequest("o1", SYM, side, 75, OrderType.LIMIT, limit_price=limit))
    assert (updates[-1].status, updates[-1].filled_quantity) == (OrderStatus.FILLED, 75)
    assert updates[-1].average_price == limit


def test_two_orders_share_the_size_shown_at_the_touch():
    broker, _, _ = paper()
    broker.set_quote(SYM, 100.0, 101.0, size=75)
    broker.submit_order(buy("o1"))
    broker.submit_order(buy("o2"))
    assert [o.order_id for o in broker.open_orders()] == ["o2"]


def test_limit_buy_waits_until_the_ask_crosses_and_fills_at_the_touch():
    broker, _, updates = paper()
    broker.set_quote(SYM, 100.0, 101.0)
    broker.submit_order(buy("o1", order_type=OrderType.LIMIT, limit_price=99.0))
    assert updates[-1].status is OrderStatus.ACCEPTED
    broker.set_quote(SYM, 98.0, 98.5)
    assert updates[-1].status is OrderStatus.FILLED
    assert updates[-1].fill.price == 98.5  # better than the limit


def test_market_order_pays_configured_slippage_and_fees():
    broker, _, updates = paper(slippage_ticks=2, brokerage_per_fill=20.0, charges_rate=0.001)
    broker.set_quote(SYM, 100.0, 101.0)
    broker.submit_order(buy("o1", qty=150))
    fill = updates[-1].fill
    assert fill.price == pytest.approx(101.10)  # ask + 2 ticks of 0.05
    assert fill.fee == pytest.approx(20.0 + 0.001 * 101.10 * 150, abs=0.01)  # rounded to paise
    assert broker.cash == pytest.approx(1_000_000.0 - 101.10 * 150 - fill.fee)


def test_latency_holds_fills_until_the_clock_has_moved():
    broker, clock, updates = paper(latency_ms=500)
    broker.set_quote(SYM, 100.0, 101.0)
    broker.submit_order(buy("o1"))
    broker.set_quote(SYM, 100.0, 101.0)
    assert updates[-1].status is OrderStatus.ACCEPTED
    clock.advance(500_000_000)
    broker.poll()
    assert updates[-1].status is OrderStatus.FILLED


@pytest.mark.parametrize(
    "request_, now, message",
    [
        (buy("o1"), at(15, 45), "market is closed at 2025-11-12 15:45:00 IST"),
        (buy("o1"), at(8, 0), "market is closed"),
        (buy("o1", symbol="NIFTY25N1124000CE"), at(10), "expired on 2025-11-11"),
        (buy("o1", symbol="NIFTY"), at(10), "not a NIFTY option symbol"),
        (buy("o1", qty=75 * 200), at(10), "insufficient margin"),
        (
            buy("o1", order_type=OrderType.LIMIT, limit_price=float("nan")),
            at(10),
            "limit price nan",
        ),
        (buy("o1", order_type=OrderType.LIMIT, limit_price=-5.0), at(10), "must be positive"),
    ],
)
def test_bad_orders_are_rejected_with_the_reason_and_nothing_changes(request_, now, message):
    broker, clock, updates = paper(start=now)
    broker.set_quote(SYM, 100.0, 101.0, size=10**6)
    broker.set_quote("NIFTY25N1124000CE", 100.0, 101.0)
    with pytest.raises(OrderRejectedError, match=message):
        broker.submit_order(request_)
    assert [u.status for u in updates] == [OrderStatus.REJECTED]
    assert message.split()[0] in updates[0].reason
    assert broker.positions() == {} and broker.cash == 1_000_000.0


def test_short_sale_blocks_margin_and_covering_releases_it():
    broker, _, _ = paper(capital=200_000.0, short_margin_rate=0.1)
    broker.set_quote(SYM, 100.0, 101.0, size=10**6)
    # Each short unit blocks 0.1 * 24000 = 2400: 75 units = 180,000 of the 200,000 + premium.
    broker.submit_order(OrderRequest("s1", SYM, Side.SELL, 75))
    with pytest.raises(OrderRejectedError, match="insufficient margin"):
        broker.submit_order(OrderRequest("s2", SYM, Side.SELL, 75))
    broker.submit_order(buy("b1"))
    assert broker.positions() == {}


def test_an_order_that_only_reduces_a_position_passes_with_cash_below_zero():
    # A buy checked at the ask fills higher (latency, a gap): cash ends below zero. Closing the
    # position, or part of it, needs no margin and must never be refused for it.
    broker, _, _ = paper(capital=15_200.0, latency_ms=0)
    broker.set_quote(SYM, 100.0, 101.0, size=10**6)
    broker.submit_order(buy("b1", qty=150))  # 150 x 101 = 15,150 of 15,200
    broker.set_quote(SYM, 90.0, 91.0, size=10**6)
    broker.account.cash -= 100.0  # a fee charged later takes it below zero
    assert broker.cash < 0
    with pytest.raises(OrderRejectedError, match="insufficient margin"):
        broker.submit_order(buy("b2"))  # more exposure: refused
    broker.submit_order(OrderRequest("s1", SYM, Side.SELL, 75))
    broker.submit_order(OrderRequest("s2", SYM, Side.SELL, 75))
    assert broker.positions() == {}


def test_a_sell_the_long_is_already_promised_to_is_an_opening_and_needs_margin():
    # Long 150 with a limit sell of all 150 resting: a market sell of 150 more would open a
    # short when both fill, so it is margin-checked (and refused), reducing or not alone.
    broker, _, _ = paper(capital=15_200.0, latency_ms=0, short_margin_rate=0.1)
    broker.set_quote(SYM, 100.0, 101.0, size=10**6)
    broker.submit_order(buy("b1", qty=150))
    broker.submit_order(
        OrderRequest("s1", SYM, Side.SELL, 150, order_type=OrderType.LIMIT, limit_price=150.0)
    )
    with pytest.raises(OrderRejectedError, match="insufficient margin for SELL 150"):
        broker.submit_order(OrderRequest("s2", SYM, Side.SELL, 150))
    broker.set_quote(SYM, 160.0, 161.0, size=10**6)  # the limit fills: flat, never short
    assert broker.positions() == {}


# -- the desk: broker callbacks become journaled events ------------------------------------


def desk_session(**config):
    broker, clock, _ = paper(brokerage_per_fill=20.0, **config)
    kernel = LocalKernel()
    desk = ExecutionDesk(broker, kernel.submit)
    broker.set_quote(SYM, 100.0, 101.0, size=150)
    return broker, desk, kernel


def test_order_lifecycle_is_journaled_with_critical_trade_and_position_closed():
    broker, desk, k = desk_session()
    oid = desk.place_order(SYM, "BUY", 225)
    broker.set_quote(SYM, 102.0, 103.0, size=150)
    desk.place_order(SYM, "SELL", 225)
    broker.set_quote(SYM, 102.0, 103.0, size=150)
    assert k.topics()[:6] == [
        "order.submitted",
        "order.accepted",
        "order.partially_filled",
        "trade.executed",
        "order.filled",
        "trade.executed",
    ]
    assert k.topics()[-2:] == ["trade.executed", "position.closed"]
    assert all(e.critical for e in k.events if e.topic in ("trade.executed", "position.closed"))
    order = k.store.get(f"trading.orders.{oid}")
    assert (order["status"], order["filled_quantity"], order["broker_order_id"] != "") == (
        "filled",
        225,
        True,
    )
    position = k.store.get(f"trading.positions.manual:{SYM}")
    assert position["status"] == "closed" and position["net_quantity"] == 0
    # Bought 150 @ 101 + 75 @ 103 (avg 101.6667), sold 150 + 75 @ 102: 225 * (102 - 101.6667).
    assert position["realized_pnl"] == pytest.approx(225 * 102 - (150 * 101 + 75 * 103))
    assert position["fees"] == pytest.approx(4 * 20.0)


def test_bad_quantity_becomes_order_rejected_and_leaves_the_book_unchanged():
    broker, desk, k = desk_session()
    desk.place_order(SYM, "BUY", 75)
    book = k.store.get("trading.positions")
    with pytest.raises(
        OrderRejectedError,
        match="quantity 37 is not a multiple of lot size 75 for NIFTY25NOV24000CE",
    ):
        desk.place_order(SYM, "BUY", 37, order_id="bad-1")
    assert k.events[-1].topic == "order.rejected"
    assert k.store.get("trading.orders.bad-1")["status"] == "rejected"
    assert k.store.get("trading.positions") == book
    assert broker.positions() == {SYM: 75}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"symbol": "NIFTY25NOV24000CE", "side": "HOLD", "quantity": 75}, "side 'HOLD'"),
        ({"symbol": "GARBAGE", "side": "BUY", "quantity": 75}, "'GARBAGE' is not a NIFTY option"),
        ({"symbol": SYM, "side": "BUY", "quantity": 0}, "quantity 0"),
        (
            {
                "symbol": SYM,
                "side": "BUY",
                "quantity": 75,
                "order_type": "LIMIT",
                "limit_price": float("nan"),
            },
            "limit price nan",
        ),
        ({"symbol": SYM, "side": "BUY", "quantity": 75, "strategy": "a.b"}, "strategy name 'a.b'"),
    ],
)
def test_desk_rejects_malformed_orders_before_the_broker(kwargs, message):
    broker, desk, k = desk_session()
    kwargs = dict(kwargs)
    with pytest.raises(OrderRejectedError, match=message):
        desk.place_order(kwargs.pop("symbol"), kwargs.pop("side"), kwargs.pop("quantity"), **kwargs)
    assert k.topics() == ["order.rejected"]
    assert broker.open_orders() == [] and broker.positions() == {}


def test_broker_disconnect_and_reconnect_are_journaled_and_held_fills_arrive():
    broker, desk, k = desk_session()
    desk.place_order(SYM, "BUY", 75, order_type="LIMIT", limit_price=95.0)
    broker.disconnect()
    with pytest.raises(OrderRejectedError, match="disconnected"):
        desk.place_order(SYM, "BUY", 75)
    broker.set_quote(SYM, 94.0, 94.5)
    assert "trade.executed" not in k.topics()
    broker.connect()
    assert k.topics()[-3:] == ["broker.reconnected", "order.filled", "trade.executed"]
    assert "broker.disconnected" in k.topics()
    assert k.store.get(f"trading.positions.manual:{SYM}")["net_quantity"] == 75


def test_a_working_order_does_not_fill_on_a_quote_after_the_close():
    """A replay's bars after 15:30 used to fill day orders the broker would no longer take."""
    broker, clock, updates = paper(start=at(15, 0))
    broker.set_quote(SYM, 100.0, 101.0)
    broker.submit_order(buy("o1", order_type=OrderType.LIMIT, limit_price=95.0))
    clock.set(at(16, 0))
    broker.set_quote(SYM, 89.0, 90.0)
    assert updates[-1].status is OrderStatus.ACCEPTED and broker.positions() == {}
    clock.set(at(10, 0, day=13))  # the next morning (a day order the session did not cancel)
    broker.set_quote(SYM, 89.0, 90.0)
    assert updates[-1].status is OrderStatus.FILLED


def test_a_reused_order_id_is_refused_to_its_caller_without_touching_the_live_order():
    """The refusal was reported as a rejection under the id, so the book finished the live
    order holding it (still working at the broker)."""
    from tradelab.errors import InvalidOrderError

    broker, _, updates = paper()
    broker.set_quote(SYM, 100.0, 101.0)
    broker.submit_order(buy("REST-1", order_type=OrderType.LIMIT, limit_price=90.0))
    reported = list(updates)
    with pytest.raises(InvalidOrderError, match="'REST-1' was already used"):
        broker.submit_order(OrderRequest("REST-1", SYM, Side.SELL, 75))
    assert updates == reported
    assert [o.order_id for o in broker.open_orders()] == ["REST-1"]
