"""A missing position closed at the mark, and an order the broker does not
know adopted as cancelled with the fills the book had."""

from __future__ import annotations

from test_reconcile import SYM, Session, missing_position, only

from tradelab.broker.reconcile import Reconciler, ReconcilerConfig


def test_an_adopted_missing_position_is_closed_at_the_mark_not_at_its_average():
    s = Session()
    missing_position(s)  # the book holds 75 bought at 100.5; the broker holds none
    s.kernel.submit("mark.updated", {"symbol": SYM, "price": 90.0}, key=SYM)
    s.reconciler(**only("missing_position", "adopt")).run_once()
    trades = [e.payload["trade"] for e in s.events("reconciliation.fixed")]
    assert [(t["side"], t["quantity"], t["price"]) for t in trades] == [("SELL", 75, 90.0)]
    assert s.book_quantity() == 0


def test_an_order_unknown_to_the_broker_is_cancelled_keeping_the_fills_the_book_had():
    s = Session()
    s.kernel.submit(
        "order.submitted",
        {"order_id": "O-1", "symbol": SYM, "side": "BUY", "quantity": 150, "order_type": "MARKET"},
        key="O-1",
    )
    s.kernel.submit(
        "order.partially_filled",
        {
            "order_id": "O-1",
            "filled_quantity": 75,
            "remaining_quantity": 75,
            "average_price": 100.5,
        },
        key="O-1",
    )
    reconciler = Reconciler(
        s.broker, s.kernel.submit, config=ReconcilerConfig(settle_s=0.0),
        sleep=s.sleeps.append, started_at_seq=s.store.version,
    )  # fmt: skip
    assert reconciler.run_once().kinds == ["order_state_mismatch"]
    order = s.store.get("trading.orders.O-1")
    assert (order["status"], order["filled_quantity"]) == ("cancelled", 75)
