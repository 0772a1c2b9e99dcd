"""Watchers, per-path metadata and staleness, and version-keyed derived reads."""

from __future__ import annotations

import logging

import pytest

from tradelab.errors import InvalidInputError, StateError
from tradelab.events import Event
from tradelab.state import DELETE, StateStore
from tradelab.state.snapshot import StateSnapshot

SECOND = 1_000_000_000


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def changes(view, event):
    return [
        (path, DELETE if value == "<delete>" else value) for path, value in event.payload["changes"]
    ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000.0)


@pytest.fixture
def store(clock) -> StateStore:
    s = StateStore(clock=clock)
    s.register_reducer("position.updated", changes)
    return s


def put(store: StateStore, *pairs, ts_s: float | None = None, topic="position.updated"):
    seq = store.version + 1
    ts = int((ts_s if ts_s is not None else seq) * SECOND)
    store.apply(Event(seq=seq, ts=ts, topic=topic, key="", payload={"changes": list(pairs)}))


def recorder(calls):
    return lambda path, new, old, seq: calls.append((path, new, old, seq))


def test_wildcard_watcher_reports_each_changed_position_with_old_and_new(store):
    calls = []
    store.watch("trading.positions.*", recorder(calls))
    put(store, ("trading.positions.P1", {"qty": 75}), ("trading.positions.P2", {"qty": 50}))
    put(store, ("trading.positions.P1.upnl", 12.5), ("pnl.daily", 3.0))
    assert calls == [
        ("trading.positions.P1", {"qty": 75}, None, 1),
        ("trading.positions.P2", {"qty": 50}, None, 1),
        ("trading.positions.P1", {"qty": 75, "upnl": 12.5}, {"qty": 75}, 2),
    ]


def test_watcher_sees_a_batch_once_with_value_before_and_after_it(store):
    calls = []
    store.watch("pnl.daily", recorder(calls))
    put(store, ("pnl.daily", 1.0))
    events = [
        Event(
            seq=s,
            ts=s * SECOND,
            topic="position.updated",
            key="",
            payload={"changes": [("pnl.daily", float(s))]},
        )
        for s in range(2, 6)
    ]
    store.apply_batch(events)
    assert calls == [("pnl.daily", 1.0, None, 1), ("pnl.daily", 5.0, 1.0, 5)]


def test_watcher_on_a_path_replaced_from_above_is_told(store):
    calls = []
    store.watch("trading.positions.*", recorder(calls))
    put(store, ("trading.positions", {"P1": {"qty": 1}, "P2": {"qty": 2}}))
    calls.clear()
    put(store, ("trading", {"positions": {"P2": {"qty": 2}, "P3": {"qty": 3}}}))
    assert sorted(calls) == [
        ("trading.positions.P1", None, {"qty": 1}, 2),
        ("trading.positions.P3", {"qty": 3}, None, 2),
    ]


def test_watcher_not_called_when_value_did_not_change(store):
    calls = []
    store.watch("risk.state", recorder(calls))
    put(store, ("risk.state", "active"))
    put(store, ("risk.state", "active"), ("risk.other", 1))
    assert len(calls) == 1


def test_failing_watcher_is_isolated_and_does_not_undo_the_change(store, caplog):
    calls = []

    def broken(path, new, old, seq):
        raise RuntimeError("console went away")

    store.watch("pnl.*", broken)
    store.watch("pnl.*", recorder(calls))
    with caplog.at_level(logging.ERROR):
        put(store, ("pnl.daily", 7.0))
    assert store.get("pnl.daily") == 7.0
    assert store.version == 1
    assert calls == [("pnl.daily", 7.0, None, 1)]
    assert store.metrics()["watcher_failures"] == 1
    assert "console went away" in caplog.text


def test_unwatch_stops_calls_and_rolled_back_changes_are_never_reported(store):
    calls = []
    handle = store.watch("pnl.daily", recorder(calls))
    with pytest.raises(StateError):
        put(store, ("pnl.daily", 1.0), ("pnl.daily.bad", 2))
    assert calls == []
    put(store, ("pnl.daily", 1.0))
    handle.unwatch()
    assert not handle.active
    put(store, ("pnl.daily", 2.0))
    assert calls == [("pnl.daily", 1.0, None, 1)]


def test_watcher_values_are_frozen_even_when_later_writes_go_in_place(store):
    seen = []
    store.watch("trading.positions.*", lambda path, new, old, seq: seen.append(new))
    put(store, ("trading.positions.P1", {"qty": 1}))
    put(store, ("trading.positions.P1.qty", 2))
    put(store, ("trading.positions.P1.qty", 3))
    assert seen == [{"qty": 1}, {"qty": 2}, {"qty": 3}]


def test_bad_watch_pattern_and_callback_are_refused(store):
    with pytest.raises(StateError, match="watch pattern 'a.b\\*'"):
        store.watch("a.b*", print)
    with pytest.raises(InvalidInputError, match="callable"):
        store.watch("a.b", 3)


def test_age_uses_event_time_and_injected_clock(store, clock):
    put(store, ("market.marks.NIFTY", 24_000.0), ts_s=990.0)
    assert store.age("market.marks.NIFTY") == pytest.approx(10.0)
    assert store.meta("market.marks.NIFTY").source == "position.updated"
    assert store.meta("market.marks.NIFTY").seq == 1
    assert not store.is_stale("market.marks.NIFTY", max_age=30)
    clock.now = 1_030.0
    assert store.is_stale("market.marks.NIFTY", max_age=30)
    assert store.is_stale("market.marks.BANKNIFTY", max_age=30)  # never set
    assert store.age("market.marks.BANKNIFTY") is None
    with pytest.raises(InvalidInputError, match="max_age"):
        store.is_stale("market.marks.NIFTY", max_age=-1)


def test_parent_age_reflects_newest_change_below_it_and_not_siblings(store, clock):
    put(store, ("trading.positions.P1", {"qty": 1, "upnl": 0.0}), ts_s=900.0)
    put(store, ("trading.positions.P2", {"qty": 1}), ts_s=950.0)
    put(store, ("trading.positions.P1.upnl", 5.0), ts_s=990.0)
    assert store.age("trading") == pytest.approx(10.0)
    assert store.age("trading.positions.P1") == pytest.approx(10.0)
    assert store.age("trading.positions.P2") == pytest.approx(50.0)
    # qty was set as part of the whole P1 at 900 s and never since
    assert store.age("trading.positions.P1.qty") == pytest.approx(100.0)


def test_replacing_a_parent_makes_its_children_as_new_as_the_replacement(store):
    put(store, ("risk.limits.max_loss", 5_000), ts_s=900.0)
    put(store, ("risk", {"limits": {"max_loss": 6_000}}), ts_s=995.0)
    assert store.age("risk.limits.max_loss") == pytest.approx(5.0)
    put(store, ("risk.limits", "<delete>"), ts_s=998.0)
    assert store.age("risk") == pytest.approx(2.0)


def test_metadata_is_unchanged_by_a_failed_event(store):
    put(store, ("pnl.daily", 1.0), ts_s=900.0)
    with pytest.raises(StateError):
        put(store, ("pnl.daily", 2.0), ("pnl.daily.x", 1), ts_s=999.0)
    assert store.meta("pnl.daily").seq == 1


def test_derived_read_recomputes_only_when_version_moves(store):
    derived = store.derived(
        lambda view: sum(p["qty"] for p in view.get("trading.positions", {}).values())
    )
    assert derived() == 0
    put(store, ("trading.positions.P1", {"qty": 75}))
    assert derived() == 75
    assert derived() == 75
    assert derived.computations == 2
    put(store, ("trading.positions.P2", {"qty": 50}))
    assert derived() == 125
    assert derived.computations == 3


def test_metadata_is_the_same_whether_events_come_one_by_one_in_batches_or_are_read_between():
    # Sets wait until the metadata is read (only the last set of each path is walked in); what
    # is read must equal recording every write in order, whatever the batch boundaries and
    # whenever it is read, deletes included.
    import random

    from tradelab.state.meta import MetaTree
    from tradelab.state.paths import parse_path

    rng = random.Random(7)
    paths = ["a", "a.b", "a.b.c", "a.b.d", "a.e", "f", "f.g"]
    probes = [*paths, "a.b.c.x", "zz"]
    events, expected = [], {}
    reference = MetaTree()
    for seq in range(1, 401):
        path, deleted = rng.choice(paths), rng.random() < 0.05
        events.append([(path, "<delete>" if deleted else {"v": seq})])
        reference.record(parse_path(path), (seq, seq * SECOND, "position.updated"), deleted)
        expected[seq] = [reference.lookup(parse_path(p)) for p in probes], reference.to_plain()

    def check(batch: int, read_every: int) -> None:
        s = StateStore()
        s.register_reducer("position.updated", changes)
        for start in range(0, len(events), batch):
            first = s.version + 1
            s.apply_batch(
                Event(first + i, (first + i) * SECOND, "position.updated", "", {"changes": pairs})
                for i, pairs in enumerate(events[start : start + batch])
            )
            if s.version % read_every == 0:
                read = [s.meta(p) for p in probes], s.snapshot().meta
                assert read == expected[s.version], (batch, s.version)

    for batch, read_every in [(1, 1), (1, 40), (3, 3), (7, 7), (50, 50), (400, 400)]:
        check(batch, read_every)


def _marked_at(clock, ts_s: float, price: float) -> StateStore:
    """A store on `clock` whose NIFTY mark was set by an event at `ts_s` (seconds)."""
    store = StateStore(clock=clock)
    store.register_reducer("position.updated", lambda view, e: map(tuple, e.payload["changes"]))
    changes = {"changes": [["market.marks.NIFTY", price]]}
    store.apply(Event(1, int(ts_s * SECOND), "position.updated", "", changes))
    return store


def test_meta_and_age_survive_a_snapshot_round_trip():
    def clock() -> float:
        return 1_000.0

    snap = StateSnapshot.from_bytes(_marked_at(clock, 990, 24_000.0).snapshot().to_bytes())
    restored = StateStore.from_snapshot(snap, clock=clock)
    assert restored.meta("market.marks.NIFTY") is not None
    assert restored.meta("market.marks.NIFTY").seq == 1
    assert restored.age("market.marks.NIFTY") == 10.0
    assert not restored.is_stale("market.marks.NIFTY", max_age=30)
    # and loading into an existing store replaces its metadata too
    other = StateStore(clock=clock)
    other.load_snapshot(snap)
    assert other.meta("market.marks.NIFTY").seq == 1


def test_a_value_exactly_max_age_old_is_not_stale():
    now = {"t": 1_030.0}
    s = _marked_at(lambda: now["t"], 1_000, 1.0)
    assert s.age("market.marks.NIFTY") == 30.0
    assert not s.is_stale("market.marks.NIFTY", max_age=30)
    now["t"] = 1_030.5
    assert s.is_stale("market.marks.NIFTY", max_age=30)
