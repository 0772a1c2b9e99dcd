"""A notebook that runs an engine and queries its journal in the same process never sees DuckDB's
"different configuration" error: the reader takes the sealed-segments road, then the file."""

import time

import pytest

from tradelab.engine import Engine
from tradelab.errors import InvalidInputError, JournalError
from tradelab.journal import JournalReader
from tradelab.journal.segments import list_segments, segment_dir


def _engine_with_50_marks(path) -> Engine:
    engine = Engine(journal_path=str(path), segment_every_seconds=0.05).start()
    for i in range(50):
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 24000.0 + i})
    engine.flush()
    return engine


def test_reader_in_the_engines_own_process_reads_segments_then_the_file(tmp_path):
    path = tmp_path / "lab.duckdb"
    engine = _engine_with_50_marks(path)
    try:
        reader = JournalReader(path)
        deadline = time.monotonic() + 10
        while reader.count() < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader.source == "segments"
        assert "in use" in reader.note
        marks = reader.events(topic="mark.updated")
        assert [e.payload["price"] for e in marks] == [24000.0 + i for i in range(50)]
    finally:
        engine.stop()
    assert reader.count() == engine.store.version
    assert reader.source == "journal"


def test_a_damaged_segment_is_a_journal_error_naming_it_not_a_duckdb_traceback(tmp_path):
    # inspect on a running engine's journal printed DuckDB's traceback (exit 1), and the
    # reader raised duckdb's own exceptions, leaking the connection it had opened.
    path = tmp_path / "lab.duckdb"
    engine = _engine_with_50_marks(path)
    try:
        deadline = time.monotonic() + 10
        while not list_segments(segment_dir(path)) and time.monotonic() < deadline:
            time.sleep(0.05)
        first = list_segments(segment_dir(path))[0][2]
        first.write_bytes(first.read_bytes()[:100])  # torn
        reader = JournalReader(path)
        for call in (reader.count, reader.events):
            with pytest.raises(JournalError, match="cannot read the sealed segments"):
                call()
        with pytest.raises(InvalidInputError, match="limit must be a whole number"):
            JournalReader(path).events(limit=-1)
    finally:
        engine.stop()
