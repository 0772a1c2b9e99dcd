"""The journal writer in a process of its own: acknowledgements, syncs, frames and memory."""

from __future__ import annotations

import os
import signal
import threading
import time

import msgspec
import pytest
from payloads import trade

from tests.tmp_engine import _alive, _engine
from tradelab.engine import Engine
from tradelab.errors import JournalError
from tradelab.events import Event, encode_payload
from tradelab.journal import Journal, JournalReader
from tradelab.journal.acklog import acklog_dir, log_files
from tradelab.journal.acklog_read import read_records
from tradelab.journal.wire import EncodedBatch, WriterSettings, encode_events
from tradelab.journal.writer_setup import build_writer


@pytest.mark.parametrize("ack_log", [False, True])
def test_critical_event_is_durable_in_the_writer_process_before_submit_returns(tmp_path, ack_log):
    with _engine(tmp_path, group_commit_ms=1000.0, ack_log=ack_log) as engine:
        writer = engine.journal.writer
        assert writer.pid != os.getpid() and _alive(writer.pid)
        assert engine.metrics()["writer"] == "process"
        assert engine.metrics()["writer_pid"] == writer.pid
        event = engine.submit("trade.executed", trade(1), key="T1")
        assert writer.durable_seq >= event.seq
        if ack_log:  # synced in the ack log; DuckDB gets it within the (long) window
            logged = [
                batch.last_seq
                for path in log_files(acklog_dir(tmp_path / "lab.duckdb"))
                for batch in read_records(path)[0]
            ]
            assert max(logged) >= event.seq
        else:  # its own DuckDB commit
            assert engine.metrics()["events_committed"] >= event.seq
    assert not _alive(writer.pid)
    assert log_files(acklog_dir(tmp_path / "lab.duckdb")) == []  # a clean stop leaves no log
    trades = JournalReader(tmp_path / "lab.duckdb").events(topic="trade.executed")
    assert [e.payload["trade_id"] for e in trades] == ["T1"]


def test_reading_the_journal_in_process_while_the_writer_process_holds_it_is_explained(tmp_path):
    expected = "held by its writer process.*JournalReader"
    with _engine(tmp_path) as engine, pytest.raises(JournalError, match=expected):
        engine.journal.snapshots()


def test_writer_process_seals_segments_without_loading_pyarrow(tmp_path):
    # DuckDB writes the Parquet itself: pyarrow's tables, casts and writer kept memory outside
    # DuckDB's limit and grew the writer process by ~50 MB under a flood (benchmarks/overload.py).
    with _engine(tmp_path) as engine:
        for i in range(100):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 24000.0 + i})
        assert engine.seal_segments() >= 100
        pid = engine.metrics()["writer_pid"]
        with open(f"/proc/{pid}/maps") as maps:
            arrow_libraries = [line for line in maps if "libarrow" in line or "libparquet" in line]
    assert arrow_libraries == []


def _environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as raw:
        pairs = (item.decode().partition("=") for item in raw.read().split(b"\0") if item)
        return {name: value for name, _, value in pairs}


def test_the_writer_process_returns_large_buffers_and_keeps_a_users_malloc_setting(
    tmp_path, monkeypatch
):
    # Without a fixed mmap threshold glibc kept the freed pipe reads and row batches on its heap.
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with _engine(tmp_path) as engine:
        assert _environ(engine.metrics()["writer_pid"])["MALLOC_MMAP_THRESHOLD_"] == "131072"
    assert "MALLOC_MMAP_THRESHOLD_" not in os.environ  # the engine's own process is left alone
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    (tmp_path / "mine").mkdir()
    with _engine(tmp_path / "mine") as engine:
        assert _environ(engine.metrics()["writer_pid"])["MALLOC_MMAP_THRESHOLD_"] == "65536"


def test_encoded_batch_keeps_each_payload_text_exactly():
    events = [
        Event(5, 10, "mark.updated", "", {"symbol": "NIFTY", "price": 0.1 + 0.2}),
        Event(6, 11, "trade.executed", "T1", {"trade_id": "T1", "big": 2**70}, True, 2),
    ]
    batch = EncodedBatch(5, 6, msgspec.json.encode(events))
    rows = batch.rows()
    assert [r[:6] for r in rows] == [
        (5, 10, "mark.updated", "", False, 1),
        (6, 11, "trade.executed", "T1", True, 2),
    ]
    assert [r[6] for r in rows] == [msgspec.json.encode(e.payload).decode() for e in events]
    with pytest.raises(JournalError, match="5..7 holds 2 events"):
        EncodedBatch(5, 7, msgspec.json.encode(events)).rows()


def test_frames_larger_than_the_pipe_arrive_whole_and_in_order():
    from tradelab.journal import wire

    read_fd, write_fd = os.pipe()  # 64 KiB of pipe: the big frame is written in several goes
    big = bytes(range(256)) * 4096  # 1 MiB
    out = wire.FrameWriter(write_fd)
    received: list = []

    def reader() -> None:
        frames_in = wire.FrameBuffer(read_fd, chunk=4096)
        while (frames := frames_in.next_frames()) is not None:
            received.extend(frames)

    thread = threading.Thread(target=reader)
    thread.start()
    out.send(wire.EVENTS, b"head", big)
    out.send(wire.FLUSH, b"7")
    out.send(wire.STOP)
    os.close(write_fd)
    thread.join(10)
    os.close(read_fd)
    assert received == [(wire.EVENTS, b"head" + big), (wire.FLUSH, b"7"), (wire.STOP, b"")]


def test_a_full_pending_queue_makes_the_feeder_wait_until_the_writer_takes_it(tmp_path):
    # The writer thread is not started yet: nothing takes the pending work, as when DuckDB
    # falls behind. The frame reader (here: this test's feeder thread) must wait, not grow it.
    journal = Journal(tmp_path / "j.duckdb")
    writer, _ = build_writer(
        journal.con,
        journal.tailmark,
        WriterSettings(
            str(tmp_path / "j.duckdb"),
            last_seq=0,
            next_snapshot_id=1,
            segments=False,
            max_pending_events=10,
        ),
    )

    def batch(first: int, last: int) -> EncodedBatch:
        events = [Event(s, s, "mark.updated", "", {"price": 1.0}) for s in range(first, last + 1)]
        return EncodedBatch(
            first, last, encode_events(events, [encode_payload(e.payload) for e in events])
        )

    writer.append_batches([batch(1, 6), batch(7, 10)])  # exactly at the bound
    fed = threading.Event()
    feeder = threading.Thread(target=lambda: (writer.append_batches([batch(11, 15)]), fed.set()))
    feeder.start()
    try:
        # Generous: the feeder would be done within microseconds if nothing held it back.
        assert not fed.wait(0.3)
        assert writer.pending_metrics()["writer_pending_high_water"] == 10
        writer.start()  # the writer takes the 10 pending events: room again
        assert fed.wait(30)
        assert writer.flush(timeout=30) == 15
        metrics = writer.pending_metrics()
        assert metrics["writer_backpressure_waits"] == 1
        assert metrics["writer_backpressure_seconds"] > 0
        assert metrics["writer_pending_high_water"] <= 10 + 5  # the bound plus one batch
    finally:
        feeder.join(30)
        writer.stop()
        journal.con.close()
        journal.lock.release()  # its writer was built here, so Journal.close() is not called
    reopened = Journal(tmp_path / "j.duckdb")
    try:
        assert reopened.last_seq == 15
    finally:
        reopened.close()


def test_a_critical_event_is_acknowledged_while_the_writer_process_is_frozen(tmp_path):
    """The ack log is synced in the engine's process: a stalled writer process (DuckDB behind,
    the process descheduled) does not hold a critical submitter, and loses nothing."""
    path = tmp_path / "lab.duckdb"
    engine = _engine(tmp_path, group_commit_ms=5.0).start()
    pid = engine.journal.writer.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        done = threading.Event()

        def submit() -> None:
            for i in range(1, 4):
                engine.submit("trade.executed", trade(i), key=f"T{i}")
            done.set()

        thread = threading.Thread(target=submit)
        thread.start()
        # Generous: without the ack log these acks would wait for the frozen process forever.
        assert done.wait(10.0), "a critical submit waited for the frozen writer process"
        assert engine.metrics()["durable_seq"] >= engine.store.version
        logged = [b.last_seq for p in log_files(acklog_dir(path)) for b in read_records(p)[0]]
        assert max(logged) == engine.store.version
        thread.join()
    finally:
        os.kill(pid, signal.SIGCONT)
    engine.stop()
    trades = JournalReader(path).events(topic="trade.executed")
    assert [e.payload["trade_id"] for e in trades] == ["T1", "T2", "T3"]
    assert log_files(acklog_dir(path)) == []


@pytest.mark.parametrize("size", [16 << 10, 1 << 20])
def test_the_pipe_to_the_writer_process_has_the_configured_size(tmp_path, size):
    # What the pipe holds is what a critical event may wait behind (EngineConfig.writer_pipe_bytes).
    import fcntl

    engine = Engine(journal_path=str(tmp_path / "j.duckdb"), writer_pipe_bytes=size).start()
    try:
        pipe = engine._writer._proc.stdin.fileno()
        assert fcntl.fcntl(pipe, getattr(fcntl, "F_GETPIPE_SZ", 1032)) == size
        engine.submit("trade.executed", trade(1), key="T1")  # and it journals through it
        assert engine.metrics()["durable_seq"] >= engine.store.version
    finally:
        engine.stop()


def test_a_critical_event_the_kernel_thread_processed_is_synced_before_submit_returns(
    tmp_path, monkeypatch
):
    """The kernel releases the submitter with the duty to sync: it returns only once synced."""
    engine = _engine(tmp_path).start()
    try:
        monkeypatch.setattr(engine._kernel, "run_here", lambda item: False)  # always queued
        synced = engine._writer._acklog.log
        for i in range(20):
            event = engine.submit("trade.executed", trade(i), key=f"T{i}")
            assert synced.synced_seq >= event.seq
        assert engine.metrics()["events_processed_by_submitters"] == 0
    finally:
        engine.stop()


def test_a_critical_event_nobody_waits_for_is_synced_by_the_sync_thread(tmp_path):
    """A critical event submitted from a bus handler has no waiter; it is synced all the same."""
    engine = _engine(tmp_path, group_commit_ms=1000.0).start()
    try:
        engine.bus.subscribe(
            "mark.updated",
            lambda event: engine.submit("trade.executed", trade(7), key="T7"),
        )
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 24000.0})
        engine.wait_applied()
        engine.wait_applied()  # the handler's submit is queued behind the first barrier
        acklog = engine._writer._acklog.log
        deadline = time.monotonic() + 10.0
        while acklog.synced_seq < engine.store.version:
            assert time.monotonic() < deadline, "the handler's critical event was never synced"
            time.sleep(0.01)
    finally:
        engine.stop()


def test_the_writer_process_memory_follows_the_snapshot_size(tmp_path):
    """A CHECKPOINT pins a snapshot's block whole: a 24 MB state under a 64 MB limit once
    stopped the writer for good ("failed to pin block"). The limit now follows the snapshots."""
    from tradelab.events import TopicSpec

    engine = _engine(tmp_path, writer_memory_mb=64, checkpoint_idle_seconds=0.1)
    engine.registry.register(TopicSpec("test.blob", description="a large state value"))
    engine.register_reducers(
        {"test.blob": lambda view, event: [(f"blobs.b{event.payload['n']}", event.payload["text"])]}
    )
    engine.start()
    try:
        for n in range(6):  # 24 MB of state, snapshotted after each 4 MB
            engine.submit("test.blob", {"n": n, "text": "x" * (4 << 20)})
            engine.snapshot_now()
        engine.flush()
        assert engine.journal.writer.failed is None
    finally:
        engine.stop()
    blobs = JournalReader(tmp_path / "lab.duckdb").events(topic="test.blob")
    assert [e.payload["n"] for e in blobs] == list(range(6))


def test_the_writer_process_imports_this_tradelab_not_one_in_the_working_directory(
    tmp_path, monkeypatch
):
    # `python -m` put the working directory first on the child's path: run from a checkout of
    # another version, the writer was that version; from beside a tradelab/ folder, it failed.
    impostor = tmp_path / "tradelab"
    impostor.mkdir()
    (impostor / "__init__.py").write_text("raise ImportError('the impostor tradelab')\n")
    monkeypatch.chdir(tmp_path)
    with Engine(journal_path=str(tmp_path / "j.duckdb")) as engine:
        engine.submit("trade.executed", trade(1), key="T1")
        assert engine.journal_failure is None
    assert JournalReader(tmp_path / "j.duckdb").last_seq() >= 2
