"""Reconciliation's flag, halt and dry-run policies, and differences across restarts and repeats."""

from __future__ import annotations

import pytest
from contracts.local_kernel import LocalKernel

from tests.test_reconcile import (
    SCENARIOS,
    SYM,
    Session,
    missing_position,
    only,
    unknown_position,
)
from tradelab.broker.reconcile import (
    KINDS,
    POLICIES,
)
from tradelab.engine.store import build_store


@pytest.mark.parametrize("kind", KINDS)
def test_flag_policy_records_the_difference_changes_nothing_and_reports_it_again(kind):
    s = Session()
    SCENARIOS[kind](s)
    trades_before = dict(s.store.get("trading.trades", None) or {})
    first = s.reconciler(**only(kind, "flag")).run_once()
    assert kind in first.kinds and first.fixed == []
    assert s.events("reconciliation.fixed") == []
    assert (s.store.get("trading.trades", None) or {}) == trades_before
    second = s.reconciler(**only(kind, "flag")).run_once()
    assert kind in second.kinds  # the fill point did not move past an unresolved fill
    assert s.store.get("risk.control", None) is None


@pytest.mark.parametrize("kind", KINDS)
def test_halt_policy_halts_trading_through_the_risk_gate(kind):
    s = Session()
    SCENARIOS[kind](s)
    report = s.reconciler(**only(kind, "halt")).run_once()
    assert report.halted and report.fixed == []
    control = s.store.get("risk.control")
    assert (control["state"], control["by"]) == ("halted", "reconciler")
    assert kind in control["reason"]
    assert len(s.events("risk.halted")) == 1
    s.reconciler(**only(kind, "halt")).run_once()
    assert len(s.events("risk.halted")) == 1  # already halted: not halted again


def test_halt_policy_escalates_an_operators_reducing_to_halted_naming_the_difference():
    s = Session()
    missing_position(s)
    reconciler = s.reconciler(**only("missing_position", "halt"))  # halt_mode: halted
    reconciler.risk.halt("ops", "news at 11", mode="reducing")
    report = reconciler.run_once()
    assert report.halted
    control = s.store.get("risk.control")
    assert (control["state"], control["by"]) == ("halted", "reconciler")
    assert f"missing_position:{SYM}" in control["reason"]
    assert "reducing by ops: news at 11" in control["reason"]  # what it escalated from
    escalation = s.events("risk.halted")[-1]
    assert escalation.payload["mode"] == "halted"
    [mismatch] = s.events("reconciliation.mismatch")
    assert mismatch.payload["action"] == "halt" and mismatch.seq < escalation.seq


@pytest.mark.parametrize("state", ["halted", "reducing"])
def test_a_difference_found_when_already_halted_records_who_halted_not_a_new_halt(state):
    s = Session()
    missing_position(s)
    reconciler = s.reconciler(**only("missing_position", "halt"), halt_mode=state)
    reconciler.risk.halt("ops", "news at 11", mode=state)
    report = reconciler.run_once()
    assert not report.halted and report.flagged == [f"missing_position:{SYM}"]
    assert len(s.events("risk.halted")) == 1  # the operator's only
    control = s.store.get("risk.control")
    assert (control["state"], control["by"], control["reason"]) == (state, "ops", "news at 11")
    [mismatch] = s.events("reconciliation.mismatch")
    assert mismatch.payload["action"] == f"none (already {state} by ops: news at 11)"


def test_halt_mode_reducing_allows_exits_only():
    s = Session()
    unknown_position(s)
    s.reconciler(unknown_position="halt", halt_mode="reducing").run_once()
    assert s.store.get("risk.control.state") == "reducing"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("policy", POLICIES)
def test_dry_run_reports_under_any_policy_and_fixes_or_halts_nothing(kind, policy):
    s = Session()
    SCENARIOS[kind](s)
    report = s.reconciler(dry_run=True, **only(kind, policy)).run_once()
    assert kind in report.kinds and report.fixed == [] and not report.halted
    events = [e for e in s.events("reconciliation.mismatch") if e.payload["kind"] == kind]
    assert events[0].payload["dry_run"] is True
    assert events[0].payload["policy"] == policy
    assert s.events("reconciliation.fixed") == [] and s.events("risk.halted") == []


@pytest.mark.parametrize(
    "kind", ["missed_fill", "unknown_position", "missing_position", "quantity_mismatch"]
)
def test_restart_mid_reconciliation_duplicates_nothing(kind):
    """The journal ends after the mismatch, before its fix: the rerun makes the same ids; and a
    fix journaled twice (the restart came after it) changes the book once."""
    s = Session()
    SCENARIOS[kind](s)
    s.reconciler(**only(kind, "adopt")).run_once()
    fixes = [e for e in s.events("reconciliation.fixed") if e.payload["kind"] == kind]
    cut = s.kernel.events.index(fixes[0])
    restarted = LocalKernel(store_factory=build_store)
    for event in s.kernel.events[:cut]:
        restarted.submit(event.topic, event.payload, key=event.key, critical=event.critical)
    again = Session(kernel=restarted, broker=s.broker)
    again.reconciler(**only(kind, "adopt")).run_once()
    refixes = [e for e in again.events("reconciliation.fixed") if e.payload["kind"] == kind]
    assert [e.payload["trade"]["trade_id"] for e in refixes] == [
        e.payload["trade"]["trade_id"] for e in fixes
    ]
    for event in refixes:  # the same fix applied once more: the book does not move
        restarted.submit(event.topic, event.payload, key=event.key, critical=True)
    assert again.book_quantity() == s.broker.positions().get(SYM, 0)


def test_a_difference_that_comes_back_is_adopted_again_and_moves_the_book():
    # The broker holds 75, then nothing, then 75 again, all without a fill: the third adoption
    # is the same difference at the same fill point as the first, and must still move the book.
    s = Session()
    reconciler = s.reconciler(**{**only("unknown_position", "adopt"), "missing_position": "adopt"})
    for signed in (75, -75, 75):
        s.broker.faults.hold_outside_position(SYM, signed, 100.0)
        report = reconciler.run_once()
        assert report.fixed == [m.item for m in report.mismatches]
        assert s.book_quantity() == s.broker.positions().get(SYM, 0)
    trade_ids = {e.payload["trade"]["trade_id"] for e in s.events("reconciliation.fixed")}
    assert len(trade_ids) == 3 and trade_ids <= set(s.store.get("trading.trades"))
    assert reconciler.run_once().ok


def test_a_fix_whose_trade_the_book_already_has_is_flagged_not_reported_fixed():
    # A fix names its trade, and the book skips a trade id it already has. Should a fix ever
    # name one (here: another symbol's trade journaled under that id), the run must not report
    # a fix that changed nothing.
    s = Session()
    unknown_position(s)
    probe = Session(kernel=LocalKernel(store_factory=build_store), broker=s.broker)
    probe.reconciler(**only("unknown_position", "adopt")).run_once()
    [fix] = probe.events("reconciliation.fixed")
    other = "NIFTY25NOV24100CE"
    taken = {**fix.payload["trade"], "symbol": other, "position_id": f"manual:{other}"}
    s.kernel.submit("trade.executed", {**taken, "strategy": "manual"}, key=other, critical=True)
    report = s.reconciler(**only("unknown_position", "adopt")).run_once()
    item = f"unknown_position:{SYM}"
    assert report.fixed == [] and item in report.flagged
    assert s.events("reconciliation.fixed") == []
    [mismatch] = [e for e in s.events("reconciliation.mismatch") if e.key == item]
    assert "already in the book" in mismatch.payload["action"]
    assert fix.payload["trade"]["trade_id"] in mismatch.payload["action"]
    assert s.store.get("reconciliation.last_run.fixed") == 0


# What the README and `tradelab config` document as each kind's default policy.
DEFAULT_ACTIONS = {
    "missed_fill": "adopt",
    "order_state_mismatch": "adopt",
    "unknown_open_order": "flag",
    "unknown_position": "flag",
    "missing_position": "halt",
    "quantity_mismatch": "halt",
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_gets_its_documented_default_policy(kind):
    s = Session()
    SCENARIOS[kind](s)
    report = s.reconciler().run_once()  # the default config
    actions = {
        m.payload["action"]
        for m in s.events("reconciliation.mismatch")
        if m.payload["kind"] == kind
    }
    assert actions == {DEFAULT_ACTIONS[kind]}
    assert report.halted == (DEFAULT_ACTIONS[kind] == "halt")
