"""A notebook that runs an engine and queries its journal in the same process never sees DuckDB's
"different configuration" error: the reader takes the sealed-segments road, then the file."""

import time

from tradelab.engine import Engine
from tradelab.journal import JournalReader


def test_reader_in_the_engines_own_process_reads_segments_then_the_file(tmp_path):
    path = tmp_path / "lab.duckdb"
    engine = Engine(journal_path=str(path), segment_every_seconds=0.05).start()
    try:
        for i in range(50):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 24000.0 + i})
        engine.flush()
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
