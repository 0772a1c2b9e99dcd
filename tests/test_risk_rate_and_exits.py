"""The order-rate window's edge, exits counted toward the rate, and a
flatten's room beside a resting limit exit in the store."""

from __future__ import annotations

from tests.risk_session import PUT, SYM, Session


def test_an_order_sent_exactly_a_minute_ago_has_left_the_rate_window():
    s = Session(max_orders_per_minute=1)
    s.desk.place_order(SYM, "BUY", 75)
    s.clock.advance(60 * 10**9)  # exactly one minute later: the first order is out of it
    s.desk.place_order(SYM, "BUY", 75)


def test_an_exit_counts_toward_the_order_rate_though_it_is_never_refused():
    # RiskGate: "Send times of the last minute's orders (exits too: counted, never refused)"
    s = Session(max_orders_per_minute=2)
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    s.desk.place_order(SYM, "SELL", 75, strategy="a")  # an exit: passes, and counts
    assert s.denied(PUT, "BUY", 75, strategy="a").check == "max_orders_per_minute"


def test_a_resting_limit_exit_in_the_book_leaves_the_flattens_room_whole():
    s = Session()
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    s.desk.place_order(SYM, "SELL", 75, strategy="a", order_type="LIMIT", limit_price=99_999.0)
    assert len(s.kernel.store.get("trading.working")) == 1  # resting, in the store
    assert s.gate.exit_room("a", SYM) == 75  # a resting limit closes nothing
    s.desk.flatten()
    assert s.broker.positions() == {}
