"""Reconciling orders refused, unknown, in flight or finished; adjusting trades; health, backoff."""

from __future__ import annotations

import pytest

from tests.test_reconcile import (
    SYM,
    Session,
    missing_position,
    only,
    quantity_mismatch,
    unknown_position,
)
from tradelab.broker.reconcile import (
    Reconciler,
    ReconcilerConfig,
)
from tradelab.trading.orders import OrderRequest, OrderType, Side


def test_rejected_orders_during_a_reject_fault_leave_nothing_to_reconcile():
    from tradelab.errors import OrderRejectedError

    s = Session()
    s.broker.faults.reject_orders_for(60)
    with pytest.raises(OrderRejectedError, match="rejects every order"):
        s.desk.place_order(SYM, "BUY", 75)
    s.clock.advance(61 * 10**9)
    s.desk.place_order(SYM, "BUY", 75)
    assert s.reconciler().run_once().ok


def test_an_adjusting_trade_that_closes_a_position_journals_position_closed():
    # The book holds 75 the broker no longer has: adopting closes the position, and the
    # journal says so as a fill that closed it would (the trade log and the console read it).
    s = Session()
    missing_position(s)
    [position] = [p for p in s.store.get("trading.positions").values() if p["net_quantity"]]
    assert s.events("position.closed") == []
    s.reconciler(**only("missing_position", "adopt")).run_once()
    [closed] = s.events("position.closed")
    [fix] = s.events("reconciliation.fixed")
    assert closed.payload["position_id"] == position["position_id"]
    assert closed.payload["trade_id"] == fix.payload["trade"]["trade_id"]
    assert closed.seq > fix.seq and closed.critical
    # A difference that leaves the position open (150 -> 75) closes nothing.
    t = Session()
    quantity_mismatch(t)
    t.reconciler(**only("quantity_mismatch", "adopt")).run_once()
    assert t.events("position.closed") == []


def test_an_adopted_position_is_timed_on_the_sessions_clock_not_1970():
    from tradelab.trading.risk import RiskGate

    s = Session()
    unknown_position(s)
    gate = RiskGate(None, s.store, s.kernel.submit, clock=s.clock)
    Reconciler(
        s.broker,
        s.kernel.submit,
        risk=gate,
        config=ReconcilerConfig(settle_s=0.0, **only("unknown_position", "adopt")),
        sleep=s.sleeps.append,
    ).run_once()
    position = s.store.get(f"trading.positions.reconciler:{SYM}")
    assert position["net_quantity"] == 150 and position["opened_ts"] == s.clock.now_ns()


def test_the_brokers_health_follows_its_connection_at_once_not_at_the_next_run():
    s = Session()
    name = s.broker.name
    s.broker.disconnect()
    health = s.store.get(f"broker.health.{name}")
    assert health["state"] == "degraded" and "disconnected" in health["reason"]
    s.reconciler().run_once()  # fails to read the broker: still degraded, journaled once
    assert len(s.events("broker.degraded")) == 0
    s.broker.connect()
    assert s.store.get(f"broker.health.{name}")["state"] == "ok"
    s.reconciler().run_once()
    assert s.events("broker.recovered") == []


def test_a_start_after_a_session_that_ended_in_a_broker_outage_journals_the_connection():
    s = Session()
    s.broker.disconnect()
    assert s.store.get(f"broker.health.{s.broker.name}")["state"] == "degraded"
    s.broker.connect()
    s.broker._connection_listeners.clear()  # the old session is gone: nobody heard it
    s.broker._order_listeners.clear()
    restarted = s.reconciler()
    restarted.journal_connection()
    assert s.store.get(f"broker.health.{s.broker.name}")["state"] == "ok"
    restarted.journal_connection()  # nothing more to say
    assert len(s.events("broker.reconnected")) == 1


def test_a_missed_fill_of_an_order_the_book_never_saw_adopts_the_order_too():
    # An expiry's settlement (or an order from another terminal) whose report a crash lost:
    # the trade was adopted, and the orders table had no row for it.
    s = Session()
    request = OrderRequest("ext-2", SYM, Side.BUY, 75, OrderType.MARKET, None, "manual")
    s.broker.faults.place_outside_order(request)
    report = s.reconciler(missed_fill="adopt", unknown_position="adopt").run_once()
    assert "missed_fill" in report.kinds
    order = s.store.get("trading.orders.ext-2")
    assert (order["status"], order["filled_quantity"], order["strategy"]) == (
        "filled",
        75,
        "manual",
    )
    assert s.store.get("trading.working.ext-2", None) is None
    assert s.book_quantity() == 75
    assert s.reconciler(missed_fill="adopt").run_once().ok


def test_a_missed_fill_of_an_unknown_order_still_working_leaves_the_order_to_its_own_policy():
    # Adopted with its fill, another terminal's working order became the book's, and the
    # close's day-order expiry cancelled it at the broker, though its policy said flag.
    s = Session()
    s.broker.set_quote(SYM, 100.0, 100.5, size=75)
    request = OrderRequest("ext-p", SYM, Side.BUY, 150, OrderType.LIMIT, 101.0, "manual")
    s.broker.faults.place_outside_order(request)  # 75 fill at once, 75 keep working
    report = s.reconciler(missed_fill="adopt", unknown_open_order="flag").run_once()
    assert "unknown_open_order" in report.kinds and "missed_fill" in report.kinds
    assert s.store.get("trading.orders.ext-p", None) is None
    assert s.store.get("trading.working", None) in (None, {})


class CountsOrderReads:
    """A broker whose `order` reads are counted (everything else is the paper broker's)."""

    def __init__(self, broker):
        self._broker, self.order_reads = broker, 0

    def order(self, order_id):
        self.order_reads += 1
        return self._broker.order(order_id)

    def __getattr__(self, name):
        return getattr(self._broker, name)


@pytest.mark.parametrize("setting", [{"missed_fill": "flag"}, {"dry_run": True}])
def test_an_unknown_orders_state_is_read_only_when_its_missed_fill_is_adopted(setting):
    s = Session()
    s.broker.faults.place_outside_order(OrderRequest("ext-3", SYM, Side.BUY, 75))
    counting = CountsOrderReads(s.broker)
    reconciler = Reconciler(
        counting, s.kernel.submit, config=ReconcilerConfig(settle_s=0.0, **setting)
    )
    for _ in range(3):
        assert "missed_fill" in reconciler.run_once().kinds
    assert counting.order_reads == 0


def test_an_order_on_its_way_to_the_broker_is_not_a_difference_until_it_stays_unknown():
    """The desk journals `order.submitted` before it calls the broker: a run between the two
    took the order for one the broker never had and adopted it as cancelled, losing a live
    order from the book (and from the limits and the halt's cancels)."""
    s = Session()
    submitted = {"order_id": "O-1", "symbol": SYM, "side": "BUY", "quantity": 75}
    s.kernel.submit("order.submitted", {**submitted, "order_type": "MARKET"}, key="O-1")
    reconciler = s.reconciler()
    assert reconciler.run_once().kinds == []  # in flight
    assert s.store.get("trading.orders.O-1.status") == "submitted"
    report = reconciler.run_once()  # still unknown a run later: it never reached the broker
    assert report.kinds == ["order_state_mismatch"]
    assert s.store.get("trading.orders.O-1.status") == "cancelled"


def test_a_stop_cuts_the_reconcilers_backoff_short():
    """Its retries slept with time.sleep: a session stopped while the broker was down waited
    out the whole stop timeout, then left the reconciler thread running under a stopped
    engine."""
    import time

    s = Session()
    s.broker.faults.fail_reads(10_000)
    reconciler = Reconciler(
        s.broker,
        s.kernel.submit,
        config=ReconcilerConfig(retry_attempts=10, retry_base_s=5.0, retry_max_s=30.0),
    ).start()
    time.sleep(0.3)  # in its first backoff
    started = time.monotonic()
    reconciler.stop(timeout=20)
    assert time.monotonic() - started < 5  # generous: the stop is immediate
    assert reconciler._thread is None or not reconciler._thread.is_alive()


def test_an_order_finished_in_the_book_but_working_at_the_broker_is_a_difference():
    """Only the book's working orders were compared: one the book had as rejected (a refusal
    reported against it) or cancelled, still working at the broker, was never found, though it
    could fill at any time, a halt included."""
    s = Session()
    oid = s.desk.place_order(SYM, "BUY", 75, order_type="LIMIT", limit_price=90.0)
    rejected = {"order_id": oid, "symbol": SYM, "side": "BUY", "quantity": 75}
    s.kernel.submit("order.rejected", {**rejected, "reason": "order id was already used"}, key=oid)
    assert s.store.get(f"trading.working.{oid}", None) is None
    report = s.reconciler(order_state_mismatch="adopt").run_once()
    assert report.kinds == ["order_state_mismatch"]
    assert report.mismatches[0].expected["status"] == "rejected"
    assert report.mismatches[0].actual["status"] == "accepted"
    assert s.store.get(f"trading.orders.{oid}.status") == "accepted"
    assert s.store.get(f"trading.working.{oid}", None) is not None
