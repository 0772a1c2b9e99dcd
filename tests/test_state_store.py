"""StateStore core: paths, apply, sequence rules, atomicity, copy-on-write independence."""

from __future__ import annotations

import threading

import pytest

from tradelab.errors import InvalidInputError, SequenceError, StateError
from tradelab.events import Event
from tradelab.state import DELETE, StateStore


def ev(seq: int, topic: str, payload: dict | None = None, key: str = "", ts: int = 0) -> Event:
    return Event(seq=seq, ts=ts or seq * 1_000_000_000, topic=topic, key=key, payload=payload or {})


def set_path(view, event):
    return [(event.payload["path"], event.payload["value"])]


@pytest.fixture
def store() -> StateStore:
    s = StateStore()
    s.register_reducer("position.updated", set_path)
    return s


def put(store: StateStore, path: str, value) -> None:
    store.apply(ev(store.version + 1, "position.updated", {"path": path, "value": value}))


def test_get_returns_subtree_and_leaf_by_dot_path(store):
    put(store, "trading.positions.P1", {"qty": 75, "avg": 101.5})
    put(store, "pnl.daily", 12.5)
    assert store.get("trading.positions.P1.qty") == 75
    assert store.get("trading.positions") == {"P1": {"qty": 75, "avg": 101.5}}
    assert store.get("pnl.daily") == 12.5
    assert store.get("pnl.weekly", "none") == "none"
    assert "trading.positions.P1" in store
    assert "trading.positions.P2" not in store
    assert store.version == 2


@pytest.mark.parametrize("bad", ["", ".", "a..b", ".a", "a.", "a.*", " a", 5, None])
def test_malformed_path_is_a_state_error_naming_it(store, bad):
    with pytest.raises(StateError, match="state path"):
        store.get(bad)


def test_get_through_a_leaf_is_a_state_error_naming_the_path(store):
    put(store, "pnl.daily", 12.5)
    with pytest.raises(StateError, match=r"'pnl\.daily\.x'.*'pnl\.daily'.*float"):
        store.get("pnl.daily.x")


def test_topic_without_reducer_still_advances_version(store):
    store.apply(ev(1, "market.session_opened"))
    assert store.version == 1
    assert store.snapshot().state == {}


def test_gap_in_seq_is_refused_and_changes_nothing(store):
    put(store, "pnl.daily", 1.0)
    with pytest.raises(SequenceError, match="seq 5 .*gap.*expects seq 2"):
        store.apply(ev(5, "position.updated", {"path": "pnl.daily", "value": 2.0}))
    assert store.version == 1
    assert store.get("pnl.daily") == 1.0


def test_double_apply_is_refused(store):
    event = ev(1, "position.updated", {"path": "pnl.daily", "value": 1.0})
    store.apply(event)
    with pytest.raises(SequenceError, match="already applied"):
        store.apply(event)
    assert store.version == 1


def test_raising_reducer_leaves_store_and_version_unchanged():
    store = StateStore()
    store.register_reducer(
        "trade.executed", lambda v, e: [("trading.positions.P1.qty", 75), ("pnl.realized", 10.0)]
    )

    def broken(view, event):
        assert view.get("trading.positions.P1.qty") == 75  # sees the first reducer's change
        raise ValueError("lot size unknown for NIFTYX")

    store.register_reducer("trade.executed", broken)
    before = store.state_hash()
    with pytest.raises(StateError, match="broken.*trade.executed.*seq 1.*lot size unknown"):
        store.apply(ev(1, "trade.executed"))
    assert store.version == 0
    assert store.state_hash() == before
    assert store.get("trading") is None
    assert store.meta("trading.positions.P1") is None
    assert store.metrics()["reducer_failures"] == 1


def test_reducer_failure_after_in_place_writes_restores_exact_previous_values(store):
    put(store, "market.marks.NIFTY", 100.0)
    put(store, "market.marks.NIFTY", 101.0)  # now written in place on the fast path
    store.register_reducer(
        "mark.updated", lambda v, e: [("market.marks.NIFTY", 102.0), ("market.marks.NIFTY.bad", 1)]
    )
    with pytest.raises(StateError, match="market.marks.NIFTY.*holds a float"):
        store.apply(ev(3, "mark.updated"))
    assert store.get("market.marks.NIFTY") == 101.0
    put(store, "market.marks.NIFTY", 103.0)
    assert store.get("market.marks") == {"NIFTY": 103.0}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1: "x"}, {"a": {1, 2}}, object()])
def test_non_plain_value_from_reducer_is_refused(store, value):
    with pytest.raises(StateError, match="path 'x.y'"):
        put(store, "x.y", value)
    assert store.version == 0


def test_delete_removes_path_and_deleting_absent_path_creates_nothing(store):
    store.register_reducer("signal.cleared", lambda v, e: [(e.payload["path"], DELETE)])
    put(store, "signals.active.S1", {"side": "BUY"})
    store.apply(ev(2, "signal.cleared", {"path": "signals.active.S1"}))
    assert store.get("signals.active") == {}
    store.apply(ev(3, "signal.cleared", {"path": "nowhere.at.all"}))
    assert store.get("nowhere") is None


def test_batch_is_atomic_when_a_later_event_fails(store):
    put(store, "pnl.daily", 1.0)
    events = [
        ev(2, "position.updated", {"path": "pnl.daily", "value": 2.0}),
        ev(3, "position.updated", {"path": "trading.positions.P1", "value": {"qty": 1}}),
        ev(4, "position.updated", {"path": "pnl.daily.oops", "value": 3}),
    ]
    with pytest.raises(StateError):
        store.apply_batch(events)
    assert store.version == 1
    assert store.get("pnl.daily") == 1.0
    assert store.get("trading") is None
    store.apply_batch(events[:2])
    assert store.version == 3
    assert store.get("trading.positions.P1.qty") == 1


def test_batch_with_gap_is_refused_whole(store):
    with pytest.raises(SequenceError):
        store.apply_batch([ev(1, "market.bar"), ev(3, "market.bar")])
    assert store.version == 0


def test_values_handed_out_never_change_afterwards(store):
    put(store, "trading.positions.P1", {"qty": 75, "greeks": {"delta": 0.5}})
    put(store, "trading.positions.P1.greeks.delta", 0.6)  # in place: nobody has seen P1 yet
    seen = store.get("trading.positions.P1")
    put(store, "trading.positions.P1.greeks.delta", 0.7)
    put(store, "trading.positions.P1.qty", 150)
    assert seen == {"qty": 75, "greeks": {"delta": 0.6}}
    snap = store.snapshot()
    put(store, "trading.positions.P1.greeks.delta", 0.8)
    assert snap.state["trading"]["positions"]["P1"] == {"qty": 150, "greeks": {"delta": 0.7}}
    assert store.get("trading.positions.P1") == {"qty": 150, "greeks": {"delta": 0.8}}


def test_reducer_reusing_a_node_it_read_does_not_alias_two_paths():
    store = StateStore()
    store.register_reducer("position.updated", set_path)
    # Copy a position read through the view to another path, then keep changing the original.
    store.register_reducer(
        "position.closed",
        lambda v, e: [
            ("trading.closed.P1", v.get("trading.positions.P1")),
            ("trading.archive", {"all": v.get("trading.positions")}),
        ],
    )
    put(store, "trading.positions.P1", {"qty": 75, "greeks": {"delta": 0.5}})
    put(store, "trading.positions.P1.greeks.delta", 0.55)
    store.apply(ev(3, "position.closed"))
    put(store, "trading.positions.P1.greeks.delta", 0.9)
    put(store, "trading.closed.P1.qty", 0)
    assert store.get("trading.closed.P1") == {"qty": 0, "greeks": {"delta": 0.55}}
    assert store.get("trading.archive.all.P1") == {"qty": 75, "greeks": {"delta": 0.55}}
    assert store.get("trading.positions.P1") == {"qty": 75, "greeks": {"delta": 0.9}}


def test_readers_on_other_threads_always_see_a_whole_version(store):
    # One event writes both legs of a spread; a reader must never see them at different seqs.
    store.register_reducer("mark.updated", lambda v, e: [("book.a", e.seq), ("book.b", e.seq)])
    torn = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            book = store.snapshot().state.get("book")
            if book and book["a"] != book["b"]:
                torn.append(book)
            version, legs = store.get_many(["book.a", "book.b"], default=0)
            if not (legs["book.a"] == legs["book.b"] == version):
                torn.append((version, legs))

    thread = threading.Thread(target=reader)
    thread.start()
    for seq in range(1, 5001):
        store.apply(ev(seq, "mark.updated"))
    stop.set()
    thread.join()
    assert torn == []
    assert store.get("book") == {"a": 5000, "b": 5000}


def test_register_reducers_accepts_single_and_lists_and_rejects_non_callables():
    store = StateStore()
    store.register_reducers({"market.bar": set_path, "mark.updated": [set_path, set_path]})
    assert len(store.reducers_for("mark.updated")) == 2
    with pytest.raises(InvalidInputError, match="must be callable"):
        store.register_reducer("market.bar", "not a function")
    with pytest.raises(InvalidInputError, match="schema_version"):
        StateStore(schema_version=0)


def test_state_hash_is_equal_for_equal_state_built_in_different_orders():
    a, b = StateStore(), StateStore()
    for s in (a, b):
        s.register_reducer("position.updated", set_path)
    put(a, "x.one", 1)
    put(a, "x.two", (1, 2.5))
    put(b, "x.two", [1, 2.5])
    put(b, "x.one", 1)
    assert a.state_hash() == b.state_hash()
    put(b, "x.one", 1.0)  # a float is not the int it equals
    assert a.state_hash() != b.state_hash()


def test_state_hash_is_fixed_across_processes():
    # Pinned value: canonical JSON {"pnl":{"daily":0.30000000000000004},"risk":{"state":"ok"}}
    store = StateStore()
    store.register_reducer("position.updated", set_path)
    put(store, "risk.state", "ok")
    put(store, "pnl.daily", 0.1 + 0.2)
    import hashlib

    expected = hashlib.sha256(
        b'{"pnl":{"daily":0.30000000000000004},"risk":{"state":"ok"}}'
    ).hexdigest()
    assert store.state_hash() == expected
