"""StateStore.apply_each: many events in one call, each atomic on its own, stop at the first
failure; the engine kernel's way to apply a drained batch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradelab.errors import SchemaVersionError, SequenceError, StateError
from tradelab.events import Event, TopicRegistry, TopicSpec
from tradelab.state import DELETE, MigrationRegistry, StateStore


def ev(seq: int, path: str, value, topic: str = "position.updated", version: int = 1) -> Event:
    return Event(seq, seq * 1_000, topic, "", {"path": path, "value": value}, False, version)


def set_path(view, event):
    return [
        (event.payload["path"], event.payload["value"]),
        ("book.writes", view.get("book.writes", 0) + 1),
    ]


@pytest.fixture
def store() -> StateStore:
    s = StateStore()
    s.register_reducer("position.updated", set_path)
    return s


def test_all_events_apply_in_order_and_watchers_see_one_change_set(store):
    seen = []
    store.watch("pnl.*", lambda path, new, old, seq: seen.append((path, new, old, seq)))
    applied, error = store.apply_each(
        [ev(1, "pnl.daily", 1.0), ev(2, "pnl.daily", 2.0), ev(3, "pnl.net", 5.0)]
    )
    assert (applied, error) == (3, None)
    assert store.version == 3
    assert store.get("pnl") == {"daily": 2.0, "net": 5.0}
    assert store.get("book.writes") == 3
    assert sorted(seen) == [("pnl.daily", 2.0, None, 3), ("pnl.net", 5.0, None, 3)]
    assert store.meta("pnl.daily").seq == 2 and store.meta("pnl").seq == 3


def test_a_failing_event_is_undone_alone_and_stops_the_run(store):
    store.apply(ev(1, "pnl.daily", 1.0))
    before_failure = [ev(2, "pnl.daily", 2.0), ev(3, "trading.positions.P1", {"qty": 75})]
    bad = ev(4, "pnl.daily.oops", 3)  # pnl.daily holds a float: the write cannot go through it
    after = ev(5, "pnl.net", 9.0)
    seen = []
    store.watch("pnl.daily", lambda path, new, old, seq: seen.append((new, old, seq)))
    applied, error = store.apply_each([*before_failure, bad, after])
    assert applied == 2
    assert isinstance(error, StateError)
    assert "seq 4" in str(error) and "unchanged (version 3)" in str(error)
    assert store.version == 3
    assert store.get("pnl") == {"daily": 2.0}  # event 5 was never applied
    assert store.get("trading.positions.P1.qty") == 75
    assert store.get("book.writes") == 3  # the failed event's own counter write is undone
    assert store.meta("pnl.daily").seq == 2 and store.meta("book.writes").seq == 3
    assert seen == [(2.0, 1.0, 3)]
    assert store.metrics()["reducer_failures"] == 1
    # The run can go on from where it stopped, with the failed seq given to the next event.
    assert store.apply_each([ev(4, "pnl.net", 9.0)]) == (1, None)
    assert store.get("pnl") == {"daily": 2.0, "net": 9.0}


def test_a_failing_first_event_changes_nothing(store):
    applied, error = store.apply_each([ev(1, "a.b", 1), ev(2, "a.b.c", 2)][::-1])
    assert applied == 0 and isinstance(error, SequenceError)
    assert "expects seq 1" in str(error)
    assert (
        store.version == 0
        and store.get("a") is None
        and store.state_hash() == StateStore().state_hash()
    )


def test_state_after_each_equals_state_after_one_by_one_apply(store):
    events = [ev(i, f"market.marks.S{i % 3}", {"price": float(i), "n": i}) for i in range(1, 60)]
    other = StateStore()
    other.register_reducer("position.updated", set_path)
    for event in events:
        other.apply(event)
    assert store.apply_each(events) == (59, None)
    assert store.state_hash() == other.state_hash()
    assert store.snapshot().to_bytes() == other.snapshot().to_bytes()  # path metadata too


def test_upcasting_runs_unless_the_caller_says_the_events_are_current():
    topics = TopicRegistry([TopicSpec("position.updated", schema_version=2)])
    migrations = MigrationRegistry(topics=topics)
    migrations.register_event_upcaster(
        "position.updated", 1, lambda p: {**p, "path": "v2." + p["path"]}
    )
    store = StateStore(migrations=migrations)
    store.register_reducer("position.updated", set_path)
    assert store.apply_each([ev(1, "x", 1, version=1)]) == (1, None)
    assert store.apply_each([ev(2, "y", 2, version=2)], upcast=False) == (1, None)
    assert store.get("v2.x") == 1 and store.get("y") == 2
    applied, error = store.apply_each([ev(3, "z", 3, version=3)])
    assert applied == 0 and isinstance(error, SchemaVersionError)
    assert store.version == 2


_PATHS = ("a", "a.b", "a.b.c", "a.b.d", "a.e", "f", "f.g")
# None deletes; every value is a dict, so any path can later be written below it.
_write = st.tuples(
    st.sampled_from(_PATHS), st.one_of(st.none(), st.integers(0, 3).map(lambda n: {"n": n}))
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_write, min_size=1, max_size=40), st.integers(1, 6))
def test_path_metadata_after_one_call_equals_event_by_event(writes, per_event):
    """Sets, deletes and parent/child overwrites in any order: one apply_each call records the
    same per-path metadata as applying the events one at a time."""

    def reducer(view, event):
        return [
            (path, DELETE if value is None else value) for path, value in event.payload["writes"]
        ]

    events = [
        Event(i + 1, (i + 1) * 10, "position.updated", "", {"writes": writes[j : j + per_event]})
        for i, j in enumerate(range(0, len(writes), per_event))
    ]
    one_call, one_by_one = StateStore(), StateStore()
    for store in (one_call, one_by_one):
        store.register_reducer("position.updated", reducer)
    for event in events:
        one_by_one.apply(event)
    assert one_call.apply_each(events) == (len(events), None)
    assert one_call.snapshot().to_bytes() == one_by_one.snapshot().to_bytes()
    for path in _PATHS:
        assert one_call.meta(path) == one_by_one.meta(path)
