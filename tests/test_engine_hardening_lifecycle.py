"""Engine hardening in its lifecycle: raising handlers, Ctrl-C, failed starts and stops, sealer."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.tmp_engine import _engine
from tradelab.engine import Engine
from tradelab.errors import LifecycleError, StateError
from tradelab.journal import JournalReader
from tradelab.journal.verify import verify_journal


def _writer_children() -> list[int]:
    """Pids of journal writer processes whose parent is this process."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"tradelab.journal.writer" in cmdline:
            found.append(int(pid))
    return found


def test_flush_snapshot_and_stop_from_a_bus_handler_raise_at_once(tmp_path):
    errors: list[BaseException] = []

    def handler(event):
        calls = (
            lambda: engine.flush(timeout=20),
            lambda: engine.snapshot_now(timeout=20),
            lambda: engine.seal_segments(timeout=20),
            lambda: engine.stop(timeout=20),  # would join the very thread it runs on
        )
        for call in calls:
            try:
                call()
            except LifecycleError as exc:
                errors.append(exc)

    with _engine(tmp_path) as engine:
        engine.bus.subscribe("mark.updated", handler)
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0}, wait=True)
        engine.flush(timeout=5)  # the kernel was not stalled until a 20 s timeout
        assert engine.state == "running"  # the refused stop() left it running
    assert len(errors) == 4 and all("kernel thread" in str(e) for e in errors)
    # Each names the call made (seal_segments flushes first: it said flush()).
    said = [str(e).split("(", 1)[0] for e in errors]
    assert said == ["flush", "snapshot_now", "seal_segments", "stop"]


@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt])
def test_a_handler_raising_base_exception_loses_no_flush_snapshot_or_later_delivery(
    tmp_path, raised
):
    seen: list[int] = []

    def bad(event):
        if event.payload["price"] == 1.0:
            raise raised()

    with _engine(tmp_path) as engine:
        engine.bus.subscribe("mark.updated", bad)
        engine.bus.subscribe("mark.updated", lambda e: seen.append(e.seq))
        for price in (1.0, 2.0, 3.0):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": price})
        info = engine.snapshot_now(timeout=10)
        assert engine.flush(timeout=10) >= info.last_seq
        assert engine.store.get("market.marks.NIFTY.price") == 3.0
    assert len(seen) == 3  # the other subscriber got every event of the batch


@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt])
def test_a_reducer_raising_base_exception_refuses_its_event_only(tmp_path, raised):
    """It used to escape the store: the events applied before it in the batch were never
    journaled (a seq gap: the journal unusable) and a blocking submitter waited its timeout."""

    def bad(view, event):
        if event.payload["price"] == 2.0:
            raise raised()
        return ()

    engine = _engine(tmp_path)
    engine.register_reducers({"mark.updated": [bad]})
    with engine:
        for price in (1.0, 2.0, 3.0):  # queued: applied by the kernel thread, maybe in one batch
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": price})
        engine.flush(timeout=10)
        assert engine.store.get("market.marks.NIFTY.price") == 3.0
        # On the main thread (a submitter processing its own event) it is the user's Ctrl-C:
        # raised to it, its event refused.
        with pytest.raises(raised):
            engine.submit("mark.updated", {"symbol": "X", "price": 2.0}, wait=True, timeout=20)
        assert engine.store.get("market.marks.X") is None
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 4.0}, wait=True)
        assert engine.metrics()["rejected_events"] == 2
    result = verify_journal(tmp_path / "lab.duckdb")
    assert result.ok, result.lines
    prices = [
        e.payload["price"]
        for e in JournalReader(tmp_path / "lab.duckdb").events()
        if e.topic == "mark.updated"
    ]
    assert prices == [1.0, 3.0, 4.0]


@pytest.mark.parametrize("where", ["reducer", "watcher"])
def test_ctrl_c_in_an_inline_backtests_store_work_stops_it_with_the_journal_whole(tmp_path, where):
    def interrupt(*args):
        if (args[1].payload if where == "reducer" else {"price": args[1]})["price"] == 2.0:
            raise KeyboardInterrupt
        return ()

    engine = _engine(tmp_path, inline_kernel=True, durable_acks=False)
    if where == "reducer":
        engine.register_reducers({"mark.updated": [interrupt]})
    with engine:
        if where == "watcher":
            engine.store.watch(
                "market.marks.*.price", lambda path, new, old, seq: interrupt(path, new)
            )
        engine.submit("mark.updated", {"symbol": "A", "price": 1.0})
        with pytest.raises(KeyboardInterrupt):
            engine.submit("mark.updated", {"symbol": "A", "price": 2.0})
    result = verify_journal(tmp_path / "lab.duckdb")
    assert result.ok, result.lines


@pytest.mark.parametrize("raised", [SystemExit, KeyboardInterrupt])
def test_a_store_watcher_raising_base_exception_loses_no_event(tmp_path, raised):
    """Watchers run between the apply and the journal: one raising used to leave its event
    applied but never journaled (a seq gap: the journal unusable for good)."""
    calls: list[int] = []

    def watcher(path, new, old, seq):
        calls.append(seq)
        if len(calls) % 2 == 0:
            raise raised()

    with _engine(tmp_path) as engine:
        engine.store.watch("market.marks.*", watcher)
        for price in (1.0, 2.0, 3.0):  # the kernel thread's watcher calls
            engine.submit("mark.updated", {"symbol": f"S{price:.0f}", "price": price})
        engine.flush(timeout=10)
        # This (main) thread's own, processed here when it blocks: its interrupt is the user's,
        # raised to it once its event is journaled.
        with pytest.raises(raised):
            engine.submit("mark.updated", {"symbol": "S4", "price": 4.0}, wait=True)
        engine.submit("mark.updated", {"symbol": "S5", "price": 5.0}, wait=True)
        assert engine.store.get("market.marks.S5.price") == 5.0
    assert len(calls) == 5
    result = verify_journal(tmp_path / "lab.duckdb")
    assert result.ok, result.lines
    assert len(list(JournalReader(tmp_path / "lab.duckdb").events(topic="mark.updated"))) == 5


def test_a_start_that_fails_part_way_leaves_no_writer_process_or_kernel_thread(tmp_path):
    def refuse_running(state, event):
        if event.payload["state"] == "running":
            raise StateError("refusing to run")
        return ()

    engine = _engine(tmp_path)
    engine.register_reducers({"engine.state_changed": [refuse_running]})
    with pytest.raises(StateError, match="refusing to run"):
        engine.start()
    assert engine.state == "stopped"
    assert _writer_children() == []
    assert not [t for t in threading.enumerate() if t.name == "engine-kernel" and t.is_alive()]
    with pytest.raises(LifecycleError):
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0})


def test_keyboard_interrupt_from_a_handler_on_the_main_thread_still_interrupts(tmp_path):
    def interrupt(event):
        raise KeyboardInterrupt

    with _engine(tmp_path) as engine:
        engine.bus.subscribe("market.tick", interrupt)
        with pytest.raises(KeyboardInterrupt):
            engine.publish_transient("market.tick", {"symbol": "NIFTY", "ltp": 1.0})


def test_stop_that_times_out_leaves_the_journal_open_under_the_live_kernel(tmp_path):
    release = threading.Event()
    engine = _engine(tmp_path).start()
    engine.bus.subscribe("mark.updated", lambda e: release.wait(30))
    engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0})
    with pytest.raises(LifecycleError, match="did not finish within 0.3 s"):
        engine.stop(timeout=0.3)
    assert engine.journal_failure is None and engine.state == "stopping"
    release.set()  # the kernel finishes its batch and the queued `stopped` event
    engine.stop(timeout=30)
    assert engine.state == "stopped"
    result = verify_journal(tmp_path / "lab.duckdb")
    assert result.ok, result.lines
    states = [
        e.payload["state"]
        for e in JournalReader(tmp_path / "lab.duckdb").events(topic="engine.state_changed")
    ]
    assert states[-2:] == ["stopping", "stopped"]


def test_a_second_engine_on_a_journal_this_process_holds_says_so(tmp_path):
    from tradelab.engine import Engine
    from tradelab.errors import JournalError

    path = str(tmp_path / "lab.duckdb")
    with Engine(journal_path=path, open_timeout_seconds=0.2) as running:
        with pytest.raises(JournalError, match="held by an engine running in this process"):
            Engine(journal_path=path, open_timeout_seconds=0.2).start()
        assert running.state == "running"


def test_the_engines_store_refuses_writes_from_outside_and_stays_the_fold_of_its_journal(
    tmp_path,
):
    # A notebook holding engine.store (lab.store) could apply an event or load an older
    # snapshot: the kernel would then journal a seq gap or the same seqs twice.
    from tradelab.events import Event

    path = tmp_path / "lab.duckdb"
    with _engine(tmp_path) as engine:
        store = engine.store
        engine.submit("mark.updated", {"symbol": "ABC", "price": 1.0}, wait=True)
        earlier = store.snapshot()
        engine.submit("mark.updated", {"symbol": "ABC", "price": 2.0}, wait=True)
        version, state = store.version, store.state_hash()
        fake = Event(version + 1, 0, "signal.detected", "", {"signal_id": "f", "name": "n"})
        writes = {
            "apply": lambda: store.apply(fake),
            "apply_batch": lambda: store.apply_batch([fake]),
            "apply_each": lambda: store.apply_each([fake]),
            "load_snapshot": lambda: store.load_snapshot(earlier),
            "register_reducer": lambda: store.register_reducer("mark.updated", lambda v, e: []),
        }
        for name, write in writes.items():
            with pytest.raises(LifecycleError, match=r"read-only .*engine\.submit"):
                write()
            assert (store.version, store.state_hash()) == (version, state), name
        engine.submit("mark.updated", {"symbol": "ABC", "price": 3.0}, wait=True)
        engine.snapshot_now()  # the engine's own snapshots and writes still work
    assert verify_journal(path).ok
    with _engine(tmp_path) as again:  # recovery (snapshot, then replay) still writes it
        assert again.recovery_report.ok and again.recovery_report.snapshot_id is not None
        assert again.store.get("market.marks.ABC")["price"] == 3.0


@pytest.mark.parametrize("writer_process", [True, False])
def test_a_segment_sealer_that_stops_is_told_and_the_journal_goes_on(
    tmp_path, writer_process, caplog
):
    """A sealer that fails mid-session (its folder gone, a full disk) used to be a log line in
    the writer process alone: readers of the segments silently saw a journal stuck at the last
    seal. The engine now knows (`segments_failure`, `segments_failed` in its metrics, one
    error line) and every event still reaches the journal."""
    import shutil
    import time

    from tradelab.journal.segments import segment_dir

    path = tmp_path / "lab.duckdb"
    engine = Engine(
        journal_path=str(path),
        writer_process=writer_process,
        segment_every_events=0,
        segment_every_seconds=0.2,
        snapshot_every_seconds=0,
    ).start()
    try:
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0}, wait=True)
        engine.seal_segments(timeout=20)
        folder = segment_dir(path)
        shutil.rmtree(folder)
        folder.write_text("not a folder")  # every later seal fails
        with caplog.at_level("ERROR"):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 2.0}, wait=True)
            deadline = time.monotonic() + 20  # generous: the sealer's next turn is 0.2 s away
            while engine.segments_failure is None and time.monotonic() < deadline:
                time.sleep(0.05)
        assert engine.segments_failure is not None
        assert engine.segments_failure.startswith("sealing stopped after seq ")
        assert engine.metrics()["segments_failed"] == 1
        said = "journal segments: sealing stopped" if writer_process else "segment sealer failed"
        assert any(said in r.getMessage() for r in caplog.records), caplog.text
        last = engine.submit("mark.updated", {"symbol": "NIFTY", "price": 3.0}, wait=True)
    finally:
        engine.stop(timeout=20)
    folder.unlink()
    marks = JournalReader(path).events(topic="mark.updated")
    assert [e.payload["price"] for e in marks] == [1.0, 2.0, 3.0]
    assert marks[-1].seq == last.seq


@pytest.mark.parametrize("call", ["flush", "snapshot_now", "seal_segments"])
def test_a_request_made_while_the_engine_stops_fails_at_once_as_a_lifecycle_error(tmp_path, call):
    # One queued after the kernel took its last items was never served: the caller waited its
    # whole timeout (30-60 s) after the stop, then got a JournalError as if the journal failed.
    import time

    engine = Engine(journal_path=str(tmp_path / "j.duckdb"), snapshot_every_seconds=0).start()
    outcomes: list[tuple[str, float]] = []
    stopped = threading.Event()

    def keep_calling() -> None:
        while not stopped.is_set():
            started = time.monotonic()
            try:
                getattr(engine, call)(timeout=20)
                outcome = "ok"
            except Exception as exc:
                outcome = type(exc).__name__
            outcomes.append((outcome, time.monotonic() - started))
            if outcome != "ok":
                return

    caller = threading.Thread(target=keep_calling)
    for i in range(200):
        engine.submit("mark.updated", {"symbol": "A", "price": float(i)})
    caller.start()
    time.sleep(0.2)
    engine.stop()
    stopped.set()
    caller.join(30)
    assert not caller.is_alive()
    last, seconds = outcomes[-1]
    assert last in ("ok", "LifecycleError"), outcomes[-3:]
    assert seconds < 5.0, outcomes[-3:]  # generous: the point is not a 20 s timeout
    assert verify_journal(tmp_path / "j.duckdb").ok
