"""Reducers for the engine's own topics: engine, runner, risk, signals, snapshots, reconciliation.

Pure functions of (StateView, Event) -> [(dot_path, value)]; no threads, no I/O. Payload keys each
reducer reads are listed on it; a missing required key is an InvalidInputError naming the topic.
Event keys and payload ids used as path levels must pass `paths.is_path_level` (StateError).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tradelab.errors import InvalidInputError, StateError
from tradelab.events import Event
from tradelab.state.paths import DELETE, LEVEL_RULE, is_path_level, shown
from tradelab.state.store import Reducer, StateView

Change = tuple[str, Any]


def _required(event: Event, key: str) -> Any:
    try:
        return event.payload[key]
    except KeyError:
        raise InvalidInputError(
            f"payload of {event.topic!r} (seq {event.seq}) lacks {key!r}; it has "
            f"{sorted(event.payload)}"
        ) from None


def _segment(event: Event, value: Any, what: str) -> str:
    """A payload id or event key used as one path level (a StateError names a bad one)."""
    if not is_path_level(value):
        raise StateError(
            f"{what} {shown(value)} of {event.topic!r} (seq {event.seq}) cannot name a state path "
            f"level: expected {LEVEL_RULE}"
        )
    return value


def _details(event: Event, prefix: str, skip: tuple[str, ...]) -> list[Change]:
    return [
        (f"{prefix}.{_segment(event, name, 'payload key')}", value)
        for name, value in event.payload.items()
        if name not in skip
    ]


def engine_state_changed(view: StateView, event: Event) -> Iterable[Change]:
    """payload: state (str), previous (str, optional) -> engine.status, engine.previous_status."""
    changes = [("engine.status", _required(event, "state"))]
    if "previous" in event.payload:
        changes.append(("engine.previous_status", event.payload["previous"]))
    return changes


def runner_started(view: StateView, event: Event) -> Iterable[Change]:
    """payload: any details (strategy, mode, ...) -> runner.status='running', runner.<key>."""
    return [
        ("runner.status", "running"),
        ("runner.started_ts", event.ts),
        *_details(event, "runner", ("status",)),
    ]


def runner_stopped(view: StateView, event: Event) -> Iterable[Change]:
    """payload: reason (str, optional) and other details -> runner.status='stopped', runner.<key>."""
    return [
        ("runner.status", "stopped"),
        ("runner.stopped_ts", event.ts),
        *_details(event, "runner", ("status",)),
    ]


def runner_state_changed(view: StateView, event: Event) -> Iterable[Change]:
    """payload: state (str) and other details -> runner.status, runner.<key>."""
    return [
        ("runner.status", _required(event, "state")),
        *_details(event, "runner", ("state", "status")),
    ]


def risk_state_changed(view: StateView, event: Event) -> Iterable[Change]:
    """payload: state (str, optional) plus limits/utilisation fields -> risk.state, risk.<key>."""
    changes = _details(event, "risk", ("state",))
    if "state" in event.payload:
        changes.append(("risk.state", event.payload["state"]))
    return changes


def risk_halted(view: StateView, event: Event) -> Iterable[Change]:
    """payload: reason (str), mode ('halted' | 'reducing', default 'halted') -> risk.state = the
    mode, risk.halt = {reason, ts, seq}."""
    mode = event.payload.get("mode")
    return [
        ("risk.state", mode if mode in ("halted", "reducing") else "halted"),
        ("risk.halt", {"reason": _required(event, "reason"), "ts": event.ts, "seq": event.seq}),
    ]


def risk_resumed(view: StateView, event: Event) -> Iterable[Change]:
    """payload: reason (str, optional) -> risk.state='active', risk.halt removed."""
    return [
        ("risk.state", "active"),
        ("risk.halt", DELETE),
        (
            "risk.resumed",
            {"reason": event.payload.get("reason", ""), "ts": event.ts, "seq": event.seq},
        ),
    ]


def risk_daily_loss_breached(view: StateView, event: Event) -> Iterable[Change]:
    """payload: loss (number), limit (number) -> risk.daily_loss_breach = {loss, limit, ts, seq};
    an action 'halted' |
    'reducing' also sets risk.state and risk.halt, as `risk.halted` does: the breach halts by
    itself (tradelab.trading.risk_state), so a crash before its `risk.halted` halts all the same.
    """
    payload = event.payload
    breach = {
        "loss": _required(event, "loss"),
        "limit": _required(event, "limit"),
        "ts": event.ts,
        "seq": event.seq,
    }
    changes: list[Change] = [("risk.daily_loss_breach", breach)]
    action = payload.get("action")
    if action in ("halted", "reducing"):
        reason = f"daily loss {breach['loss']} crossed the limit {breach['limit']}"
        changes.append(("risk.state", action))
        changes.append(("risk.halt", {"reason": reason, "ts": event.ts, "seq": event.seq}))
    return changes


def signal_detected(view: StateView, event: Event) -> Iterable[Change]:
    """key: signal id (or payload signal_id); payload: the signal -> signals.active.<id>."""
    signal_id = _segment(event, event.key or event.payload.get("signal_id", ""), "signal id")
    return [
        (
            f"signals.active.{signal_id}",
            {**event.payload, "signal_id": signal_id, "detected_ts": event.ts, "seq": event.seq},
        )
    ]


def signal_cleared(view: StateView, event: Event) -> Iterable[Change]:
    """key: signal id (or payload signal_id) -> signals.active.<id> removed, signals.cleared += 1."""
    signal_id = _segment(event, event.key or event.payload.get("signal_id", ""), "signal id")
    if not view.has(f"signals.active.{signal_id}"):
        return []
    return [
        (f"signals.active.{signal_id}", DELETE),
        ("signals.cleared", view.get("signals.cleared", 0) + 1),
    ]


def snapshot_taken(view: StateView, event: Event) -> Iterable[Change]:
    """payload: seq (int) and any details (id, sha256, ...) -> journal.last_snapshot."""
    _required(event, "seq")
    return [("journal.last_snapshot", {**event.payload, "ts": event.ts})]


def reconciliation_started(view: StateView, event: Event) -> Iterable[Change]:
    """payload: any details -> reconciliation.status='running', open mismatches cleared."""
    return [
        ("reconciliation.status", "running"),
        ("reconciliation.started", {**event.payload, "ts": event.ts}),
        ("reconciliation.mismatches", {}),
    ]


def reconciliation_mismatch(view: StateView, event: Event) -> Iterable[Change]:
    """key (or payload item): what disagrees; payload: details -> reconciliation.mismatches.<key>."""
    item = _segment(event, event.key or event.payload.get("item", ""), "mismatch item")
    return [(f"reconciliation.mismatches.{item}", {**event.payload, "ts": event.ts})]


def reconciliation_fixed(view: StateView, event: Event) -> Iterable[Change]:
    """key (or payload item): the mismatch fixed -> removed from mismatches, fixed_count += 1."""
    item = _segment(event, event.key or event.payload.get("item", ""), "mismatch item")
    return [
        (f"reconciliation.mismatches.{item}", DELETE),
        ("reconciliation.fixed_count", view.get("reconciliation.fixed_count", 0) + 1),
        ("reconciliation.last_fix", {**event.payload, "item": item, "ts": event.ts}),
    ]


def reconciliation_completed(view: StateView, event: Event) -> Iterable[Change]:
    """payload: summary (ok, counts, ...) -> reconciliation.status='completed', .last_run."""
    return [
        ("reconciliation.status", "completed"),
        ("reconciliation.last_run", {**event.payload, "ts": event.ts, "seq": event.seq}),
    ]


def reducers() -> dict[str, list[Reducer]]:
    """Topic -> reducers of this module, for `StateStore.register_reducers`."""
    return {
        "engine.state_changed": [engine_state_changed],
        "runner.started": [runner_started],
        "runner.stopped": [runner_stopped],
        "runner.state_changed": [runner_state_changed],
        "risk.state_changed": [risk_state_changed],
        "risk.halted": [risk_halted],
        "risk.resumed": [risk_resumed],
        "risk.daily_loss_breached": [risk_daily_loss_breached],
        "signal.detected": [signal_detected],
        "signal.cleared": [signal_cleared],
        "snapshot.taken": [snapshot_taken],
        "reconciliation.started": [reconciliation_started],
        "reconciliation.mismatch": [reconciliation_mismatch],
        "reconciliation.fixed": [reconciliation_fixed],
        "reconciliation.completed": [reconciliation_completed],
    }
