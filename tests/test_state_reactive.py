"""ReactiveState: values reach params after refresh, updates are rate-bounded, Panel binds work."""

from __future__ import annotations

import threading
import time

import panel as pn
import param
import pytest

from tradelab.errors import StateError
from tradelab.events import Event
from tradelab.state import StateStore
from tradelab.state.reactive import ReactiveState


def set_pnl(view, event):
    return [("pnl.daily", event.payload["pnl"]), ("pnl.events", event.seq)]


@pytest.fixture
def store() -> StateStore:
    s = StateStore()
    s.register_reducer("pnl.session_reset", set_pnl)
    return s


def push(store, pnl):
    seq = store.version + 1
    store.apply(Event(seq=seq, ts=seq, topic="pnl.session_reset", key="", payload={"pnl": pnl}))


def test_values_arrive_only_after_refresh(store):
    reactive = ReactiveState(store)
    parameter = reactive.parameter("pnl.daily")
    push(store, 125.0)
    assert reactive.value("pnl.daily") is None
    assert reactive.refresh_now() == 1
    assert reactive.value("pnl.daily") == 125.0
    assert parameter.owner.seq == 1
    assert reactive.version == 1
    assert reactive.refresh_now() == 0  # version did not move: nothing read, nothing set


def test_binding_reads_the_current_value_immediately(store):
    push(store, 5.0)
    reactive = ReactiveState(store)
    assert reactive.value("pnl.daily") == 5.0
    with pytest.raises(StateError, match="malformed"):
        reactive.bind("pnl..daily")


def test_rx_expression_follows_the_path(store):
    reactive = ReactiveState(store)
    doubled = reactive.rx("pnl.daily").rx.pipe(lambda v: (v or 0.0) * 2)
    push(store, 10.5)
    reactive.refresh_now()
    assert doubled.rx.value == 21.0


def test_pn_bind_and_param_depends_fire_once_per_refresh_not_per_event(store):
    reactive = ReactiveState(store)
    seen = []
    pn.bind(lambda pnl: seen.append(pnl), reactive.parameter("pnl.daily"), watch=True)

    renders = []

    @param.depends(reactive.parameter("pnl.events"), watch=True)
    def redraw(events):
        renders.append(events)

    for i in range(1_000):
        push(store, float(i))
    reactive.refresh_now()
    assert seen == [999.0]
    assert renders == [1_000]
    markdown = pn.pane.Markdown(pn.bind(lambda v: f"P&L {v:.1f}", reactive.parameter("pnl.daily")))
    push(store, 42.0)
    reactive.refresh_now()
    assert markdown.object == "P&L 42.0"


def test_background_refresh_is_rate_bounded_while_events_stream(store):
    sets = []
    with ReactiveState(store, rate_hz=20) as reactive:
        reactive.bind("pnl.daily").param.watch(lambda e: sets.append(e.new), "value")
        started = time.monotonic()
        for i in range(10_000):
            push(store, float(i))
        deadline = time.monotonic() + 5
        while reactive.value("pnl.daily") != 9_999.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    assert reactive.value("pnl.daily") == 9_999.0
    assert not reactive.running
    # at most one set per 50 ms tick (+1 for the tick already under way)
    assert 1 <= len(sets) <= elapsed * 20 + 2
    assert len(sets) < 100


def test_refresher_thread_is_the_only_setter(store):
    threads = set()
    with ReactiveState(store, rate_hz=50) as reactive:
        reactive.bind("pnl.daily").param.watch(
            lambda e: threads.add(threading.current_thread().name), "value"
        )
        push(store, 1.0)
        deadline = time.monotonic() + 5
        while not threads and time.monotonic() < deadline:
            time.sleep(0.01)
    assert threads == {"tradelab-reactive-state"}


def test_a_face_nobody_holds_any_more_ends_its_refresher_thread(store):
    # A notebook cell `live = ReactiveState(lab.store).start()` run again left the old face's
    # thread refreshing (and holding the store) for the kernel's life: one more per re-run.
    import gc

    def refreshers():
        return [t for t in threading.enumerate() if t.name == "tradelab-reactive-state"]

    before = len(refreshers())
    live = ReactiveState(store, rate_hz=50).start()
    value = ReactiveState(store, rate_hz=50).start().bind("pnl.daily")  # a view holds the value
    assert len(refreshers()) == before + 2
    live = ReactiveState(store, rate_hz=50).start()  # the cell run again: the first is let go
    gc.collect()
    deadline = time.monotonic() + 5
    while len(refreshers()) > before + 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(refreshers()) == before + 2
    push(store, 7.0)
    deadline = time.monotonic() + 5
    while value.value != 7.0 and time.monotonic() < deadline:  # a face still held refreshes
        time.sleep(0.02)
    assert value.value == 7.0
    live.stop()
    value = None
    gc.collect()
    deadline = time.monotonic() + 5
    while len(refreshers()) > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(refreshers()) == before


def test_an_unbound_path_is_no_longer_refreshed(store):
    live = ReactiveState(store)
    value = live.bind("pnl.daily")
    push(store, 1.0)
    live.refresh_now()
    assert value.value == 1.0 and live.paths == ("pnl.daily",)
    live.unbind("pnl.daily")
    push(store, 2.0)
    live.refresh_now()
    assert value.value == 1.0 and live.paths == ()
    assert live.value("pnl.daily") == 2.0  # bound afresh, it reads the store's value now
