"""What every journal writer layout must do: the writer thread in the engine's process and the
writer process behind its pipe run the same tests on a real DuckDB file."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tradelab.errors import JournalError
from tradelab.events import Event, encode_payload
from tradelab.journal import Journal, JournalReader, wire
from tradelab.journal.checkpoint import wal_path
from tradelab.journal.wire import EncodedBatch, EncodedSnapshot, WriterSettings, encode_events
from tradelab.journal.writer_client import ProcessJournalWriter
from tradelab.journal.writer_setup import build_writer

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


def _start_with(path, layout: str, **settings):
    """A writer started on `path` with WriterSettings beyond what Journal.start_writer exposes."""
    journal = Journal(path)
    last_seq, next_id = journal.last_seq, 1
    if layout == "process":
        journal.close()
        writer = ProcessJournalWriter().start(
            WriterSettings(str(path), last_seq=last_seq, next_snapshot_id=next_id, **settings)
        )
        return None, writer
    writer, _ = build_writer(
        journal.con,
        journal.tailmark,
        WriterSettings(str(path), last_seq=last_seq, next_snapshot_id=next_id, **settings),
    )
    writer.start()
    return journal, writer


def _stop(journal, writer) -> None:
    writer.stop()
    if journal is not None:
        journal.con.close()
        journal.lock.release()  # its writer was built here, so Journal.close() is not called


@pytest.mark.parametrize("layout", LAYOUTS)
def test_wal_is_checkpointed_on_its_size_bound_while_the_writer_is_never_idle(tmp_path, layout):
    path = tmp_path / "j.duckdb"
    # Idle checkpoints are out of reach (an hour), so only the WAL bound can checkpoint; the
    # bound goes through Journal.start_writer, as the engine passes its config.
    journal, writer = _start(
        path,
        layout,
        group_commit_ms=1.0,
        checkpoint_idle_seconds=3600.0,
        checkpoint_wal_bytes=256 << 10,
    )
    wal = wal_path(path)
    biggest = 0
    try:
        seq = 0
        payload = {"symbol": "NIFTY", "note": "x" * 200}
        for _ in range(60):  # ~3 MB of events, a group every ~20 ms: never idle for long
            events = [Event(seq + i + 1, seq + i, "mark.updated", "", payload) for i in range(200)]
            seq += 200
            writer.append(events, [encode_payload(e.payload) for e in events])
            writer.flush(timeout=30)
            time.sleep(0.02)
            biggest = max(biggest, wal.stat().st_size if wal.exists() else 0)
    finally:
        journal.close()
    # The bound is looked at every WAL_STAT_SECONDS (~5 groups here), so it is passed by what
    # arrives in between; without busy checkpoints the WAL would hold all ~3 MB.
    assert biggest < 1536 << 10, f"WAL reached {biggest} bytes"
    if layout == "thread":
        assert writer.checkpoints.busy_checkpoints >= 1
    reopened = Journal(path)
    try:
        assert reopened.last_seq == seq and reopened.check.damage is None
    finally:
        reopened.close()


class _Snapshots:
    """Records what each snapshot listener was told, and when."""

    def __init__(self) -> None:
        self.told: list = []
        self.done = threading.Event()

    def __call__(self, info) -> None:
        self.told.append(info)
        self.done.set()


def _break_writer(writer) -> None:
    """Queue a batch that cannot be committed (it holds fewer events than its seq range says),
    the way a damaged frame would: the writer fails on its next group."""
    body = encode_events([Event(1, 1, "mark.updated", "", {"price": 1.0})], [b'{"price":1.0}'])
    if isinstance(writer, ProcessJournalWriter):
        writer._send(wire.EVENTS, wire.EVENTS_HEAD.pack(1, 2, False), body)
    else:
        writer.append_encoded(EncodedBatch(1, 2, body))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_writer_failure_fails_waiting_snapshots_and_flushes_with_its_error(tmp_path, layout):
    # A long window: the broken batch waits, so the snapshot and the flush queue up behind it.
    journal, writer = _start(tmp_path / "j.duckdb", layout, group_commit_ms=2_000.0)
    try:
        _break_writer(writer)
        queued = _Snapshots()
        writer.write_snapshot(EncodedSnapshot(2, 1, b"{}"), queued)
        with pytest.raises(JournalError, match="holds 1 events"):
            writer.flush(timeout=30)
        assert queued.done.wait(10), "a snapshot queued before the failure was never answered"
        assert isinstance(queued.told[0], JournalError)
        # After the failure nothing waits for an answer that cannot come.
        later = _Snapshots()
        writer.write_snapshot(EncodedSnapshot(3, 1, b"{}"), later)
        assert later.done.wait(10) and isinstance(later.told[0], JournalError)
        with pytest.raises(JournalError, match="holds 1 events"):
            writer.flush(timeout=30)
    finally:
        journal.close()


def test_flush_waits_for_every_snapshot_queued_before_it_under_concurrent_flushes(tmp_path):
    """The writer's count of unwritten snapshots is kept by one thread per side: flushes racing
    with snapshot writes never return early and never hang."""
    journal, writer = _start(tmp_path / "j.duckdb", "thread", group_commit_ms=1.0)
    written: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def flusher() -> None:
        while not stop.is_set():
            try:
                writer.flush(timeout=30)
            except BaseException as exc:  # surfaced below
                errors.append(exc)
                return

    threads = [threading.Thread(target=flusher) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for seq in range(1, 201):
            writer.write_snapshot(EncodedSnapshot(seq, 1, b"{}"), lambda info: written.append(1))
            if seq % 20 == 0:
                writer.flush(timeout=30)
                assert len(written) == seq  # every snapshot queued before the flush is written
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        journal.close()
    assert errors == []


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_says_where_it_runs_and_which_process_holds_the_file(tmp_path, layout):
    path = tmp_path / "j.duckdb"
    journal, writer = _start(path, layout)
    try:
        expected_pid = os.getpid() if layout == "thread" else writer.pid
        assert writer.location == layout and writer.pid == expected_pid
        assert writer.describe() == {"writer": layout, "writer_pid": expected_pid}
    finally:
        journal.close()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_seal_right_after_flush_covers_every_flushed_event(tmp_path, layout):
    # The sealer hears of a group after its commit; a flush that returned at the commit let a
    # seal that followed at once miss the last group.
    journal, writer = _start(tmp_path / "j.duckdb", layout, segments=True, segment_every_seconds=0)
    try:
        for first in range(1, 200, 10):
            events = [
                Event(s, s, "mark.updated", "", {"price": 1.0}) for s in range(first, first + 10)
            ]
            writer.append(events, [encode_payload(e.payload) for e in events])
            assert writer.flush(timeout=10) == first + 9
            assert journal.seal_segments(timeout=30) == first + 9
    finally:
        journal.close()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_reports_its_pending_bound_and_high_water(tmp_path, layout):
    journal, writer = _start(tmp_path / "j.duckdb", layout, max_pending_events=500)
    try:
        events = [Event(s, s, "mark.updated", "", {"price": 1.0}) for s in range(1, 121)]
        writer.append(events, [encode_payload(e.payload) for e in events])
        writer.flush(timeout=30)
        metrics = writer.pending_metrics()
        assert metrics["writer_max_pending_events"] == 500
        assert 1 <= metrics["writer_pending_high_water"] <= 120
        assert metrics["writer_backpressure_waits"] == 0  # never full
    finally:
        journal.close()
