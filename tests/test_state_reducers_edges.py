"""the generic reducers of state/reducers.py."""

from __future__ import annotations

import pytest

from tradelab.events import TopicRegistry
from tradelab.state import StateStore
from tradelab.state.reducers import reducers


@pytest.fixture
def submit():
    store = StateStore()
    store.register_reducers(reducers())
    topics = TopicRegistry()

    def _submit(topic, payload=None, key=""):
        store.apply(topics.make_event(topic, payload or {}, key=key, seq=store.version + 1))
        return store

    return _submit


def test_a_new_reconciliation_run_forgets_the_last_runs_open_mismatches(submit):
    submit("reconciliation.started", {"run": 1})
    submit("reconciliation.mismatch", {"kind": "missing"}, key="NIFTYX")
    submit("reconciliation.completed", {"ok": False})
    store = submit("reconciliation.started", {"run": 2})  # run 2 finds the book and broker agree
    submit("reconciliation.completed", {"ok": True})
    assert store.get("reconciliation.mismatches") == {}  # cli_run's summary, the metrics gauge


def test_fixed_count_counts_every_fix(submit):
    for item in ("A", "B", "C"):
        store = submit("reconciliation.fixed", {"action": "flatten"}, key=item)
    assert store.get("reconciliation.fixed_count") == 3


def test_a_breach_that_reduces_sets_the_risk_state_to_reducing(submit):
    store = submit("risk.daily_loss_breached", {"loss": 10.0, "limit": 5.0, "action": "reducing"})
    assert store.get("risk.state") == "reducing"
    assert "crossed" in store.get("risk.halt.reason")


def test_runner_status_is_the_state_even_when_the_payload_carries_a_status(submit):
    store = submit("runner.state_changed", {"state": "paused", "status": "whatever"})
    assert store.get("runner.status") == "paused"
