"""Snapshots (bytes round trip, restore) and the step-by-step migration chain."""

from __future__ import annotations

import pytest

from tradelab.errors import InvalidInputError, SchemaVersionError
from tradelab.events import DEFAULT_TOPICS, Event, TopicRegistry, TopicSpec
from tradelab.state import MigrationRegistry, StateSnapshot, StateStore


def set_path(view, event):
    return [(event.payload["path"], event.payload["value"])]


def build(schema_version: int = 1, **kw) -> StateStore:
    store = StateStore(schema_version=schema_version, **kw)
    store.register_reducer("position.updated", set_path)
    return store


def put(store, path, value, ts=None):
    seq = store.version + 1
    store.apply(
        Event(
            seq=seq,
            ts=ts or seq * 10**9,
            topic="position.updated",
            key="",
            payload={"path": path, "value": value},
        )
    )


def test_snapshot_round_trips_through_bytes_with_seq_schema_and_metadata():
    store = build()
    put(store, "trading.positions.P1", {"qty": 75, "avg": 101.25, "legs": (1, 2)})
    put(store, "pnl.daily", -12.5, ts=5 * 10**9)
    snap = store.snapshot()
    again = StateSnapshot.from_bytes(snap.to_bytes())
    assert (again.seq, again.schema_version) == (2, 1)
    assert again.state == {
        "trading": {"positions": {"P1": {"qty": 75, "avg": 101.25, "legs": [1, 2]}}},
        "pnl": {"daily": -12.5},
    }
    assert again.sha256() == snap.sha256() == store.state_hash()
    assert again.to_bytes() == snap.to_bytes()
    restored = StateStore.from_snapshot(again)
    assert restored.version == 2
    assert restored.state_hash() == store.state_hash()
    assert restored.meta("pnl.daily") == store.meta("pnl.daily")


def test_restored_store_continues_from_the_snapshot_seq():
    store = build()
    put(store, "pnl.daily", 1.0)
    restored = build()
    restored.load_snapshot(store.snapshot())
    put(restored, "pnl.daily", 2.0)
    assert restored.version == 2
    assert restored.get("pnl.daily") == 2.0


@pytest.mark.parametrize(
    "data, message",
    [
        (b"not json", "cannot decode"),
        (b'{"format": "something-else"}', "not a state snapshot"),
        (b'{"format": "tradelab.state-snapshot/1", "seq": 1}', "lacks field"),
        (
            b'{"format": "tradelab.state-snapshot/1", "seq": -1, "schema_version": 1, "state": {}}',
            "seq must be",
        ),
        (
            b'{"format": "tradelab.state-snapshot/1", "seq": 1, "schema_version": 1, "state": []}',
            "state must be a dict",
        ),
    ],
)
def test_malformed_snapshot_bytes_are_an_invalid_input_error(data, message):
    with pytest.raises(InvalidInputError, match=message):
        StateSnapshot.from_bytes(data)


# A real change of shape across three schema versions:
#   v1: pnl.day (renamed in v2 to pnl.daily); positions without a strategy field
#   v2: pnl.daily
#   v3: every position has "strategy" (default "manual")
def v1_to_v2(state):
    pnl = dict(state.get("pnl", {}))
    if "day" in pnl:
        pnl["daily"] = pnl.pop("day")
    return {**state, "pnl": pnl}


def v2_to_v3(state):
    trading = state.get("trading", {})
    positions = {
        pid: {"strategy": "manual", **pos} for pid, pos in trading.get("positions", {}).items()
    }
    return {**state, "trading": {**trading, "positions": positions}}


def migrations_v3() -> MigrationRegistry:
    registry = MigrationRegistry(snapshot_version=3)
    registry.register_snapshot_upcaster(1, v1_to_v2)
    registry.register_snapshot_upcaster(2, v2_to_v3)
    return registry


def v1_snapshot() -> StateSnapshot:
    old = build(schema_version=1)
    put(old, "pnl.day", 250.0)
    put(old, "trading.positions.P1", {"qty": 75})
    return StateSnapshot.from_bytes(old.snapshot().to_bytes())


def test_v1_snapshot_is_upcast_step_by_step_to_v3_on_load():
    snap = v1_snapshot()
    store = StateStore.from_snapshot(snap, migrations_v3())
    assert store.schema_version == 3
    assert store.version == 2
    assert store.get("pnl") == {"daily": 250.0}
    assert store.get("trading.positions.P1") == {"strategy": "manual", "qty": 75}
    assert snap.state["pnl"] == {"day": 250.0}  # the input snapshot is untouched
    assert store.snapshot().schema_version == 3


def test_newer_snapshot_than_the_code_is_a_schema_version_error_naming_both():
    snap = StateSnapshot(seq=9, schema_version=4, state={})
    with pytest.raises(SchemaVersionError, match="version 4.*version 3"):
        StateStore.from_snapshot(snap, migrations_v3())
    with pytest.raises(SchemaVersionError, match="version 4.*version 1"):
        build().load_snapshot(snap)


def test_missing_upcaster_step_is_a_schema_version_error():
    registry = MigrationRegistry(snapshot_version=3)
    registry.register_snapshot_upcaster(1, v1_to_v2)
    with pytest.raises(SchemaVersionError, match="no snapshot upcaster from schema version 2 to 3"):
        StateStore.from_snapshot(v1_snapshot(), registry)
    with pytest.raises(SchemaVersionError, match="no MigrationRegistry"):
        build(schema_version=3).load_snapshot(v1_snapshot())


def test_duplicate_upcaster_registration_is_refused():
    registry = migrations_v3()
    with pytest.raises(InvalidInputError, match="already registered"):
        registry.register_snapshot_upcaster(1, v1_to_v2)


def test_old_events_are_upcast_step_by_step_before_reducers_see_them():
    specs = [spec for spec in DEFAULT_TOPICS if spec.name != "trade.executed"]
    topics = TopicRegistry([*specs, TopicSpec("trade.executed", critical=True, schema_version=3)])
    registry = MigrationRegistry(topics=topics)
    # trade.executed v1 said "qty"; v2 says "quantity"; v3 adds "fees".
    registry.register_event_upcaster(
        "trade.executed",
        1,
        lambda p: {**{k: v for k, v in p.items() if k != "qty"}, "quantity": p["qty"]},
    )
    registry.register_event_upcaster("trade.executed", 2, lambda p: {"fees": 0.0, **p})
    store = StateStore(migrations=registry)
    store.register_reducer(
        "trade.executed",
        lambda v, e: [("trading.trades.T1", e.payload), ("trading.version", e.schema_version)],
    )
    old = Event(
        seq=1,
        ts=1,
        topic="trade.executed",
        key="",
        payload={"qty": 75, "px": 1.5},
        schema_version=1,
    )
    store.apply(old)
    assert store.get("trading.trades.T1") == {"fees": 0.0, "quantity": 75, "px": 1.5}
    assert store.get("trading.version") == 3
    assert old.payload == {"qty": 75, "px": 1.5}  # the journaled event is untouched
    future = Event(seq=2, ts=2, topic="trade.executed", key="", payload={}, schema_version=4)
    with pytest.raises(SchemaVersionError, match="version 4, newer than this code's version 3"):
        store.apply(future)
    assert store.version == 1


def test_event_with_no_upcaster_path_is_a_schema_version_error():
    registry = MigrationRegistry()
    registry.register_event_upcaster("market.bar", 2, lambda p: p)
    bar = Event(seq=1, ts=1, topic="market.bar", key="", payload={}, schema_version=1)
    with pytest.raises(SchemaVersionError, match="'market.bar' from schema version 1 to 2"):
        registry.upcast_event(bar)
