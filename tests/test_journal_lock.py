"""One engine per journal: the engine lock beside the journal, taken before DuckDB opens it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tradelab.engine import Engine
from tradelab.errors import JournalError, JournalInUseError
from tradelab.journal.journal_lock import JournalLock, journal_lock_path
from tradelab.journal.verify import verify_journal

# An engine in a process of its own; it starts when `go` appears, so two start at once.
_ENGINE_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from tradelab.engine import Engine
    from tradelab.errors import JournalError

    journal, go = sys.argv[1], sys.argv[2]
    engine = Engine(journal_path=journal, snapshot_every_seconds=0, open_timeout_seconds=0.2)
    while not os.path.exists(go):
        time.sleep(0.001)
    try:
        engine.start()
    except JournalError as exc:
        print("refused:", exc, flush=True)
        sys.exit(3)
    for n in range(50):
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 24000.0 + n})
    engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0}, wait=True)
    time.sleep(float(sys.argv[3]))
    engine.stop()
    print("ran", flush=True)
    """
)


def _spawn_engine(journal: Path, go: Path, hold_seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _ENGINE_SCRIPT, str(journal), str(go), str(hold_seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_engines_started_together_on_a_new_journal_one_runs_the_other_is_refused(tmp_path):
    for attempt in range(4):
        journal, go = tmp_path / f"lab{attempt}.duckdb", tmp_path / f"go{attempt}"
        engines = [_spawn_engine(journal, go, 0.5) for _ in range(2)]
        time.sleep(1.5)  # both imported and waiting
        go.touch()
        results = [(p.wait(60), *p.communicate()) for p in engines]
        codes = sorted(code for code, _, _ in results)
        assert codes == [0, 3], results
        ran = next(p for p, (code, _, _) in zip(engines, results, strict=True) if code == 0)
        refused = next(out for code, out, _ in results if code == 3)
        assert "is locked by another process" in refused and f"PID {ran.pid}" in refused
        verified = verify_journal(journal)
        assert verified.ok, verified.lines
        assert verified.last_seq > 51  # the one engine's events, each once
        assert not journal_lock_path(journal).exists()  # removed by the clean stop


def test_two_engines_of_one_process_started_together_one_runs(tmp_path):
    path = str(tmp_path / "lab.duckdb")
    engines = [Engine(journal_path=path, open_timeout_seconds=0.2) for _ in range(2)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def start(engine: Engine) -> None:
        barrier.wait()
        try:
            engine.start()
        except JournalError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    running = [e for e in engines if e.state == "running"]
    assert len(running) == 1 and len(errors) == 1
    assert isinstance(errors[0], JournalInUseError)
    assert "held by an engine running in this process" in str(errors[0])
    running[0].stop()
    assert verify_journal(path).ok


def test_a_killed_engines_lock_is_released_and_its_file_is_no_leftover(tmp_path):
    journal, go = tmp_path / "lab.duckdb", tmp_path / "go"
    go.touch()
    holder = _spawn_engine(journal, go, 60)
    deadline = time.monotonic() + 60
    while not (journal_lock_path(journal).exists() and journal.exists()):
        assert holder.poll() is None and time.monotonic() < deadline, holder.communicate()
        time.sleep(0.05)
    with pytest.raises(JournalInUseError, match=f"locked by another process \\(PID {holder.pid}"):
        Engine(journal_path=str(journal), open_timeout_seconds=0.2).start()
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert journal_lock_path(journal).exists()  # left behind, unlocked
    with Engine(journal_path=str(journal), open_timeout_seconds=15) as engine:
        assert engine.state == "running"
    # A journal removed with its sidecars but for a killed engine's lock file starts over.
    for sidecar in tmp_path.glob("lab.*"):
        if sidecar != journal_lock_path(journal):
            subprocess.run(["rm", "-r", str(sidecar)], check=True)
    journal_lock_path(journal).write_text("12345\n")
    with Engine(journal_path=str(journal)) as engine:
        assert engine.recovery_report.events_replayed == 0  # a new journal


def test_a_symlink_to_a_held_journal_is_refused_as_the_journal_itself(tmp_path):
    # data/lab.duckdb -> /mnt/big/lab.duckdb: one engine on each path would write one file.
    journal = tmp_path / "big" / "lab.duckdb"
    journal.parent.mkdir()
    link = tmp_path / "lab.duckdb"
    link.symlink_to(journal)
    from tradelab.journal.journal_lock import JournalLock

    # The lock alone (as in the gap where DuckDB's own lock lapses): the link must meet it.
    lock = JournalLock.acquire(journal)
    try:
        with pytest.raises(JournalInUseError, match="held by an engine running in this process"):
            Engine(journal_path=str(link), open_timeout_seconds=0.2).start()
    finally:
        lock.release()
    assert journal_lock_path(link) == journal_lock_path(journal)


def test_a_lock_that_cannot_be_written_on_a_full_disk_is_a_journal_error_and_leaves_no_file(
    tmp_path, monkeypatch
):
    """Its pid written on a full disk used to escape as an OSError traceback (exit 1, "journal
    damaged") and leave an empty lock file behind."""
    from tradelab.journal import journal_lock

    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal_lock.os, "write", full)
    journal = tmp_path / "lab.duckdb"
    with pytest.raises(JournalError, match="writing .*lab.duckdb.lock failed: No space left"):
        JournalLock.acquire(journal)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    JournalLock.acquire(journal).release()  # once there is room it locks as ever
