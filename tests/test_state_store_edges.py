"""the state store's copy-on-write tree, its undo log, apply_each's units
and the path metadata's order in a snapshot."""

from __future__ import annotations

import pytest

from tradelab.errors import StateError
from tradelab.events import Event
from tradelab.state import StateStore


def ev(seq: int, payload: dict, topic: str = "position.updated") -> Event:
    return Event(seq, seq * 1_000, topic, "", payload, False, 1)


def set_path(view, event):
    return [(event.payload["path"], event.payload["value"])]


def test_a_bounded_history_keeps_no_reference_to_the_new_members_payload():
    # tree.adopt: the tree must be the only holder of every container in it.
    def append_bar(view, event):
        return [("bars", (view.get("bars", []) + [event.payload["bar"]])[-3:])]

    s = StateStore()
    s.register_reducer("market.bar", append_bar)
    payloads = []
    for seq in range(1, 5):
        payloads.append({"bar": {"close": float(seq)}})
        s.apply(ev(seq, payloads[-1], "market.bar"))
    payloads[-1]["bar"]["close"] = -1.0  # a bus subscriber mutating the published event
    assert s.get("bars") == [{"close": 2.0}, {"close": 3.0}, {"close": 4.0}]


def test_a_watcher_is_told_of_a_change_below_a_node_it_was_handed_earlier():
    s = StateStore()
    s.register_reducer("position.updated", set_path)
    s.apply(ev(1, {"path": "a.b.c", "value": 1}))
    seen = []
    s.watch("a", lambda path, new, old, seq: seen.append((new, old)))
    s.apply(ev(2, {"path": "a.b.c", "value": 2}))
    assert seen == [({"b": {"c": 2}}, {"b": {"c": 1}})]


def test_a_failed_event_that_wrote_a_path_twice_restores_its_first_value():
    def twice(view, event):
        return [("a.x", 1), ("a.x", 2), ("a.bad", float("nan"))]

    s = StateStore()
    s.register_reducer("position.updated", set_path)
    s.register_reducer("trade.logged", twice)
    s.apply(ev(1, {"path": "a.x", "value": 0}))
    with pytest.raises(StateError):
        s.apply(ev(2, {}, "trade.logged"))
    assert s.version == 1
    assert s.get("a") == {"x": 0}


def test_apply_each_of_two_events_keeps_the_first_when_the_second_fails():
    s = StateStore()
    s.register_reducer("position.updated", set_path)
    applied, error = s.apply_each(
        [ev(1, {"path": "pnl.daily", "value": 1.0}), ev(2, {"path": "pnl.daily.x", "value": 2})]
    )
    assert applied == 1 and isinstance(error, StateError)
    assert s.version == 1
    assert s.get("pnl.daily") == 1.0  # version 1 says event 1 is in the state


def test_apply_each_interrupted_keeps_version_and_state_in_step():
    def interrupt(view, event):
        raise KeyboardInterrupt

    s = StateStore()
    s.register_reducer("position.updated", set_path)
    s.register_reducer("trade.logged", interrupt)
    with pytest.raises(KeyboardInterrupt):
        s.apply_each(
            [
                ev(1, {"path": "pnl.daily", "value": 1.0}),
                ev(2, {"path": "pnl.net", "value": 5.0}),
                ev(3, {}, "trade.logged"),
            ]
        )
    assert (s.version, s.get("pnl")) == (2, {"daily": 1.0, "net": 5.0})
    s.apply(ev(3, {"path": "pnl.daily", "value": 3.0}))  # the run goes on from seq 3


def test_snapshot_bytes_do_not_depend_on_batch_boundaries():
    # meta._plain: "the store records a batch's paths in the order of their last change, so
    # insertion order depends on batch boundaries while the metadata does not."
    events = [
        ev(1, {"path": "p.a", "value": 1}),
        ev(2, {"path": "p.b", "value": 1}),
        ev(3, {"path": "p.a", "value": 2}),
    ]
    one, two = StateStore(), StateStore()
    for s in (one, two):
        s.register_reducer("position.updated", set_path)
    one.apply_batch(events)
    for e in events:
        two.apply(e)
        two.meta("p")  # a read walks the noted changes into the metadata tree
    assert one.snapshot().to_bytes() == two.snapshot().to_bytes()
