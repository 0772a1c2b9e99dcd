"""Segments are read back from the journal by the sealer's own thread: every committed event
lands in exactly one segment, byte for byte as the journal holds it, while groups keep coming."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq

from tradelab.events import Event, encode_payload
from tradelab.journal import Journal
from tradelab.journal.segments import list_segments, segment_dir


def _append(writer, events: list[Event], tickets=None) -> None:
    """Hand events to a writer as the kernel does: each payload encoded once, beside it."""
    writer.append(events, [encode_payload(e.payload) for e in events], tickets)


def _events(first: int, n: int) -> list[Event]:
    return [
        Event(
            seq,
            1_700_000_000_000_000_000 + seq,
            "trade.executed" if seq % 97 == 0 else "mark.updated",
            f"k{seq % 5}",
            {"symbol": "NIFTY", "price": 24000.0 + seq, "legs": [seq, {"x": None}]},
            critical=seq % 97 == 0,
        )
        for seq in range(first, first + n)
    ]


def _sealing_writer(path, every_events: int):
    """A journal and its started writer that seals segments every `every_events` (0: on demand)."""
    journal = Journal(path)
    writer = journal.start_writer(
        group_commit_ms=1.0,
        max_group_events=10_000,
        keep_snapshots=5,
        checkpoint_idle_seconds=0.2,
        segments=True,
        segment_every_events=every_events,
        segment_every_seconds=0,
    )
    return journal, writer


def test_segments_hold_every_committed_event_as_the_journal_does(tmp_path):
    path = tmp_path / "j.duckdb"
    journal, writer = _sealing_writer(path, every_events=700)
    written = _events(1, 3000)
    for i in range(0, 3000, 37):  # many small groups, each reported to the sealer
        _append(writer, written[i : i + 37])
    assert writer.flush(timeout=10) == 3000
    journal.close()  # the sealer seals the rest on stop

    segments = list_segments(segment_dir(path))
    assert segments[0][0] == 1 and segments[-1][1] == 3000
    assert all(
        last + 1 == nxt for (_, last, _), (nxt, _, _) in zip(segments, segments[1:], strict=False)
    )
    assert max(last - first + 1 for first, last, _ in segments) <= 700
    from_segments = [row for _, _, p in segments for row in pq.read_table(p).to_pylist()]
    con = duckdb.connect(str(path), read_only=True)
    from_journal = con.sql("SELECT * FROM events ORDER BY seq").to_arrow_table()
    con.close()
    assert from_segments == from_journal.to_pylist()
    assert [row["seq"] for row in from_segments] == list(range(1, 3001))
    assert from_segments[96]["critical"] is True and from_segments[96]["key"] == "k2"
    assert from_segments[0]["payload"] == '{"symbol":"NIFTY","price":24001.0,"legs":[1,{"x":null}]}'


def test_segment_columns_are_nullable_even_while_no_event_lacked_a_key(tmp_path):
    # Written by DuckDB, a column whose statistics show no NULL yet would be REQUIRED: the
    # journal's segments would then disagree on `key` once a keyless event arrives.
    path = tmp_path / "j.duckdb"
    journal, writer = _sealing_writer(path, every_events=0)
    _append(writer, _events(1, 10))  # every event has a key
    writer.flush(timeout=10)
    assert writer.seal_segments() == 10
    keyless = _events(11, 1)[0]
    _append(writer, [Event(11, keyless.ts, keyless.topic, None, keyless.payload)])
    writer.flush(timeout=10)
    assert writer.seal_segments() == 11
    journal.close()

    schemas = [pq.read_schema(p) for _, _, p in list_segments(segment_dir(path))]
    assert len(schemas) == 2 and schemas[0] == schemas[1]
    assert [(f.name, str(f.type), f.nullable) for f in schemas[0]] == [
        ("seq", "int64", True),
        ("ts", "int64", True),
        ("topic", "string", True),
        ("key", "string", True),
        ("critical", "bool", True),
        ("schema_version", "int32", True),
        ("payload", "string", True),
    ]


def test_a_segment_is_due_every_seconds_after_its_first_event_not_up_to_twice_that(
    tmp_path, monkeypatch
):
    import duckdb

    import tradelab.journal.segments as segments

    now = [100.0]
    monkeypatch.setattr(segments.time, "monotonic", lambda: now[0])
    con = duckdb.connect()
    sealer = segments.SegmentSealer(
        tmp_path, con, sealed_seq=0, journal_last_seq=0, every_events=0, every_seconds=5.0
    )
    assert sealer._wait_seconds() == 5.0  # nothing to seal: a whole interval (or a notify)
    now[0] = 103.0  # the sealer has waited 3 s when the first event comes
    sealer.add(1, 10)
    now[0] = 105.0  # it wakes at its old timeout: 2 s after the event, not due
    assert not sealer._due() and sealer._wait_seconds() == 3.0  # due at 108, not at 110
    now[0] = 108.0
    assert sealer._due()
    con.close()
