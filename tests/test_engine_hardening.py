"""Engine defects that broke "state is the fold of the journal" or left things behind: payloads
that could not be journaled, payloads changed after submit, blocking calls on the kernel thread,
a failed start, a config changed behind the caller's back."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from tradelab.config import EngineConfig
from tradelab.engine import Engine
from tradelab.errors import InvalidInputError, LifecycleError, StateError
from tradelab.journal import JournalReader
from tradelab.journal.verify import verify_journal


def _engine(tmp_path, **kw) -> Engine:
    kw.setdefault("snapshot_every_seconds", 0)
    return Engine(journal_path=str(tmp_path / "lab.duckdb"), **kw)


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


def test_numpy_and_subclass_numbers_are_journaled_as_plain_numbers_and_the_journal_verifies(
    tmp_path,
):
    path = tmp_path / "lab.duckdb"
    with _engine(tmp_path) as engine:
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": np.float64(24001.5)})
        engine.submit("mark.updated", {"symbol": "BANK", "price": np.int64(51000)}, wait=True)
        live = engine.store.get("market.marks")
        assert engine.store.get("market.marks.NIFTY.price") == 24001.5
    with _engine(tmp_path) as again:  # restarts on the journal it left: same marks
        assert again.store.get("market.marks") == live
    result = verify_journal(path)
    assert result.ok, result.lines
    prices = [e.payload["price"] for e in JournalReader(path).events(topic="mark.updated")]
    assert prices == [24001.5, 51000] and [type(p) for p in prices] == [float, int]


class Text(str):
    pass


def test_numpy_text_and_bools_and_str_subclasses_are_journaled_as_plain_values(tmp_path):
    path = tmp_path / "lab.duckdb"
    note = {"a": Text("x"), "b": np.str_("y"), "c": np.bool_(True), "d": [np.int64(3)]}
    with _engine(tmp_path) as engine:
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0, "note": note}, wait=True)
    [journaled] = [e.payload["note"] for e in JournalReader(path).events(topic="mark.updated")]
    assert journaled == {"a": "x", "b": "y", "c": True, "d": [3]}
    assert [type(v) for v in journaled.values()] == [str, str, bool, list]


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (2**63, "integers must fit in 64 bits"),
        ([np.uint64(2**64 - 1)], "integers must fit in 64 bits"),
        (np.datetime64("2024-01-01"), "of type numpy.datetime64"),
    ],
)
def test_a_value_the_journals_readers_cannot_hold_is_refused_naming_it(tmp_path, value, said):
    with _engine(tmp_path) as engine:
        before = engine.store.version
        with pytest.raises(InvalidInputError, match=f"payload.note.* {said}"):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0, "note": value})
        assert engine.store.version == before


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"symbol": "NIFTY\ud800", "price": 1.0}, "payload.symbol"),
        ({"symbol": "NIFTY", "price": 1.0, "note": {"k\udfff": 1}}, "payload.note key"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_field_and_nothing_is_applied(
    tmp_path, payload, where
):
    with _engine(tmp_path) as engine:
        before = engine.store.version
        with pytest.raises(InvalidInputError, match=f"{where}.*not valid Unicode"):
            engine.submit("mark.updated", payload, critical=True)
        assert engine.store.version == before
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 2.0}, wait=True)
    assert verify_journal(tmp_path / "lab.duckdb").ok


@pytest.mark.parametrize("critical", [True, False])
def test_a_lone_surrogate_in_the_key_is_refused_and_nothing_is_applied(tmp_path, critical):
    # The key is journaled as text too: a symbol used as a key must not pass the check, be
    # applied, then fail in the writer and leave a seq gap that makes the journal unusable.
    with _engine(tmp_path) as engine:
        before = engine.store.version
        with pytest.raises(InvalidInputError, match="event key 'NIFTY.ud800'.*not valid Unicode"):
            engine.submit(
                "mark.updated",
                {"symbol": "NIFTY", "price": 1.0},
                key="NIFTY\ud800",
                critical=critical,
            )
        assert engine.store.version == before
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 2.0}, key="NIFTY é", wait=True)
    assert verify_journal(tmp_path / "lab.duckdb").ok


def test_a_str_subclass_topic_or_key_is_journaled_as_plain_text(tmp_path):
    # What iterating a NumPy array of symbols gives: it passed the checks, was applied, then the
    # writer could not encode it (a seq gap; the stop's snapshot failed on the store's topic).
    with _engine(tmp_path) as engine:
        engine.submit(np.str_("mark.updated"), {"symbol": "A", "price": 1.0}, key=np.str_("A"))
        engine.submit("mark.updated", {"symbol": "B", "price": 2.0}, key=Text("B"), wait=True)
        assert engine.store.get("market.marks.B.price") == 2.0
    assert verify_journal(tmp_path / "lab.duckdb").ok
    events = list(JournalReader(tmp_path / "lab.duckdb").events(topic="mark.updated"))
    assert [(e.topic, e.key) for e in events] == [("mark.updated", "A"), ("mark.updated", "B")]


def test_a_payload_nested_thousands_deep_is_refused_before_anything_is_applied(tmp_path):
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    with _engine(tmp_path) as engine:
        before = engine.store.version
        with pytest.raises(InvalidInputError, match="nested more than 64 levels"):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0, "deep": deep})
        assert engine.store.version == before
    assert verify_journal(tmp_path / "lab.duckdb").ok


@pytest.mark.parametrize("writer_process", [True, False])
def test_a_payload_mutated_after_submit_changes_neither_journal_nor_store(tmp_path, writer_process):
    path = tmp_path / "lab.duckdb"
    with _engine(tmp_path, writer_process=writer_process) as engine:
        for i in range(200):
            payload = {"symbol": "NIFTY", "price": 100.0 + i, "extra": {"tag": "a"}}
            engine.submit("mark.updated", payload)
            payload["price"] = -1.0  # the submitter keeps its dict and changes it
            payload["extra"]["tag"] = "changed"
        engine.flush()
        live = engine.store.get("market.marks")
        assert engine.store.get("market.marks.NIFTY.price") == 299.0
    journaled = [e.payload for e in JournalReader(path).events(topic="mark.updated")]
    assert [p["price"] for p in journaled] == [100.0 + i for i in range(200)]
    assert {p["extra"]["tag"] for p in journaled} == {"a"}
    result = verify_journal(path)
    assert result.ok, result.lines
    with _engine(tmp_path, writer_process=writer_process) as again:
        assert again.store.get("market.marks") == live


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


def test_overrides_do_not_change_the_callers_config(tmp_path):
    config = EngineConfig(journal_path=str(tmp_path / "a.duckdb"), group_commit_ms=10.0)
    engine = Engine(config, group_commit_ms=2.0, journal_path=str(tmp_path / "b.duckdb"))
    assert engine.config.group_commit_ms == 2.0
    assert (config.group_commit_ms, config.journal_path) == (10.0, str(tmp_path / "a.duckdb"))


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


def test_engine_settings_are_checked_naming_the_setting_and_the_callers_config_kept():
    from tradelab.config import EngineConfig
    from tradelab.engine import Engine

    config = EngineConfig(max_queued_events=5)
    with pytest.raises(InvalidInputError, match="Engine has no setting 'bogus'; EngineConfig's"):
        Engine(config, bogus=1)
    with pytest.raises(InvalidInputError, match="max_queued_events' must be at least 1"):
        Engine(config, max_queued_events=0)
    assert config.max_queued_events == 5


def test_a_bad_id_is_named_without_echoing_all_of_it(tmp_path):
    from tradelab.errors import TradelabError

    with _engine(tmp_path) as engine, pytest.raises(TradelabError) as refused:
        engine.submit("signal.detected", {"v": 1}, key="x" * 10_000, wait=True)
    assert len(str(refused.value)) < 400 and "10002 characters" in str(refused.value)


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
