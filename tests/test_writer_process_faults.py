"""A writer process or its engine killed, stopped, hung or not starting; Ctrl-C; CPU layout."""

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

from tests.tmp_engine import _alive, _engine
from tradelab.cpu_layout import CpuLayout
from tradelab.errors import JournalError
from tradelab.events import Event
from tradelab.journal import Journal, JournalReader
from tradelab.journal.acklog import acklog_dir


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
    # 1.5 s, not less: on a loaded machine the answer to T1 itself may take a second.
    engine = _engine(tmp_path, writer_stall_seconds=1.5).start()
    try:
        engine.submit("trade.executed", trade(1), key="T1")
        time.sleep(4.0)  # silent for more than twice the limit, but it owes nothing
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
