"""The bridge: a replica's state equals the engine's, through storms, drops and slow readers."""

from __future__ import annotations

import threading
import time

import msgspec
import pytest

from tests.bridge_engine import _engine, _in_step, _storm
from tradelab.bridge import (
    BridgeServer,
    connect,
)
from tradelab.bridge.faults import CuttableLink
from tradelab.bridge.history import DurableHistory
from tradelab.errors import InvalidInputError
from tradelab.events import TopicSpec


def test_replica_state_hash_equals_the_engines_after_10k_events(tmp_path):
    with (
        _engine(tmp_path) as engine,
        BridgeServer(engine) as server,
        connect(server.url) as replica,
    ):
        seen: list[int] = []
        replica.subscribe("mark.*", lambda event: seen.append(event.seq))
        first = replica.seq
        _storm(engine, 10_000)
        _in_step(replica, engine)
        assert len(seen) == 10_000 and seen == list(range(seen[0], seen[0] + 10_000))
        assert seen[0] > first
        assert replica.store.get("market.marks.S7") == engine.store.get("market.marks.S7")
        assert replica.metrics()["snapshots_loaded"] == 1
        assert replica.metrics()["duplicates_ignored"] == 0
        hub = server.hub.metrics()
        assert hub["clients"] == 1 and hub["per_client"][0]["lag_events"] == 0
        assert hub["feed"] == "journal batches"  # the writer process's own encoded batches


def test_replicas_following_live_share_each_frame_and_all_equal_the_engine(tmp_path):
    with (
        _engine(tmp_path) as engine,
        BridgeServer(engine) as server,
        connect(server.url) as first,
        connect(server.url) as second,
        connect(server.url) as third,
    ):
        _storm(engine, 5_000)
        for replica in (first, second, third):
            _in_step(replica, engine)
        hub = server.hub.metrics()
        events_frames = sum(c["frames"] - c["resyncs"] for c in hub["per_client"])  # no snapshots
        # Replicas at the same cursor are written the same frame, built once (a replica a pass
        # behind may need one of its own): not one build per replica per frame.
        assert 0 < 2 * hub["frames_built"] <= events_frames, hub


def test_a_bridge_nobody_connected_to_costs_the_engine_nothing(tmp_path):
    with _engine(tmp_path) as engine, BridgeServer(engine) as server:
        _storm(engine, 1_000)
        engine.flush()
        assert engine.journal.writer.batch_listener is None  # the kernel hands it nothing
        assert all(sub.name != "bridge" for sub in engine.bus.subscriptions())
        hub = server.hub.metrics()
        assert hub["feed"] == "" and hub["history_events"] == 0 and hub["frames_built"] == 0


def test_replica_of_an_engine_with_the_writer_on_a_thread_is_fed_from_the_bus(tmp_path):
    with (
        _engine(tmp_path, writer_process=False) as engine,
        BridgeServer(engine) as server,
        connect(server.url) as replica,
    ):
        _storm(engine, 3_000)
        _in_step(replica, engine)
        assert server.hub.metrics()["feed"] == "bus events"


def test_replica_reactive_face_follows_the_engine(tmp_path):
    with (
        _engine(tmp_path) as engine,
        BridgeServer(engine) as server,
        connect(server.url, rate_hz=200.0) as replica,
    ):
        price = replica.reactive.bind("market.marks.NIFTY")
        changes: list = []
        price.param.watch(lambda e: changes.append(e.new), "value")
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 24_100.5})
        _in_step(replica, engine)
        deadline = time.monotonic() + 5
        while not changes and time.monotonic() < deadline:
            time.sleep(0.01)
        assert changes and changes[-1]["price"] == 24_100.5


def test_replica_holds_only_durable_events(tmp_path):
    with (
        _engine(tmp_path) as engine,
        BridgeServer(engine) as server,
        connect(server.url) as replica,
    ):
        durable_at_apply: list[tuple[int, int]] = []
        replica.subscribe(
            "*", lambda event: durable_at_apply.append((event.seq, server.hub.durable_seq))
        )
        _storm(engine, 2_000)
        _in_step(replica, engine)
        assert durable_at_apply
        assert all(seq <= durable for seq, durable in durable_at_apply)


def test_forced_disconnect_mid_storm_resumes_without_gap_or_duplicate(tmp_path):
    with (
        _engine(tmp_path) as engine,
        BridgeServer(engine) as server,
        CuttableLink("127.0.0.1", server.port) as link,
        connect(link.url, backoff_seconds=(0.02, 0.2)) as replica,
    ):
        seen: list[int] = []
        replica.subscribe("*", lambda event: seen.append(event.seq))
        storm = threading.Thread(target=_storm, args=(engine, 10_000))
        storm.start()
        for _ in range(3):
            time.sleep(0.05)
            link.cut()
            time.sleep(0.05)
            link.restore()
        storm.join()
        _in_step(replica, engine)
        metrics = replica.metrics()
        assert metrics["connects"] >= 2, metrics
        assert metrics["snapshots_loaded"] == 1  # resumed every time, no resync
        assert metrics["duplicates_ignored"] == 0 and metrics["gaps"] == 0
        # Handlers run on the replica's bus just after its store applies: wait for the last.
        deadline = time.monotonic() + 20
        while seen[-1] != engine.store.version and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == list(range(seen[0], seen[0] + len(seen)))
        assert seen[-1] == engine.store.version


def test_replica_takes_a_snapshot_when_the_history_no_longer_reaches_back(tmp_path):
    with (
        _engine(tmp_path) as engine,
        BridgeServer(engine, history_events=500) as server,
        CuttableLink("127.0.0.1", server.port) as link,
        connect(link.url, backoff_seconds=(0.02, 0.2)) as replica,
    ):
        _storm(engine, 100)
        _in_step(replica, engine)
        link.cut()
        for start in range(100, 4_100, 1_000):  # kernel batches (history chunks) of <= 1,000
            _storm(engine, 1_000, start=start)
            engine.flush()
        link.restore()
        _in_step(replica, engine)
        assert replica.metrics()["snapshots_loaded"] == 2
        assert replica.metrics()["connects"] >= 2


def test_slow_replica_is_resynced_and_never_slows_the_engine(tmp_path):
    engine = _engine(tmp_path)
    engine.registry.register(TopicSpec("test.blob", description="a large event"))
    blob = "x" * 2_000
    with (
        engine,
        BridgeServer(engine, history_events=2_000) as server,
        connect(server.url) as slow,
        connect(server.url) as prompt,
    ):
        gate = threading.Event()
        slow.subscribe("test.blob", lambda event: gate.wait(60))
        try:
            # 16K events of ~2 KB: far more than socket buffers hold, and than the history.
            started = time.monotonic()
            for i in range(16_000):
                engine.submit("test.blob", {"i": i, "blob": blob})
            seq = engine.flush(timeout=30)  # returns while the slow replica reads nothing
            storm_seconds = time.monotonic() - started
            assert prompt.wait_for_seq(seq, 20)
            # The slow one is behind, or was already sent a fresh snapshot (it fell out of the
            # history while the storm went on); the engine finished regardless.
            (first,) = [c for c in server.hub.metrics()["per_client"] if c["id"] == 1]  # slow
            assert first["lag_events"] > 0 or first["dropped"] > 0, first
        finally:
            gate.set()
        _in_step(slow, engine)
        _in_step(prompt, engine)
        hub = server.hub.metrics()
        assert slow.metrics()["snapshots_loaded"] >= 2  # resynced at least once
        assert hub["dropped"] > 0 and hub["resyncs"] >= 3  # two new replicas + one resync
        assert storm_seconds < 25


def test_durable_history_drops_whole_chunks_and_splits_one_to_resume_mid_chunk():
    def chunk(first: int, last: int) -> bytes:
        return b",".join(b'{"seq":%d}' % seq for seq in range(first, last + 1))

    history = DurableHistory(6)
    history.restart_at(10)
    for first, last in ((11, 12), (13, 15), (16, 16), (17, 18)):
        history.append(first, last, chunk(first, last))
    # 8 events, room for 6: the oldest chunk went, whole.
    assert (history.first_seq, history.last_seq) == (13, 18)
    assert history.reaches(12) and not history.reaches(11)
    parts, count = history.after(12, 100)  # a live replica: whole chunks, nothing re-encoded
    assert count == 6 and parts == [chunk(13, 15), chunk(16, 16), chunk(17, 18)]
    parts, count = history.after(13, 2)  # resuming mid-chunk: that chunk is split
    assert count == 2 and parts == [chunk(14, 15)]
    assert history.after(18, 5) == ([], 0)
    assert history.bytes_held == len(chunk(13, 15) + chunk(16, 16) + chunk(17, 18))
    with pytest.raises(InvalidInputError):
        DurableHistory(0)


def test_server_hangs_up_on_a_replica_that_takes_no_frame_and_it_comes_back(tmp_path):
    engine = _engine(tmp_path)
    engine.registry.register(TopicSpec("test.blob", description="a large event"))
    with (
        engine,
        BridgeServer(engine, write_timeout_seconds=0.3) as server,
        connect(server.url, backoff_seconds=(0.02, 0.2)) as replica,
    ):
        gate = threading.Event()
        replica.subscribe("test.blob", lambda event: gate.wait(5))
        blob = "x" * 4_000
        for i in range(4_000):  # ~16 MB: the socket buffers fill and a write stalls
            engine.submit("test.blob", {"i": i, "blob": blob})
        engine.flush()
        deadline = time.monotonic() + 10
        while server.hub.metrics()["write_timeouts"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.hub.metrics()["write_timeouts"] >= 1
        gate.set()
        _in_step(replica, engine)
        deadline = time.monotonic() + 10  # it may apply all it had buffered before the close
        while replica.metrics()["connects"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert replica.metrics()["connects"] >= 2
        _in_step(replica, engine)


def test_journal_batch_listener_gets_the_journaled_bytes_and_cannot_stop_the_journal(tmp_path):
    from tradelab.events import Event

    with _engine(tmp_path) as engine:
        batches: list[tuple[int, int, bytes]] = []

        def listener(first: int, last: int, body: bytes) -> None:
            batches.append((first, last, body))
            raise RuntimeError("a failing listener")

        engine.journal.writer.batch_listener = listener
        _storm(engine, 500)
        assert engine.flush() == engine.store.version  # every event still became durable
        events = [e for _, _, body in batches for e in msgspec.json.decode(body, type=list[Event])]
        assert [e.seq for e in events] == list(range(batches[0][0], batches[-1][1] + 1))
        assert events[-1].seq == engine.store.version
        assert events[-1].payload == {"symbol": "S19", "price": 599.0}
