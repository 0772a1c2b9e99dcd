"""order records and the execution desk's input checks."""

from __future__ import annotations

import pytest

from tests.risk_session import SYM, Session
from tradelab.errors import InvalidInputError, InvalidOrderError
from tradelab.trading.orders import (
    OrderStatus,
    OrderUpdate,
    Side,
    check_quantity,
    coerce_side,
)


def test_a_partial_fill_reports_what_remains():
    update = OrderUpdate(
        OrderStatus.PARTIALLY_FILLED, "O1", "B1", SYM, Side.SELL, 150, 75, 100.0, 1, "a"
    )
    assert update.to_payload()["remaining_quantity"] == 75  # read by the working index, risk


def test_a_quantity_of_2_to_the_63_is_refused():
    assert check_quantity(2**63 - 1, 1, "X") == 2**63 - 1
    with pytest.raises(InvalidInputError, match="2\\*\\*63"):
        check_quantity(2**63, 1, "X")


def test_a_side_in_lower_case_is_taken():
    assert coerce_side("buy") is Side.BUY
    assert coerce_side("Sell") is Side.SELL


def test_a_market_order_carrying_a_limit_price_is_refused():
    s = Session()
    with pytest.raises(InvalidOrderError, match="carries limit price"):
        s.desk.place_order(SYM, "BUY", 75, limit_price=100.0)
    assert s.broker.positions() == {}


def test_the_desk_takes_a_side_in_lower_case():
    s = Session()
    s.desk.place_order(SYM, "buy", 75)
    assert s.broker.positions()


def test_a_late_report_of_a_fill_already_in_the_book_books_nothing():
    s = Session()
    updates = []
    s.broker.add_listener(lambda update: updates.append(update), lambda *a: None)
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    fill = next(u for u in updates if u.fill is not None)
    trades = len(s.kernel.store.get("trading.trades"))
    s.desk.on_order_update(fill)  # the same fill reported again (adopted by the reconciler)
    assert len(s.kernel.store.get("trading.trades")) == trades
    assert [e.topic for e in s.kernel.events].count("trade.executed") == 1


def test_a_closed_desk_refuses_new_orders():
    from tradelab.errors import LifecycleError

    s = Session()
    assert s.desk.close(timeout=1.0)
    with pytest.raises(LifecycleError, match="stopping"):
        s.desk.place_order(SYM, "BUY", 75)
    assert s.broker.positions() == {}


def test_place_order_waits_until_the_last_event_it_caused_is_durable():
    from tests.contracts.local_kernel import LocalKernel
    from tests.risk_session import OPEN_NS
    from tradelab.broker import PaperBroker, PaperBrokerConfig
    from tradelab.market.clock import SimulatedClock
    from tradelab.trading.execution import ExecutionDesk

    kernel = LocalKernel()
    broker = PaperBroker(PaperBrokerConfig(), clock=SimulatedClock(OPEN_NS))
    broker.set_quote(SYM, 100.0, 101.0, size=10_000)
    calls = []

    def submit(topic, payload, **kw):
        calls.append((topic, kw["wait"]))
        return kernel.submit(topic, payload, **kw)

    ExecutionDesk(broker, submit, store=kernel.store).place_order(SYM, "BUY", 75)
    assert calls[-1] == ("trade.executed", True)  # "returns ... once ... durable"
    assert [wait for _, wait in calls].count(True) == 1


def test_a_close_a_crash_kept_from_the_journal_is_journaled_on_start():
    s = Session()
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    opening = next(e for e in s.kernel.events if e.topic == "trade.executed").payload
    closing = {
        **opening,
        "trade_id": opening["trade_id"] + "X",
        "order_id": "O-close",
        "side": "SELL",
        "fill_seq": opening["fill_seq"] + 1,
    }
    # the closing fill is journaled, then the process dies before its position.closed
    s.kernel.submit("trade.executed", closing, key=opening["position_id"], critical=True)
    assert "position.closed" not in s.kernel.topics()
    assert s.desk.journal_missed_closes() == [opening["position_id"]]
    assert s.kernel.topics("position.closed") == ["position.closed"]


def test_an_order_whose_submission_failed_holds_no_room_in_the_limits():
    from tradelab.errors import JournalError

    s = Session(max_total_notional=10_000.0)  # room for one 75-unit order at ~101
    real = s.desk._submit

    def failing(topic, payload, **kw):
        if topic == "order.submitted":
            raise JournalError("journal writer failed")
        return real(topic, payload, **kw)

    s.desk._submit = failing
    with pytest.raises(JournalError):
        s.desk.place_order(SYM, "BUY", 75)
    s.desk._submit = real
    s.desk.place_order(SYM, "BUY", 75)  # the failed one was never sent: it takes no room
    assert s.broker.positions()


def test_rejected_is_a_terminal_order_status():
    assert OrderStatus.REJECTED.is_terminal


def test_a_limit_price_of_zero_is_refused():
    s = Session()
    with pytest.raises(InvalidOrderError, match="must be positive"):
        s.desk.place_order(SYM, "BUY", 75, order_type="LIMIT", limit_price=0.0)


def test_a_strategy_name_with_a_colon_is_refused():
    # position ids join strategy and symbol with ':' ("a:b" + SYM would read as strategy "a")
    s = Session()
    with pytest.raises(InvalidOrderError, match="strategy name"):
        s.desk.place_order(SYM, "BUY", 75, strategy="a:b")
    assert s.broker.positions() == {}
