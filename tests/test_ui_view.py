"""The console's coalescing view: bounded rings, sections coalesced per version, resync."""

from __future__ import annotations

from tradelab.events import Event
from tradelab.ui.view import SharedView


def _event(seq: int, topic: str = "mark.updated", key: str = "NIFTY") -> Event:
    return Event(seq, 1_700_000_000_000_000_000 + seq, topic, key, {"price": float(seq)})


def test_many_events_on_one_section_are_one_change():
    view = SharedView(tape_size=100)
    for seq in range(1, 51):
        view.on_event(_event(seq))
    changes = view.changes_since(0)
    assert changes.version == 50 and changes.last_seq == 50
    assert changes.sections == {"positions", "header", "marks"}  # what a mark changes, once each
    assert [row.seq for row in changes.tape] == list(range(1, 51))
    again = view.changes_since(changes.version)
    assert again.sections == frozenset() and again.tape == ()


def test_only_sections_touched_since_a_version_are_reported():
    view = SharedView()
    view.on_event(_event(1))
    seen = view.changes_since(0).version
    view.on_event(_event(2, "order.accepted", "o-1"))
    changes = view.changes_since(seen)
    assert changes.sections == {"orders"}
    assert [(r.seq, r.topic, r.key) for r in changes.tape] == [(2, "order.accepted", "o-1")]


def test_tape_ring_is_bounded_and_counts_what_it_dropped():
    view = SharedView(tape_size=10, topic_rows=5)
    for seq in range(1, 26):
        view.on_event(_event(seq))
    assert view.metrics()["tape_len"] == 10
    assert view.metrics()["tape_dropped"] == 15
    changes = view.changes_since(3)  # fell behind the ring: starts again from it
    assert changes.resync
    assert [row.seq for row in changes.tape] == list(range(16, 26))


def test_a_slow_reader_gets_the_newest_rows_only_and_is_told_to_resync():
    view = SharedView(tape_size=100, topic_rows=5)
    for seq in range(1, 41):
        view.on_event(_event(seq))
    changes = view.changes_since(0, max_rows=5)
    assert changes.resync
    assert [row.seq for row in changes.tape] == [36, 37, 38, 39, 40]


def test_critical_events_outlive_the_tape_ring_for_a_new_session():
    view = SharedView(tape_size=5, alert_size=3, topic_rows=3)
    view.on_event(_event(1, "trade.executed", "t-1"))
    for seq in range(2, 20):
        view.on_event(_event(seq))
    changes = view.changes_since(0)
    assert [r.seq for r in changes.alerts] == [1]
    assert changes.tape[0].topic == "trade.executed"  # brought back from its topic's ring
    assert [r.seq for r in changes.tape[1:]] == [15, 16, 17, 18, 19]


def test_a_new_session_gets_the_last_rows_of_every_topic_after_a_flood_of_marks():
    view = SharedView(tape_size=10, topic_rows=4)
    seq = 0
    for order in range(6):  # six orders' events, then marks enough to flush the tape ring
        for topic in ("order.submitted", "order.accepted", "order.filled"):
            seq += 1
            view.on_event(_event(seq, topic, f"o-{order}"))
    for _ in range(100):
        seq += 1
        view.on_event(_event(seq))
    changes = view.changes_since(0, max_rows=10)
    assert changes.resync
    orders = [(r.topic, r.key) for r in changes.tape if r.topic.startswith("order.")]
    # The newest four of each order topic (the last four orders), oldest first.
    assert orders == [
        (topic, f"o-{order}")
        for order in range(2, 6)
        for topic in ("order.submitted", "order.accepted", "order.filled")
    ]
    assert [r.seq for r in changes.tape if r.topic == "mark.updated"] == list(range(109, 119))
    assert [r.version for r in changes.tape] == sorted(r.version for r in changes.tape)
    metrics = view.metrics()  # bounded: four rows of each of the four topics
    assert (metrics["topic_rings"], metrics["topic_rows_len"], metrics["topic_rows"]) == (4, 16, 4)


def test_ticks_update_feed_health_without_touching_the_tape():
    view = SharedView()
    view.on_event(Event(0, 1, "market.tick", "NIFTY", {"price": 1.0}))
    changes = view.changes_since(0)
    assert changes.last_tick_ns > 0 and changes.tape == () and changes.version == 0


def test_a_session_that_missed_one_dropped_row_is_told_to_resync():
    view = SharedView(tape_size=10, topic_rows=5)
    for seq in range(1, 12):  # 11 rows into a ring of 10: row 1 is dropped
        view.on_event(_event(seq))
    changes = view.changes_since(0)
    assert changes.resync
    none_missed = view.changes_since(1)  # a session that saw row 1 missed nothing
    assert not none_missed.resync


def test_a_daily_loss_breach_is_an_alert_that_outlives_the_tape():
    view = SharedView(tape_size=5, alert_size=3, topic_rows=3)
    view.on_event(_event(1, "risk.daily_loss_breached", "risk"))
    for seq in range(2, 20):
        view.on_event(_event(seq))
    assert [(r.seq, r.topic) for r in view.changes_since(0).alerts] == [
        (1, "risk.daily_loss_breached")
    ]
