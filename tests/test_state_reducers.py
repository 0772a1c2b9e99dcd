"""The generic reducers: engine, runner, risk, signals, snapshots and reconciliation topics."""

from __future__ import annotations

import pytest

from tradelab.errors import StateError
from tradelab.events import TopicRegistry
from tradelab.state import StateStore
from tradelab.state.reducers import reducers


@pytest.fixture
def store() -> StateStore:
    s = StateStore()
    s.register_reducers(reducers())
    return s


@pytest.fixture
def submit(store):
    topics = TopicRegistry()

    def _submit(topic, payload=None, key=""):
        event = topics.make_event(topic, payload or {}, key=key, seq=store.version + 1)
        store.apply(event)
        return event

    return _submit


def test_every_reducer_topic_is_a_known_topic():
    topics = TopicRegistry()
    assert all(topic in topics for topic in reducers())


def test_engine_and_runner_status_follow_their_events(store, submit):
    submit("engine.state_changed", {"state": "running", "previous": "ready"})
    submit("runner.started", {"strategy": "orb_15m", "mode": "paper"})
    assert store.get("engine.status") == "running"
    assert store.get("engine.previous_status") == "ready"
    assert store.get("runner.status") == "running"
    assert store.get("runner.strategy") == "orb_15m"
    submit("runner.state_changed", {"state": "paused", "reason": "lunch"})
    assert store.get("runner.status") == "paused"
    assert store.get("runner.reason") == "lunch"
    stopped = submit("runner.stopped", {"reason": "session closed"})
    assert store.get("runner.status") == "stopped"
    assert store.get("runner.stopped_ts") == stopped.ts


def test_halt_and_resume_set_risk_state(store, submit):
    submit("risk.state_changed", {"state": "active", "max_daily_loss": 10_000.0})
    assert store.get("risk.max_daily_loss") == 10_000.0
    submit("risk.daily_loss_breached", {"loss": -10_250.0, "limit": 10_000.0})
    assert store.get("risk.daily_loss_breach.loss") == -10_250.0
    halted = submit("risk.halted", {"reason": "daily loss limit"})
    assert store.get("risk.state") == "halted"
    assert store.get("risk.halt") == {
        "reason": "daily loss limit",
        "ts": halted.ts,
        "seq": halted.seq,
    }
    submit("risk.resumed", {"reason": "manual override"})
    assert store.get("risk.state") == "active"
    assert store.get("risk.halt") is None
    # A halt in 'reducing' mode (exits only) says so, not 'halted'.
    submit("risk.halted", {"reason": "daily loss limit", "mode": "reducing", "by": "risk"})
    assert store.get("risk.state") == "reducing"


def test_signals_become_active_and_clear(store, submit):
    submit("signal.detected", {"symbol": "NIFTY24NOV24000CE", "side": "BUY"}, key="orb-1")
    assert store.get("signals.active.orb-1.side") == "BUY"
    submit("signal.cleared", {}, key="orb-1")
    submit("signal.cleared", {}, key="never-seen")
    assert store.get("signals.active") == {}
    assert store.get("signals.cleared") == 1


def test_signal_id_with_a_dot_is_refused_naming_it(store, submit):
    with pytest.raises(StateError, match="signal id 'a.b'"):
        submit("signal.detected", {"side": "BUY"}, key="a.b")
    assert store.version == 0


def test_missing_required_payload_key_names_topic_and_key(store, submit):
    with pytest.raises(StateError, match="'risk.halted'.*lacks 'reason'"):
        submit("risk.halted", {})


def test_snapshot_and_reconciliation_records(store, submit):
    submit("snapshot.taken", {"seq": 100, "sha256": "ab" * 32})
    assert store.get("journal.last_snapshot.seq") == 100
    submit("reconciliation.started", {"run": 1})
    submit("reconciliation.mismatch", {"book_qty": 75, "broker_qty": 0}, key="NIFTYX")
    assert store.get("reconciliation.mismatches.NIFTYX.broker_qty") == 0
    submit("reconciliation.fixed", {"action": "flatten"}, key="NIFTYX")
    assert store.get("reconciliation.mismatches") == {}
    assert store.get("reconciliation.fixed_count") == 1
    submit("reconciliation.completed", {"ok": True, "mismatches": 1})
    assert store.get("reconciliation.status") == "completed"
    assert store.get("reconciliation.last_run.ok") is True
