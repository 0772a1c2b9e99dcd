"""A long as-of replay opens the journal afresh between its chunks: it does not hold the file
for its whole length (an engine could not start on it), nor read segments merged away since."""

from __future__ import annotations

import duckdb
import pytest

from tests import analytics_script as script
from tradelab.analytics import Analytics, asof
from tradelab.engine import Engine
from tradelab.journal.segments import list_segments, parquet_list, segment_dir, segment_name


def _journal(path, batches=4, per_batch=300):
    """A journal whose events are sealed in `batches` segment files; returns its last seq."""
    engine = Engine(journal_path=str(path), writer_process=False, segment_every_seconds=0)
    engine.start()
    try:
        for b in range(batches):
            for i in range(per_batch):
                engine.submit("mark.updated", {"symbol": script.X, "price": 100.0 + (b + i) % 7})
            engine.seal_segments()
    finally:
        engine.stop()  # journals its stop too: the last seq is read after it
    return engine.store.version, engine.store.state_hash()


def _chunks_seen(monkeypatch, each_call):
    """Reopen between every chunk, and call `each_call(con, calls)` after each chunk (`calls`:
    the connections of the chunks before it)."""
    monkeypatch.setattr(asof, "REOPEN_AFTER_S", 0.0, raising=False)
    real = asof.replay_into
    calls = []

    def replay(store, con, **kw):
        replayed = real(store, con, **kw)
        each_call(con, calls)
        calls.append(con)
        return replayed

    monkeypatch.setattr(asof, "replay_into", replay)
    return calls


def test_a_replay_lets_go_of_the_journal_between_its_chunks(tmp_path, monkeypatch):
    path = tmp_path / "j.duckdb"
    last, expected = _journal(path)

    def earlier_closed(con, calls):
        for earlier in calls:  # each chunk's own connection, closed before the next chunk
            with pytest.raises(duckdb.ConnectionException):
                earlier.execute("SELECT 1")

    calls = _chunks_seen(monkeypatch, earlier_closed)
    analytics = Analytics(path, checkpoint_every=250)
    assert analytics.index()["last_seq"] == last  # one pass from seq 0, in chunks of 250
    assert len(calls) == -(-last // 250)
    assert analytics.state_at(last).state_hash() == expected


def test_a_replay_over_segments_merged_meanwhile_reads_the_merged_file(tmp_path, monkeypatch):
    path = tmp_path / "j.duckdb"
    last, expected = _journal(path)
    path.unlink()  # the segments are what is read, as beside a running engine
    segments = list_segments(segment_dir(path))
    assert len(segments) > 1

    def merge_after_first(con, calls):
        if calls:  # after the first chunk only
            return
        # The sealer's merge: one file for the range, the small ones deleted.
        merged = segment_dir(path) / segment_name(segments[0][0], segments[-1][1])
        duckdb.execute(
            f"COPY (SELECT * FROM read_parquet({parquet_list(segments)}) ORDER BY seq) "
            f"TO '{merged}' (FORMAT parquet)"
        )
        for _, _, file in segments:
            file.unlink()

    _chunks_seen(monkeypatch, merge_after_first)
    analytics = Analytics(path, checkpoint_every=250)
    assert analytics.index()["last_seq"] == last
    assert analytics.state_at(last).state_hash() == expected
