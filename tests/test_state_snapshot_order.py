"""A snapshot restores the live state exactly, down to the iteration order of every dict; only
the state hash is canonical (order-free)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradelab.errors import StateError
from tradelab.events import Event
from tradelab.state import StateSnapshot, StateStore, canonical_json


def dict_orders(value, where="") -> list[tuple[str, list[str]]]:
    """Every dict's keys in iteration order, by its place in the tree."""
    if isinstance(value, dict):
        out = [(where, list(value))]
        for key, child in value.items():
            out += dict_orders(child, f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [
            item for i, child in enumerate(value) for item in dict_orders(child, f"{where}[{i}]")
        ]
    return []


def set_path(view, event):
    return [(event.payload["path"], event.payload["value"])]


KEY = st.sampled_from(["zeta", "alpha", "mid", "b", "a", "Z", "k10", "k9"])
LEAF = st.one_of(st.integers(-3, 3), st.floats(-1e3, 1e3, allow_nan=False), st.none())
VALUE = st.recursive(
    LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEY, inner, max_size=4)),
    max_leaves=8,
)
WRITE = st.tuples(st.lists(KEY, min_size=1, max_size=3).map(".".join), VALUE)


def build(writes) -> tuple[StateStore, dict]:
    """The store after `writes`, and a plain-dict model of the order Python itself would keep."""
    store = StateStore()
    store.register_reducer("position.updated", set_path)
    model: dict = {}
    for path, value in writes:
        seq = store.version + 1
        try:
            store.apply(Event(seq, seq, "position.updated", "", {"path": path, "value": value}))
        except StateError:
            continue  # a write through a leaf fails and leaves the store unchanged
        *parents, last = path.split(".")
        node = model
        for name in parents:
            node = node.setdefault(name, {})
        node[last] = value
    return store, model


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(WRITE, max_size=25))
def test_snapshot_and_restore_keep_the_iteration_order_of_every_dict(writes):
    live, model = build(writes)
    snapshot = live.snapshot()
    assert dict_orders(snapshot.state) == dict_orders(model)

    restored = StateStore.from_snapshot(StateSnapshot.from_bytes(snapshot.to_bytes()))

    assert dict_orders(restored.snapshot().state) == dict_orders(model)
    assert restored.state_hash() == live.state_hash()


def test_snapshot_hash_is_canonical_while_its_bytes_keep_insertion_order():
    one, _ = build([("book.zeta", 1), ("book.alpha", 2)])
    other, _ = build([("book.alpha", 2), ("book.zeta", 1)])
    assert one.snapshot().sha256() == other.snapshot().sha256() == one.state_hash()
    assert one.snapshot().to_bytes() != other.snapshot().to_bytes()
    assert list(StateSnapshot.from_bytes(one.snapshot().to_bytes()).state["book"]) == [
        "zeta",
        "alpha",
    ]


def test_snapshot_stored_with_sorted_keys_by_older_code_still_loads():
    live, _ = build([("book.zeta", {"y": 1.5, "x": [1, 2]}), ("book.alpha", None)])
    snap = live.snapshot()
    old_bytes = canonical_json(
        {
            "format": "tradelab.state-snapshot/1",
            "seq": snap.seq,
            "schema_version": 1,
            "state": snap.state,
            "meta": snap.meta,
        }
    )

    restored = StateStore.from_snapshot(StateSnapshot.from_bytes(old_bytes))

    assert restored.version == live.version
    assert restored.state_hash() == live.state_hash()
    assert list(restored.get("book")) == ["alpha", "zeta"]
