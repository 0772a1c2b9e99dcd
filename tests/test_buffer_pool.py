"""The journal writer process keeps no DuckDB cache: its buffer pool is trimmed after each
checkpoint (tradelab.journal.buffer_pool)."""

from __future__ import annotations

import threading
import time

import duckdb
import pytest

from tradelab.events import Event, encode_payload
from tradelab.journal import Journal
from tradelab.journal.buffer_pool import BufferPoolLimit
from tradelab.journal.wire import WriterSettings
from tradelab.journal.writer_setup import build_writer


def _duckdb_mb(con: duckdb.DuckDBPyConnection) -> float:
    return con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0][0] / (
        1 << 20
    )


def _limit_mb(con: duckdb.DuckDBPyConnection) -> float:
    # DuckDB answers e.g. '488.2 MiB' for '512MB'
    text = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    number, unit = text.split()
    return float(number) * {"MiB": 1.0, "GiB": 1024.0, "KiB": 1 / 1024}[unit]


@pytest.fixture
def con(tmp_path):
    con = duckdb.connect(str(tmp_path / "cache.duckdb"))
    con.execute("CREATE TABLE t (n BIGINT, s VARCHAR)")
    yield con
    con.close()


def _fill_and_checkpoint(con: duckdb.DuckDBPyConnection) -> None:
    """~40 MB written by four checkpoints (text that does not compress: md5s)."""
    for first in range(0, 800_000, 200_000):
        con.execute(
            "INSERT INTO t SELECT range, md5(range::VARCHAR) || md5((range + 1)::VARCHAR) "
            "|| md5((range + 2)::VARCHAR) FROM range(?, ?)",
            [first, first + 200_000],
        )
        con.execute("CHECKPOINT")


def test_a_trim_evicts_the_blocks_a_checkpoint_left_cached_and_restores_the_limit(con):
    pool = BufferPoolLimit(con, limit_mb=512, trim_mb=8)
    _fill_and_checkpoint(con)
    assert _duckdb_mb(con) > 30  # the blocks just written stay cached under a 512 MB limit
    assert pool.trim(con.cursor())
    assert _duckdb_mb(con) <= 8
    assert 480 < _limit_mb(con) <= 512  # the headroom is back for the next segment or snapshot
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(800000,)]  # evicted, not lost
    assert (pool.trims, pool.trims_skipped) == (1, 0)


def test_the_default_trim_leaves_none_of_the_tables_blocks_cached(con):
    pool = BufferPoolLimit(con, limit_mb=512)
    _fill_and_checkpoint(con)
    con.execute("SELECT sum(length(s)) FROM t").fetchall()  # a reader loads the table's blocks
    assert _duckdb_mb(con) > 30
    assert pool.trim(con.cursor())
    # A few MB left cached is what a writer process kept through every trim under a flood.
    assert _duckdb_mb(con) <= 1
    assert con.execute("SELECT count(*) FROM t").fetchall() == [(800000,)]


def test_no_trim_while_a_copy_holds_the_pool(con):
    pool = BufferPoolLimit(con, limit_mb=512, trim_mb=8)
    _fill_and_checkpoint(con)
    holding, release = threading.Event(), threading.Event()

    def copy() -> None:
        with pool.in_use():
            holding.set()
            release.wait(10)

    sealer = threading.Thread(target=copy)
    sealer.start()
    holding.wait(10)
    try:
        assert not pool.trim(con.cursor())  # skipped at once: the writer thread never waits
        assert _duckdb_mb(con) > 30
    finally:
        release.set()
        sealer.join()
    assert pool.trim(con.cursor()) and _duckdb_mb(con) <= 8
    assert (pool.trims, pool.trims_skipped) == (1, 1)


def test_the_limit_rises_for_large_snapshots_and_never_falls(con):
    pool = BufferPoolLimit(con, limit_mb=64)
    pool.fit(200)
    pool.fit(100)
    assert pool.limit_mb == 200 and 180 < _limit_mb(con) <= 200
    pool.trim(con.cursor())
    assert 180 < _limit_mb(con) <= 200


class _RefusingCursor:
    """DuckDB refuses a lower limit when more than that is pinned."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, sql: str):
        self.statements.append(sql)
        raise duckdb.OutOfMemoryException("could not free up enough memory for the new limit")


def test_a_trim_duckdb_refuses_is_counted_and_changes_nothing(con):
    pool = BufferPoolLimit(con, limit_mb=512, trim_mb=8)
    refusing = _RefusingCursor()
    assert not pool.trim(refusing)
    assert refusing.statements == ["SET memory_limit = '8MB'"]  # the limit was never lowered
    assert (pool.trims, pool.trims_skipped) == (0, 1)
    assert 480 < _limit_mb(con) <= 512


def test_bad_limits_are_refused_by_name(con):
    with pytest.raises(ValueError, match="must be positive"):
        BufferPoolLimit(con, limit_mb=0)


def test_the_writer_trims_after_each_busy_checkpoint(tmp_path):
    path = tmp_path / "j.duckdb"
    journal = Journal(path)
    pool = BufferPoolLimit(journal.con, limit_mb=512)
    settings = WriterSettings(
        str(path),
        last_seq=0,
        next_snapshot_id=1,
        checkpoint_idle_seconds=3600.0,  # only the WAL bound checkpoints
        checkpoint_wal_bytes=256 << 10,
        segment_every_events=2_000,
    )
    writer, sealer = build_writer(journal.con, journal.tailmark, settings, buffer_pool=pool)
    sealer.start()
    writer.start()
    try:
        payload = {"symbol": "NIFTY", "note": "x" * 200}
        for first in range(1, 12_001, 400):
            events = [Event(s, s, "mark.updated", "", payload) for s in range(first, first + 400)]
            writer.append(events, [encode_payload(e.payload) for e in events])
            writer.flush(timeout=30)
            time.sleep(0.01)  # the WAL's size is looked at every WAL_STAT_SECONDS
        sealer.seal_now()
    finally:
        writer.stop()  # joins the writer thread: its counts are final
        sealer.stop()
        journal.close()
    assert writer.checkpoints.busy_checkpoints >= 1 and sealer.segments_written >= 1
    # each busy checkpoint trimmed, or found the sealer copying; the stop's forced one did not
    assert pool.trims + pool.trims_skipped == writer.checkpoints.busy_checkpoints
    assert pool.trims >= 1
