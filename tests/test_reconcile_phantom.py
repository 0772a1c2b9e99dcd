"""An order journaled as submitted by a process that was killed before it reached the broker:
the first reconciliation after the restart finds it, instead of taking it for one in flight."""

from __future__ import annotations

from test_reconcile import SYM, Session

from tradelab.broker.reconcile import Reconciler, ReconcilerConfig
from tradelab.engine import Engine

SUBMITTED = {"order_id": "O-1", "symbol": SYM, "side": "BUY", "quantity": 75}


def test_an_order_submitted_before_this_start_and_unknown_to_the_broker_is_a_difference_at_once():
    s = Session()
    s.kernel.submit("order.submitted", {**SUBMITTED, "order_type": "MARKET"}, key="O-1")
    reconciler = Reconciler(
        s.broker,
        s.kernel.submit,
        config=ReconcilerConfig(settle_s=0.0),
        sleep=s.sleeps.append,
        started_at_seq=s.store.version,  # the order was journaled before this "process"
    )
    assert reconciler.run_once().kinds == ["order_state_mismatch"]
    assert s.store.get("trading.orders.O-1.status") == "cancelled"
    assert s.store.get("trading.working.O-1", None) is None


def test_a_restarted_engines_reconciler_knows_what_was_journaled_before_it(tmp_path):
    path = str(tmp_path / "j.duckdb")
    with Engine(journal_path=path, writer_process=False) as engine:
        engine.submit("order.submitted", {**SUBMITTED, "order_type": "MARKET"}, key="O-1")
    s = Session()
    with Engine(journal_path=path, writer_process=False) as engine:  # the restart
        reconciler = Reconciler(s.broker, engine.submit, config=ReconcilerConfig(settle_s=0.0))
        assert reconciler.started_at_seq == engine.recovery_report.last_seq > 0
        assert reconciler.run_once().kinds == ["order_state_mismatch"]
        engine.wait_applied()
        assert engine.store.get("trading.orders.O-1.status") == "cancelled"
        # One this process submits is still in flight at first sight (the desk journals the
        # submission before it calls the broker).
        engine.submit("order.submitted", {**SUBMITTED, "order_id": "O-2"}, key="O-2", wait=True)
        assert reconciler.run_once().kinds == []
