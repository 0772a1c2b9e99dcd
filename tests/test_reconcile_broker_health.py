"""The reconciler against a broker that fails: retries with backoff, a visible degraded state
instead of a crash, recovery, and its periodic thread."""

from __future__ import annotations

import time

import pytest
from test_reconcile import SYM, Session, unknown_position

from tradelab.broker import BrokerUnavailableError
from tradelab.broker.retry import backoff_delays, call_with_retry


def test_backoff_doubles_from_the_base_and_is_capped():
    assert backoff_delays(5, 0.2, 1.0) == [0.2, 0.4, 0.8, 1.0]
    assert backoff_delays(1, 0.2, 1.0) == []


def test_retry_gives_up_naming_what_failed_and_how_often():
    calls, sleeps = [], []

    def down():
        calls.append(1)
        raise ConnectionError("reset by peer")

    with pytest.raises(BrokerUnavailableError, match="positions failed 3 time.*reset by peer"):
        call_with_retry(down, what="positions", attempts=3, base_s=0.1, sleep=sleeps.append)
    assert len(calls) == 3 and sleeps == [0.1, 0.2]


def test_non_transient_errors_are_not_retried():
    calls = []

    def bug():
        calls.append(1)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        call_with_retry(bug, what="x", sleep=lambda s: None)
    assert len(calls) == 1


def test_transient_read_failures_are_retried_and_the_run_completes():
    s = Session()
    s.desk.place_order(SYM, "BUY", 75)
    s.broker.faults.fail_reads(2)
    report = s.reconciler(retry_attempts=4, retry_base_s=0.1).run_once()
    assert report.ok and report.degraded is None
    assert s.sleeps == [0.1, 0.2]
    assert s.events("broker.degraded") == []


def test_broker_that_stays_down_degrades_the_session_once_and_recovers_on_reconnect():
    s = Session()
    s.broker.disconnect()
    reconciler = s.reconciler(retry_attempts=2)
    first = reconciler.run_once()
    second = reconciler.run_once()
    assert first.degraded and "disconnected" in first.degraded and second.degraded
    # A change of health, journaled once: the disconnect itself degraded it.
    assert len(s.events("broker.disconnected")) == 1 and s.events("broker.degraded") == []
    assert s.store.get("broker.health.paper.state") == "degraded"
    assert s.events("reconciliation.started") == []  # no run was recorded against a dead broker
    s.broker.connect()
    assert s.store.get("broker.health.paper.state") == "ok"  # at once, not at the next run
    assert reconciler.run_once().ok
    assert s.events("broker.recovered") == []


def test_a_broker_whose_reads_fail_while_connected_degrades_at_the_reconcilers_run():
    s = Session()
    s.broker.faults.fail_reads(10)  # more than the retries
    first = s.reconciler(retry_attempts=2).run_once()
    assert first.degraded and len(s.events("broker.degraded")) == 1
    assert s.store.get("broker.health.paper.state") == "degraded"


def test_periodic_reconciler_runs_on_start_and_every_interval_and_stops():
    s = Session()
    unknown_position(s)
    reconciler = s.reconciler(interval_s=0.05).start()
    # Generous: 3 runs need ~0.1 s; the bound only guards against a hang on a loaded machine.
    deadline = time.monotonic() + 30
    while reconciler.runs < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    reconciler.stop()
    runs = reconciler.runs
    assert runs >= 3
    assert len(s.events("reconciliation.completed")) == runs
    time.sleep(0.15)
    assert reconciler.runs == runs  # stopped means stopped
