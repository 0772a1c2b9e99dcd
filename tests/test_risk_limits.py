"""Risk's pre-trade limits (size, positions, notional, order rate) and the exits they exempt."""

import threading

import pytest

from tests.risk_session import PUT, SYM, Session
from tradelab.errors import OrderDeniedError
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.orders import OrderRequest, Side
from tradelab.trading.risk import RiskGate


def test_max_order_quantity_denies_a_larger_order():
    s = Session(max_order_quantity=150)
    s.desk.place_order(SYM, "BUY", 150)
    err = s.denied(SYM, "BUY", 225)
    assert err.check == "max_order_quantity" and "quantity 225" in str(err)


def test_max_open_positions_denies_a_new_position_but_not_adding_to_one():
    s = Session(max_open_positions=1)
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    s.desk.place_order(SYM, "BUY", 75, strategy="a")  # adds to the open one
    err = s.denied(PUT, "BUY", 75, strategy="a")
    assert err.check == "max_open_positions" and "1 positions are open" in str(err)


@pytest.mark.parametrize(
    ("limits", "check"),
    [
        ({"max_open_positions": 1}, "max_open_positions"),
        ({"max_total_notional": 10_000.0}, "max_total_notional"),
    ],
)
def test_book_wide_limits_count_an_order_checked_on_another_thread_before_it_is_applied(
    limits, check
):
    # Two orders on different strategies and symbols take different check locks: the second
    # is checked while the first has passed but its submission is not in the store yet.
    s = Session(**limits)
    results = {}
    hand_over = s.desk._hand_over
    inside, go_on = threading.Event(), threading.Event()

    def slow_hand_over():
        if threading.current_thread().name == "first":
            inside.set()
            go_on.wait(10)
        hand_over()

    s.desk._hand_over = slow_hand_over

    def place(symbol, strategy):
        try:
            s.desk.place_order(symbol, "BUY", 75, strategy=strategy)
            results[strategy] = "ok"
        except OrderDeniedError as exc:
            results[strategy] = exc.check

    first = threading.Thread(target=place, args=(SYM, "a"), name="first")
    first.start()
    assert inside.wait(10)
    place(PUT, "b")  # checked while a's order is in flight
    go_on.set()
    first.join(10)
    assert results == {"a": "ok", "b": check}
    assert len(s.kernel.store.get("trading.open_positions")) == 1
    assert s.gate._in_flight == {}


def test_max_order_notional_values_a_market_order_at_the_mark():
    s = Session(max_order_notional=10_000.0)
    s.desk.place_order(SYM, "BUY", 75)  # 75 x 100.5 = 7,537.50
    err = s.denied(SYM, "BUY", 150)
    assert err.check == "max_order_notional" and "15,075.00" in str(err)


def test_max_total_notional_counts_positions_and_working_orders():
    s = Session(max_total_notional=20_000.0)
    s.desk.place_order(SYM, "BUY", 75)  # position 75 at the symbol's mark, 100.5: 7,537.50
    s.desk.place_order(PUT, "BUY", 75, order_type="LIMIT", limit_price=90.0)  # working 6,750
    err = s.denied(PUT, "BUY", 75, order_type="LIMIT", limit_price=90.0)  # + 6,750
    assert err.check == "max_total_notional" and "21,037.50" in str(err)


def test_a_new_position_is_valued_at_its_symbols_mark_from_the_fill_on():
    """At its own fill price (the ask), the spread paid was invisible to the daily loss limit
    until the symbol's next mark."""
    s = Session()
    s.desk.place_order(SYM, "BUY", 75)  # filled at the ask, 101.0; the mark is 100.5
    position = s.kernel.store.get(f"trading.positions.manual:{SYM}")
    assert position["mark"] == 100.5
    assert position["unrealized_pnl"] == -37.5


def test_max_orders_per_minute_denies_the_next_order_until_the_minute_passes():
    s = Session(max_orders_per_minute=2)
    s.desk.place_order(SYM, "BUY", 75)
    s.clock.advance(30 * 10**9)
    s.desk.place_order(SYM, "BUY", 75)
    err = s.denied(SYM, "BUY", 75)
    assert err.check == "max_orders_per_minute"
    s.clock.advance(31 * 10**9)  # the first order left the window
    s.desk.place_order(SYM, "BUY", 75)


def test_max_orders_per_minute_counts_the_orders_sent_before_a_restart():
    s = Session(max_orders_per_minute=2)
    s.desk.place_order(SYM, "BUY", 75)
    s.clock.advance(30 * 10**9)
    s.desk.place_order(SYM, "BUY", 75)
    # The restarted session: a new gate and desk over the same store, the same market minute.
    s.broker._order_listeners.clear()
    s.broker._connection_listeners.clear()
    s.gate = RiskGate(s.config, s.kernel.store, s.kernel.submit, clock=s.clock)
    s.desk = ExecutionDesk(s.broker, s.kernel.submit, risk=s.gate)
    assert s.denied(SYM, "BUY", 75).check == "max_orders_per_minute"
    s.clock.advance(31 * 10**9)  # the first order left the window
    s.desk.place_order(SYM, "BUY", 75)


def test_order_without_a_price_is_denied_when_notional_is_limited():
    s = Session(max_order_notional=1e9)
    s.broker.set_quote("NIFTY25NOV24100CE", 50.0, 51.0)
    err = s.denied("NIFTY25NOV24100CE", "BUY", 75)
    assert err.check == "no_price"


def _sell_exit(s, start, outcomes):
    start.wait()
    try:
        s.desk.place_order(SYM, "SELL", 75, strategy="a", order_type="LIMIT", limit_price=200.0)
        outcomes.append("placed")
    except OrderDeniedError:
        outcomes.append("denied")


def test_two_exits_placed_at_once_cannot_both_pass_and_reverse_the_position():
    # An exit is judged against the working orders in the store: the check and the
    # submission it allows are one step, or both threads see no working exit and both pass.
    import sys
    import threading

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows
    try:
        for _ in range(60):
            s = Session()
            s.desk.place_order(SYM, "BUY", 75, strategy="a")
            s.gate.halt(by="ops", reason="news", mode="reducing")
            start, outcomes = threading.Barrier(2), []
            threads = [
                threading.Thread(target=_sell_exit, args=(s, start, outcomes)) for _ in range(2)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(outcomes) == ["denied", "placed"]
    finally:
        sys.setswitchinterval(interval)


def test_an_exit_is_exempt_from_the_size_notional_and_rate_limits():
    s = Session(max_order_quantity=75, max_order_notional=8_000.0, max_orders_per_minute=3)
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    s.desk.place_order(PUT, "SELL", 75, strategy="a")
    assert s.denied(PUT, "SELL", 75, strategy="a").check == "max_orders_per_minute"
    s.mark(SYM, 140.0)  # 150 x 140 is over every limit above, and the minute is used up
    s.broker.set_quote(SYM, 139.5, 140.5)
    s.desk.place_order(SYM, "SELL", 150, strategy="a")
    s.desk.place_order(PUT, "BUY", 75, strategy="a")
    assert s.broker.positions() == {}


def test_closing_a_position_whose_mark_rose_passes_max_total_notional():
    s = Session(max_total_notional=20_000.0)
    s.desk.place_order(SYM, "BUY", 150)  # 150 x 101 = 15,150
    s.mark(SYM, 140.0)  # now 21,000: over the limit, so only exits may go
    s.broker.set_quote(SYM, 139.5, 140.5)
    assert s.denied(SYM, "BUY", 75).check == "max_total_notional"
    s.desk.place_order(SYM, "SELL", 75)
    s.desk.flatten()
    assert s.broker.positions() == {}


def test_an_order_that_goes_through_zero_is_not_an_exit_and_meets_the_limits():
    s = Session(max_order_quantity=150)
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    assert s.denied(SYM, "SELL", 225, strategy="a").check == "max_order_quantity"
    # Another strategy's order in the same symbol does not reduce a's position.
    assert s.denied(SYM, "SELL", 225, strategy="b").check == "max_order_quantity"


def test_max_open_positions_counts_a_working_opening_order_as_a_position():
    s = Session(max_open_positions=1)
    s.desk.place_order(SYM, "BUY", 75, strategy="a", order_type="LIMIT", limit_price=90.0)
    s.desk.place_order(SYM, "BUY", 75, strategy="a", order_type="LIMIT", limit_price=89.0)
    err = s.denied(PUT, "BUY", 75, strategy="a", order_type="LIMIT", limit_price=90.0)
    assert err.check == "max_open_positions"
    assert "0 positions are open, 1 more would open from working orders" in str(err)


def test_a_market_order_is_valued_at_the_touch_it_fills_at_when_the_mark_has_one():
    """At the mid, a buy at the limit filled for half a spread more premium than it allows."""
    s = Session(max_order_notional=75 * 100.5)
    quote = {"symbol": SYM, "price": 100.5, "bid": 100.0, "ask": 101.0}
    s.kernel.submit("mark.updated", quote, key=SYM)
    err = s.denied(SYM, "BUY", 75)  # 75 x 101.00 = 7,575.00 > 7,537.50
    assert err.check == "max_order_notional" and "7,575.00" in str(err)
    s.desk.place_order(SYM, "SELL", 75)  # 75 x 100.00: within it


def test_exits_checked_at_once_count_each_other_before_the_store_has_either():
    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    exit_order = OrderRequest(order_id="X1", symbol=SYM, side=Side.SELL, quantity=150, strategy="a")
    assert s.gate.check(exit_order, exit_only=True) is None  # on its way, not in the store
    assert s.gate.exit_room("a", SYM) == 0
    second = OrderRequest(order_id="X2", symbol=SYM, side=Side.SELL, quantity=150, strategy="a")
    denial = s.gate.check(second, exit_only=True)
    assert denial is not None and denial.check == "exit_only"
    s.gate.settled("X1")  # never submitted: the room is back
    assert s.gate.exit_room("a", SYM) == 150


def _quoted(s: Session, bid: float, ask: float) -> None:
    s.broker.set_quote(SYM, bid, ask)
    s.kernel.submit(
        "mark.updated", {"symbol": SYM, "price": (bid + ask) / 2, "bid": bid, "ask": ask}, key=SYM
    )


@pytest.mark.parametrize("limit", ["max_order_notional", "max_total_notional"])
def test_an_order_exactly_at_a_notional_limit_passes_whatever_its_float_product(limit):
    # 225 x 4.15 is 933.7500000000001 in floats: at the limit, not over it ("933.75 exceeds
    # 933.75" was the denial); one paisa more is over.
    s = Session(**{limit: 933.75})
    _quoted(s, 4.10, 4.15)
    s.desk.place_order(SYM, "BUY", 225)
    s = Session(**{limit: 933.74})
    _quoted(s, 4.10, 4.15)
    assert s.denied(SYM, "BUY", 225).check == limit


def test_a_daily_loss_of_exactly_the_limit_breaches_whatever_its_float_sum():
    # Bought 75 at 90.00 (fee 20), marked at 87.15: a loss of 233.75, summed in floats as
    # 233.74999999999957. "At least the limit" breaches; a paisa less does not.
    for limit, breached in ((233.75, True), (233.76, False)):
        s = Session(daily_loss_limit=limit)
        s.desk.reset_daily_pnl("2025-11-12")
        s.broker.set_quote(SYM, 89.95, 90.00)
        s.mark(SYM, 89.975)
        s.desk.place_order(SYM, "BUY", 75)
        s.mark(SYM, 87.15)
        assert s.kernel.store.get("pnl.daily.net") != -233.75  # the noise this is about
        assert s.monitor.check() is breached, limit


def test_a_loss_limit_of_zero_is_not_breached_by_a_flat_days_float_noise():
    # Back at its entry price after marks on both sides, the position's P&L kept by deltas
    # sums to -5.7e-14, not 0: "any loss" halted a flat day, and journaled the noise.
    s = Session(daily_loss_limit=0.0)
    s.desk.reset_daily_pnl("2025-11-12")
    s.kernel.submit(
        "trade.executed",
        {
            "trade_id": "F1",
            "order_id": "o1",
            "position_id": f"s1:{SYM}",
            "strategy": "s1",
            "symbol": SYM,
            "side": "BUY",
            "quantity": 75,
            "price": 24.35,
            "fee": 0.0,
            "lot_size": 75,
        },
        key=f"s1:{SYM}",
    )
    for price in (24.35, 21.35, 28.45, 27.65, 24.35):
        s.mark(SYM, price)
    assert s.kernel.store.get("pnl.daily.net") != 0.0  # the noise this is about
    assert s.monitor.check() is False
    s.mark(SYM, 24.30)  # a real loss, however small, breaches a limit of 0
    assert s.monitor.check() is True
    [breach] = [e for e in s.kernel.events if e.topic == "risk.daily_loss_breached"]
    assert breach.payload["loss"] == 3.75 and breach.payload["daily_pnl"] == -3.75
