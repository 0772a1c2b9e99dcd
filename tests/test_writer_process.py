"""The journal writer in a process of its own: acknowledgements, failures, the CPU layout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import msgspec
import pytest
from payloads import trade

from tradelab.cpu_layout import CpuLayout
from tradelab.engine import Engine
from tradelab.errors import JournalError
from tradelab.events import Event, encode_payload
from tradelab.journal import Journal, JournalReader
from tradelab.journal.acklog import acklog_dir, log_files
from tradelab.journal.acklog_read import read_records
from tradelab.journal.wire import EncodedBatch, WriterSettings, encode_events
from tradelab.journal.writer_setup import build_writer


def _engine(tmp_path, **kw) -> Engine:
    kw.setdefault("snapshot_every_seconds", 0)
    return Engine(journal_path=str(tmp_path / "lab.duckdb"), **kw)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


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


def test_a_dead_writer_process_fails_submitters_instead_of_hanging(tmp_path):
    engine = _engine(tmp_path).start()
    try:
        os.kill(engine.journal.writer.pid, signal.SIGKILL)
        with pytest.raises(JournalError, match="writer process"):
            for i in range(50):  # the first may be queued before the death is noticed
                engine.submit("trade.executed", trade(i), key=f"T{i}", timeout=10)
                time.sleep(0.05)
        with pytest.raises(JournalError, match="not writable"):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0})
    finally:
        engine.stop(timeout=20)
    assert engine.state == "stopped"


def test_writer_process_commits_what_arrived_and_leaves_quietly_when_the_engine_is_killed(
    tmp_path,
):
    path = tmp_path / "lab.duckdb"
    # Killed mid-stream: frames in flight, critical acks and group commits being answered
    # when the engine's end of the pipes closes.
    child = textwrap.dedent(
        f"""
        import os, signal, sys, threading, time
        from tradelab.engine import Engine
        # A long group window: events are still uncommitted when the engine dies, so the
        # orphan commits them and answers into the closed pipe.
        engine = Engine(
            journal_path={str(path)!r}, group_commit_ms=500.0, snapshot_every_seconds=0
        ).start()
        acked = [0]

        def broker():
            for i in range(10**9):
                acked[0] = engine.submit("pnl.session_reset", {{"session_date": str(i)}}).seq

        threading.Thread(target=broker, daemon=True).start()
        started, i = time.monotonic(), 0
        while time.monotonic() - started < 1.0:
            i += 1
            engine.submit("mark.updated", {{"symbol": "NIFTY", "price": float(i)}})
        print(engine.journal.writer.pid, acked[0], flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    writer_pid, acked_seq = map(int, proc.stdout.split())
    assert acked_seq > 0
    deadline = time.monotonic() + 20
    while _alive(writer_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(writer_pid), "the orphaned writer process should exit on its own"
    # The orphan leaves quietly: its stderr is the terminal's (here the captured pipe, read to
    # its end, so after the orphan exited), and a dead engine is no error worth a traceback.
    assert proc.stderr == "", proc.stderr
    journal = Journal(path)
    try:
        assert journal.last_seq >= acked_seq
        assert journal.check.damage is None
    finally:
        journal.close()


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


def test_cpu_layout_gives_the_writer_the_highest_cpu_and_needs_two():
    assert CpuLayout.split({0, 1, 2}) == CpuLayout(frozenset({0, 1}), frozenset({2}))
    assert CpuLayout.split({3}) is None


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity (Linux) and two CPUs",
)
def test_pin_cpus_separates_engine_and_writer_and_is_undone_on_stop(tmp_path):
    before = os.sched_getaffinity(0)
    layout = CpuLayout.split(frozenset(before))
    with _engine(tmp_path, pin_cpus=True) as engine:
        assert os.sched_getaffinity(0) == layout.engine
        assert os.sched_getaffinity(engine.journal.writer.pid) == layout.writer
        engine.submit("trade.executed", trade(2), key="T2")
    assert os.sched_getaffinity(0) == before


def test_ctrl_c_reaches_the_engine_only_and_the_session_stops_cleanly(tmp_path):
    """Ctrl-C in a terminal signals the whole foreground process group; the writer process
    must not die of it before the engine has stopped it (snapshot, final commit)."""
    path = tmp_path / "lab.duckdb"
    run = subprocess.Popen(
        [sys.executable, "-m", "tradelab.cli", "run", "--journal", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, like a terminal's job
    )
    try:
        for line in run.stdout:  # type: ignore[union-attr]
            if line.startswith("seq "):  # the session is running
                break
        os.killpg(run.pid, signal.SIGINT)
        out, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out
    assert "stopped cleanly" in out and "could not snapshot" not in out, out
    assert not acklog_dir(path).exists()  # a clean stop leaves no ack log
    states = JournalReader(path).events(topic="engine.state_changed")
    assert states[-1].payload["state"] == "stopped"


def test_a_writer_process_that_cannot_start_is_a_clear_journal_error(tmp_path):
    from tradelab.journal.writer_client import ProcessJournalWriter

    with pytest.raises(JournalError, match="cannot start the journal writer process.*thread"):
        ProcessJournalWriter(python=str(tmp_path / "no-such-python"))
    # Nothing was left behind: the journal opens and an engine runs on the same path.
    with _engine(tmp_path) as engine:
        assert engine.submit("trade.executed", trade(3), key="T3").seq > 0


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


def test_orphaned_writer_process_commits_what_arrived_and_exits_without_noise(tmp_path):
    """Deterministic form of a kill -9 of the engine: the engine's end of the answer pipe
    closes while events wait for their group commit and a critical batch waits for its ack."""
    from tradelab.events import encode_payload
    from tradelab.journal import wire

    path = tmp_path / "lab.duckdb"
    Journal(path).close()  # the schema, as the engine's recovery leaves it
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradelab.journal.writer_process"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out = wire.FrameWriter(proc.stdin.fileno())  # type: ignore[union-attr]
    settings = wire.WriterSettings(
        str(path), last_seq=0, next_snapshot_id=1, group_commit_ms=5_000.0, segments=False
    )
    out.send(wire.CONFIG, msgspec.json.encode(settings))
    ready = wire.FrameBuffer(proc.stdout.fileno()).next_frames()  # type: ignore[union-attr]
    assert ready and ready[0][0] == wire.READY

    def send(first: int, last: int, urgent: bool) -> None:
        events = [
            Event(s, s, "mark.updated", "", {"price": float(s)}) for s in range(first, last + 1)
        ]
        payloads = [encode_payload(e.payload) for e in events]
        head = wire.EVENTS_HEAD.pack(first, last, urgent)
        out.send(wire.EVENTS, head, wire.encode_events(events, payloads))

    send(1, 100, False)  # waits for its (long) group-commit window
    proc.stdout.close()  # type: ignore[union-attr]  # the engine's end: gone
    send(101, 101, True)  # its LOGGED ack goes into the closed pipe
    proc.stdin.close()  # type: ignore[union-attr]  # end of file: the engine is gone
    err = proc.stderr.read().decode()  # type: ignore[union-attr]  # to its end: the exit
    assert proc.wait(timeout=30) == 0 and err == "", err
    journal = Journal(path)
    try:
        assert journal.last_seq == 101 and journal.check.damage is None
    finally:
        journal.close()


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


def test_a_failed_ack_log_write_fails_the_submit_and_the_writer(tmp_path, monkeypatch):
    """A full disk under the ack log: the critical submitter is told, not acknowledged."""
    from tradelab.journal import acklog

    engine = _engine(tmp_path).start()
    try:
        engine.submit("trade.executed", trade(1), key="T1")

        def full_disk(fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(acklog.os, "fdatasync", full_disk)
        with pytest.raises(JournalError, match="cannot write the ack log.*No space left"):
            engine.submit("trade.executed", trade(2), key="T2")
        assert isinstance(engine.journal.writer.failed, JournalError)
    finally:
        monkeypatch.undo()
        engine.stop()
    # Nothing acknowledged is lost; what was not acknowledged may or may not be there.
    trades = JournalReader(tmp_path / "lab.duckdb").events(topic="trade.executed")
    assert [e.payload["trade_id"] for e in trades][:1] == ["T1"]


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


def test_a_stop_waiting_on_a_stopped_writer_process_says_so(tmp_path, monkeypatch, caplog):
    """A writer process stopped by a signal (SIGSTOP, a shell's Ctrl-Z) used to hold `stop()`
    for minutes without a word; it now says every few seconds what it waits for and how the
    writer can go on, and finishes cleanly once it does."""
    from tradelab.engine import stop_notice

    monkeypatch.setattr(stop_notice, "NOTICE_EVERY_SECONDS", 0.3)
    path = tmp_path / "lab.duckdb"
    engine = _engine(tmp_path).start()
    engine.submit("trade.executed", trade(1), key="T1")
    pid = engine.journal.writer.pid
    os.kill(pid, signal.SIGSTOP)
    resume = threading.Timer(3.0, os.kill, (pid, signal.SIGCONT))
    resume.start()
    try:
        with caplog.at_level("WARNING", logger="tradelab.engine"):
            engine.stop(timeout=1.0)
    finally:
        resume.cancel()
        with contextlib.suppress(ProcessLookupError):  # it exited once it went on
            os.kill(pid, signal.SIGCONT)
    notices = [r.getMessage() for r in caplog.records if "stopping: waited" in r.getMessage()]
    assert notices, caplog.text
    assert f"(pid {pid}) is stopped by a signal (`kill -CONT {pid}`" in notices[0]
    assert engine.state == "stopped"
    assert [e.key for e in JournalReader(path).events(topic="trade.executed")] == ["T1"]


def test_a_stop_behind_a_slow_bus_handler_says_the_kernel_is_held_not_the_writer(
    tmp_path, monkeypatch, caplog
):
    # It blamed "the final snapshot; the journal writer ... is sleeping" while thousands of
    # events waited behind a slow subscriber.
    import time

    from tradelab.engine import stop_notice

    monkeypatch.setattr(stop_notice, "NOTICE_EVERY_SECONDS", 0.3)
    engine = _engine(tmp_path).start()
    engine.bus.subscribe("mark.updated", lambda event: time.sleep(0.01))
    for i in range(150):
        engine.submit("mark.updated", {"symbol": "A", "price": float(i)})
    with caplog.at_level("WARNING", logger="tradelab.engine"):
        engine.stop(timeout=30)
    notices = [r.getMessage() for r in caplog.records if "stopping: waited" in r.getMessage()]
    assert notices and "events still wait for the kernel (a slow bus handler" in notices[0]


def test_a_writer_process_that_stops_answering_is_failed_and_nothing_acknowledged_is_lost(
    tmp_path,
):
    """A writer that stops (SIGSTOP, a hung disk) used to hold the engine silently: the pipe
    filled, producers got OverloadError, and stop() waited minutes for a snapshot that never
    came. After `writer_stall_seconds` of silence with work owed it is failed (the error names
    it and what it is doing) and killed; what was acknowledged is recovered on the next start."""
    path = tmp_path / "lab.duckdb"
    engine = _engine(tmp_path, writer_stall_seconds=1.5).start()
    engine.submit("trade.executed", trade(1), key="T1")
    pid = engine.journal.writer.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        engine.submit("trade.executed", trade(2), key="T2")  # acknowledged by the ack log
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0})
        deadline = time.monotonic() + 30  # generous: the watch looks once a second
        while engine.journal_failure is None and time.monotonic() < deadline:
            time.sleep(0.05)
        failure = str(engine.journal_failure)
        assert f"journal writer process (pid {pid}) has not answered for" in failure
        assert "stopped by a signal" in failure
        with pytest.raises(JournalError):
            engine.submit("trade.executed", trade(3), key="T3")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    started = time.monotonic()
    engine.stop(timeout=20)
    assert time.monotonic() - started < 15
    assert not _alive(pid)
    again = _engine(tmp_path).start()
    try:
        trades = [e.key for e in JournalReader(path).events(topic="trade.executed")]
    finally:
        again.stop()
    assert trades == ["T1", "T2"]


def test_an_idle_writer_process_is_never_taken_for_a_stalled_one(tmp_path):
    engine = _engine(tmp_path, writer_stall_seconds=0.5).start()
    try:
        engine.submit("trade.executed", trade(1), key="T1")
        time.sleep(2.0)  # silent, but it owes nothing
        assert engine.journal_failure is None
        engine.submit("trade.executed", trade(2), key="T2")
    finally:
        engine.stop()
    assert engine.journal_failure is None


def test_a_writer_process_that_never_answers_at_start_is_a_journal_error_not_a_hang(
    tmp_path, monkeypatch
):
    """The start waited for its READY with no limit: a writer stopped or hung then held `run`
    for ever, with no output."""
    from tradelab.journal import writer_client, writer_spawn

    spawn = writer_spawn.spawn_writer_process

    def stopped_at_once(python):
        proc = spawn(python)
        os.kill(proc.pid, signal.SIGSTOP)
        return proc

    monkeypatch.setattr(writer_client, "spawn_writer_process", stopped_at_once)
    monkeypatch.setattr(writer_spawn, "START_GRACE_SECONDS", 1.0)
    engine = _engine(tmp_path)
    started = time.monotonic()
    with pytest.raises(JournalError, match=r"did not open the journal in \d+ s \(it was stopped"):
        engine.start()
    assert time.monotonic() - started < 60  # generous: the limit is the 10 s open timeout + 1
    assert engine.state == "stopped"
