"""A reconciliation whose fill point is older than the fills the broker still keeps (its
bounded history): the fills left are not booked as trades, positions are compared."""

from __future__ import annotations

from test_reconcile import OPEN_NS, SYM, Session

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.broker.reconcile import Reconciler, ReconcilerConfig
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


class _EvenNumbers:
    """A broker numbering its fills 2, 4, 6...: increasing, as the protocol asks, not
    contiguous; it does not say where its kept fills begin."""

    def __init__(self, broker):
        self._broker = broker

    def __getattr__(self, name):
        if name == "first_fill_seq":
            raise AttributeError(name)
        return getattr(self._broker, name)

    def fills_since(self, fill_seq=0, *, ts=None):
        from dataclasses import replace

        fills = self._broker.fills_since(fill_seq // 2, ts=ts)
        return [replace(f, fill_seq=2 * f.fill_seq) for f in fills]


def test_fill_numbers_with_jumps_are_not_taken_for_fills_let_go():
    s = Session()
    s.broker.faults.drop_fill_reports(1)
    s.desk.place_order(SYM, "BUY", 75)  # filled at the broker; its report never arrives
    reconciler = Reconciler(
        _EvenNumbers(s.broker), s.kernel.submit, config=ReconcilerConfig(settle_s=0.0)
    )
    report = reconciler.run_once()
    assert "missed_fill" in report.kinds and report.fills_gone == 0
