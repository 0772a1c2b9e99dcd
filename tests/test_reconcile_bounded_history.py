"""A reconciliation whose fill point is older than the fills the broker still keeps (its
bounded history): the fills left are not booked as trades, positions are compared."""

from __future__ import annotations

from test_reconcile import OPEN_NS, SYM, Session

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.market.clock import SimulatedClock
from tradelab.trading.orders import OrderRequest, Side


def test_fills_the_broker_let_go_are_not_booked_and_positions_are_compared():
    broker = PaperBroker(
        PaperBrokerConfig(history_fills=4, history_orders=4), clock=SimulatedClock(OPEN_NS)
    )
    broker.set_quote(SYM, 100.0, 100.5)
    # Made before this book existed (a new journal beside the account): 9 fills, the last
    # opening a position; the broker keeps the newest 4, which start mid round trip.
    for i in range(9):
        side = Side.BUY if i % 2 == 0 else Side.SELL
        broker.submit_order(OrderRequest(f"old-{i}", SYM, side, 75, strategy="churn"))
    s = Session(broker=broker)
    assert broker.fills_since(0)[0].fill_seq > 1
    report = s.reconciler().run_once()
    assert "missed_fill" not in report.kinds  # no half round trip booked to a strategy
    assert report.fills_gone == broker.fills_since(0)[0].fill_seq - 1
    assert report.kinds == ["unknown_position"] and report.mismatches[0].actual == 75
    assert report.fill_point == 9  # later runs compare the fills after it, as always
    completed = s.events("reconciliation.completed")[-1].payload
    assert completed["fills_gone"] == report.fills_gone
    assert not s.store.get("trading.trades", None)
    assert s.store.get("risk.control", None) is None  # nothing halted
