"""ReactiveState's change test and restart refusal; MigrationRegistry's
event version without a topic registry and its copy of the payload."""

from __future__ import annotations

import pytest

from tradelab.errors import LifecycleError
from tradelab.events import Event
from tradelab.state import MigrationRegistry, StateStore
from tradelab.state.reactive import ReactiveState


def _store():
    s = StateStore()
    s.register_reducer("position.updated", lambda view, e: [("flag", e.payload["v"])])
    return s


def push(s, value):
    s.apply(Event(s.version + 1, 1, "position.updated", "", {"v": value}))


def test_a_value_that_changes_type_but_compares_equal_reaches_the_param():
    s = _store()
    push(s, 1)
    reactive = ReactiveState(s)
    assert reactive.value("flag") == 1
    push(s, True)  # 1 == True, but the store now holds a bool
    reactive.refresh_now()
    assert reactive.value("flag") is True


def test_a_stopped_reactive_state_refuses_to_start_again():
    reactive = ReactiveState(_store(), rate_hz=50)
    reactive.start()
    reactive.stop()
    with pytest.raises(LifecycleError):
        reactive.start()


def test_an_event_upcaster_runs_without_a_topic_registry():
    migrations = MigrationRegistry()
    migrations.register_event_upcaster("trade.logged", 1, lambda p: {**p, "fee": 0.0})
    assert migrations.event_version("trade.logged") == 2
    old = Event(1, 1, "trade.logged", "", {"qty": 75}, False, 1)
    new = migrations.upcast_event(old)
    assert (new.schema_version, new.payload) == (2, {"qty": 75, "fee": 0.0})


def test_an_upcaster_mutating_its_argument_leaves_the_original_event_alone():
    def in_place(payload):
        payload["fee"] = payload.pop("cost")
        return payload

    migrations = MigrationRegistry()
    migrations.register_event_upcaster("trade.logged", 1, in_place)
    old = Event(1, 1, "trade.logged", "", {"cost": 20.0}, False, 1)
    migrations.upcast_event(old)
    assert old.payload == {"cost": 20.0}  # "upcasters may mutate their argument safely"
