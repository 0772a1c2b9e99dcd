"""Replay's read path (payloads decoded a whole batch at a time) and its failure behaviour."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradelab.errors import StateError
from tradelab.events import Event, encode_payload
from tradelab.journal import Journal, replay_into
from tradelab.journal.event_rows import rows_to_events
from tradelab.state import StateStore

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
LEAF = st.one_of(
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.none(),
    st.booleans(),
)
PAYLOAD = st.dictionaries(
    TEXT,
    st.recursive(
        LEAF,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)
        ),
        max_leaves=6,
    ),
    max_size=5,
)


def _append(writer, events: list[Event], tickets=None) -> None:
    """Hand events to a writer as the kernel does: each payload encoded once, beside it."""
    writer.append(events, [encode_payload(e.payload) for e in events], tickets)


def write_journal(path, events: list[Event]) -> None:
    journal = Journal(path)
    try:
        writer = journal.start_writer(
            group_commit_ms=1.0,
            max_group_events=10_000,
            keep_snapshots=2,
            checkpoint_idle_seconds=0.2,
            segments=False,
        )
        _append(writer, events)
        assert writer.flush(timeout=10) == len(events)
    finally:
        journal.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(PAYLOAD, TEXT), min_size=1, max_size=40), st.integers(1, 7))
def test_events_read_back_in_batches_equal_those_written(tmp_path_factory, rows, batch_rows):
    path = tmp_path_factory.mktemp("j") / "j.duckdb"
    written = [
        Event(seq, seq * 10, "order.submitted", key, payload, seq % 3 == 0, 1 + seq % 2)
        for seq, (payload, key) in enumerate(rows, 1)
    ]
    write_journal(path, written)
    journal = Journal(path)
    try:
        read = [e for batch in journal.iter_event_batches(batch_rows=batch_rows) for e in batch]
        cursor = journal.con.cursor()
        table = cursor.sql(
            "SELECT payload, schema_version, critical, key, topic, ts, seq FROM events ORDER BY seq"
        ).to_arrow_table()
        cursor.close()
    finally:
        journal.close()
    assert read == written
    assert rows_to_events(table) == written  # a Table, columns in another order


def refuse_order(view, event):
    if event.payload.get("order_id") == "BAD":
        raise ValueError("order BAD cannot be booked")
    return [(f"orders.{event.payload['order_id']}", event.seq)]


def test_replay_stops_just_before_a_failing_event_and_its_error_names_it(tmp_path):
    path = tmp_path / "j.duckdb"
    events = [
        Event(seq, seq, "order.submitted", "", {"order_id": "BAD" if seq == 1234 else f"O{seq}"})
        for seq in range(1, 3001)
    ]
    write_journal(path, events)
    store = StateStore()
    store.register_reducer("order.submitted", refuse_order)
    journal = Journal(path)
    try:
        with pytest.raises(StateError, match=r"seq 1234.*order BAD cannot be booked"):
            replay_into(store, journal.con, batch_rows=500)
    finally:
        journal.close()
    assert store.version == 1233
    assert store.get("orders.O1233") == 1233 and store.get("orders.O1235") is None
