"""What every journal writer layout must do: the writer thread in the engine's process and the
writer process behind its pipe run the same tests on a real DuckDB file."""

from __future__ import annotations

import pytest

from tradelab.errors import JournalError
from tradelab.events import Event, encode_payload
from tradelab.journal import Journal, JournalReader

LAYOUTS = ["thread", "process"]


def _start(path, layout: str, **kw):
    journal = Journal(path, writer_process=layout == "process")
    opts = dict(
        group_commit_ms=10.0,
        max_group_events=10_000,
        keep_snapshots=5,
        checkpoint_idle_seconds=0.2,
        segments=False,
    )
    opts.update(kw)
    return journal, journal.start_writer(**opts)


def _stored_payloads(path) -> dict[int, str]:
    """seq -> payload text as stored, read once the writer has stopped."""
    reopened = Journal(path)
    try:
        rows = reopened.con.execute("SELECT seq, payload FROM events ORDER BY seq").fetchall()
    finally:
        reopened.close()
    return {seq: payload for seq, payload in rows}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_journaled_payload_is_the_bytes_encoded_at_submit_not_a_later_encoding(tmp_path, layout):
    path = tmp_path / "j.duckdb"
    # A long window: the group is committed well after append returned and the dict changed.
    journal, writer = _start(path, layout, group_commit_ms=300.0)
    try:
        payload = {"symbol": "NIFTY", "price": 101.5}
        events = [
            Event(1, 1_000, "mark.updated", "", payload),
            Event(2, 1_001, "mark.updated", "", {"symbol": "BANKNIFTY", "price": 7.0}),
        ]
        encoded = [encode_payload(e.payload) for e in events]
        # Spacing msgspec would never produce: proves the bytes are stored as given.
        encoded[1] = b'{"symbol": "BANKNIFTY",  "price": 7.0}'
        writer.append(events, encoded)
        payload["price"] = -1.0  # mutated after append returned
        payload["extra"] = True
        assert writer.flush(timeout=10) == 2
    finally:
        journal.close()
    stored = _stored_payloads(path)
    assert stored == {
        1: '{"symbol":"NIFTY","price":101.5}',
        2: '{"symbol": "BANKNIFTY",  "price": 7.0}',
    }
    read = JournalReader(path).events()
    assert [e.payload for e in read] == [
        {"symbol": "NIFTY", "price": 101.5},
        {"symbol": "BANKNIFTY", "price": 7.0},
    ]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_append_with_a_payload_missing_is_refused_naming_both_counts(tmp_path, layout):
    journal, writer = _start(tmp_path / "j.duckdb", layout)
    try:
        events = [Event(1, 1, "mark.updated", "", {"price": 1.0})] * 2
        with pytest.raises(JournalError, match="1 encoded payloads for 2 events"):
            writer.append(events, [b'{"price":1.0}'])
        assert writer.flush(timeout=10) == 0
    finally:
        journal.close()
