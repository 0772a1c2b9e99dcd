"""The bridge: a replica's state equals the engine's, through storms, drops and slow readers."""

from __future__ import annotations

import threading
import time

import msgspec
import pytest
import tornado.httpclient
import tornado.websocket

from tradelab.bridge import (
    BridgeAddressError,
    BridgeAuthError,
    BridgeError,
    BridgeServer,
    basic_authorizer,
    connect,
    protocol,
)
from tradelab.bridge.faults import CuttableLink
from tradelab.bridge.history import DurableHistory
from tradelab.engine import Engine
from tradelab.errors import InvalidInputError
from tradelab.events import TopicSpec


def _engine(tmp_path, **kw) -> Engine:
    kw.setdefault("snapshot_every_seconds", 0)
    kw.setdefault("snapshot_every_events", 0)
    return Engine(journal_path=str(tmp_path / "lab.duckdb"), **kw)


def _storm(engine: Engine, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        engine.submit("mark.updated", {"symbol": f"S{i % 40}", "price": 100.0 + i})


def _in_step(replica, engine: Engine, timeout: float = 20.0) -> None:
    seq = engine.flush()
    assert replica.wait_for_seq(seq, timeout), replica.metrics()
    assert replica.seq == engine.store.version
    assert replica.store.state_hash() == engine.store.state_hash()


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


def test_unauthorized_replica_is_refused(tmp_path):
    authorize = basic_authorizer({"alice": "s3cret"})
    with (
        _engine(tmp_path) as engine,
        BridgeServer(engine, authorize=authorize) as server,
        pytest.raises(BridgeAuthError, match="401"),
    ):
        connect(server.url, timeout=10)
        with pytest.raises(BridgeAuthError):
            connect(server.url, auth=("alice", "wrong"), timeout=10)
        with connect(server.url, auth=("alice", "s3cret")) as replica:
            _in_step(replica, engine)
            assert server.hub.metrics()["per_client"][0]["user"] == "alice"


def test_cookie_auth_is_passed_to_the_server(tmp_path):
    def authorize(handler):
        return "bob" if handler.get_cookie("session") == "token-1" else None

    with (
        _engine(tmp_path) as engine,
        BridgeServer(engine, authorize=authorize) as server,
        pytest.raises(BridgeAuthError),
    ):
        connect(server.url, auth={"session": "nope"}, timeout=10)
        with connect(server.url, auth={"session": "token-1"}) as replica:
            _in_step(replica, engine)


async def _raw_exchange(url: str, *messages: bytes) -> list:
    conn = await tornado.websocket.websocket_connect(url)
    for message in messages:
        conn.write_message(message, binary=True)
    received = []
    while (frame := await conn.read_message()) is not None:
        received.append(protocol.decode_server(frame))
        if isinstance(received[-1], protocol.Snapshot):
            break
    conn.close()
    return received


def test_a_replicas_store_refuses_writes_and_keeps_following_the_engine(tmp_path):
    from tradelab.errors import LifecycleError
    from tradelab.events import Event
    from tradelab.state.snapshot import StateSnapshot

    with (
        _engine(tmp_path) as engine,
        BridgeServer(engine) as server,
        connect(server.url) as replica,
    ):
        _storm(engine, 10)
        _in_step(replica, engine)
        # A write of a reader's would take a seq the engine's next event then finds used:
        # the replica would drop that event and diverge, unseen.
        forged = Event(replica.seq + 1, 0, "mark.updated", "S1", {"symbol": "S1", "price": 1.0})
        with pytest.raises(LifecycleError, match="replica of the engine at .*read-only"):
            replica.store.apply(forged)
        with pytest.raises(LifecycleError, match="read-only"):
            replica.store.apply_batch([forged])
        with pytest.raises(LifecycleError, match="read-only"):
            replica.store.apply_each([forged])
        with pytest.raises(LifecycleError, match="read-only"):
            replica.store.load_snapshot(StateSnapshot(seq=1, schema_version=1, state={}))
        _storm(engine, 10, start=10)
        _in_step(replica, engine)
        assert replica.metrics()["duplicates_ignored"] == 0


def test_bridge_is_read_only_and_speaks_one_protocol_version(tmp_path):
    import asyncio

    with _engine(tmp_path) as engine, BridgeServer(engine) as server:
        submit = b'{"type": "submit", "topic": "mark.updated", "payload": {}}'
        (error,) = asyncio.run(_raw_exchange(server.url, submit))
        assert isinstance(error, protocol.Error) and "read-only" in error.message
        wrong = protocol.encode(protocol.Hello(version=99))
        (error,) = asyncio.run(_raw_exchange(server.url, wrong))
        assert "protocol version 99" in error.message
        hello = protocol.encode(protocol.Hello(version=protocol.PROTOCOL_VERSION))
        welcome, snapshot = asyncio.run(_raw_exchange(server.url, hello))
        assert isinstance(welcome, protocol.Welcome) and not welcome.resume
        assert snapshot.seq <= server.hub.durable_seq
        version = engine.store.version
        assert engine.store.version == version  # nothing a client said reached the engine


def test_bad_urls_and_auth_are_refused_with_a_clear_error():
    with pytest.raises(InvalidInputError, match="ws://host"):
        connect("ftp://example.com/x")
    with pytest.raises(InvalidInputError, match="auth must be"):
        connect("ws://127.0.0.1:1/bridge", auth=42)


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


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 200_000])
def test_websocket_frame_is_one_final_binary_frame_of_the_payload(size):
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    frame = protocol.websocket_frame(payload[:7], payload[7:])
    assert frame[0] == 0x82  # FIN, binary
    length, offset = frame[1], 2  # unmasked: a server's frames never are
    if length == 126:
        length, offset = int.from_bytes(frame[2:4], "big"), 4
    elif length == 127:
        length, offset = int.from_bytes(frame[2:10], "big"), 10
    assert length == size and frame[offset:] == payload
    assert offset == (2 if size < 126 else 4 if size <= 0xFFFF else 10)


def test_connect_to_a_server_that_is_not_there_fails_in_time_saying_so():
    with pytest.raises(BridgeError, match=r"could not connect to .*: nothing listens there"):
        connect("ws://127.0.0.1:9/bridge", timeout=1.0)
    assert tornado.httpclient  # the client library is the one the replica uses


def test_a_first_connection_refused_fails_soon_though_the_timeout_is_long():
    # A typo in the port is not a server restarting: no 60 s wait to be told so.
    started = time.monotonic()
    with pytest.raises(BridgeError, match=r"within 5.0 s: nothing listens there"):
        connect("ws://127.0.0.1:9/bridge", timeout=60.0)
    assert time.monotonic() - started < 30  # generous: ~5 s, on a loaded machine more


def test_a_host_name_that_does_not_resolve_fails_soon_saying_so():
    # It waited the whole timeout, then spoke of a missing first snapshot.
    started = time.monotonic()
    with pytest.raises(BridgeError, match=r"its host name does not resolve"):
        connect("ws://no-such-host.invalid:5006/bridge", timeout=60.0)
    assert time.monotonic() - started < 30  # generous: ~5 s, on a loaded machine more


def test_a_port_number_for_an_address_is_refused_naming_it():
    with pytest.raises(InvalidInputError, match=r"url 5006 is not a console address \(a int"):
        connect(5006)
    # A malformed IPv6 host raised a bare ValueError; a port past 65535 read as "nothing listens".
    with pytest.raises(InvalidInputError, match=r"not a console address \(Invalid IPv6 URL\)"):
        connect("ws://[::1:5006/bridge")
    with pytest.raises(InvalidInputError, match=r"not a console address \(Port out of range"):
        connect("ws://127.0.0.1:99999/bridge")


def test_waiting_on_a_closed_replica_raises_and_a_close_releases_a_waiter(tmp_path):
    # The waiter looped for ever: only a failure released it, and a close is not one.
    with _engine(tmp_path) as engine, BridgeServer(engine) as server:
        replica = connect(server.url)
        seq = replica.store.version
        errors: list[BaseException] = []

        def wait() -> None:
            try:
                replica.wait_for_seq(seq + 1_000_000)
            except BridgeError as exc:
                errors.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.2)
        replica.close()
        waiter.join(10)
        assert not waiter.is_alive() and "is closed" in str(errors[0])
        with pytest.raises(BridgeError, match=f"is closed at seq {seq}"):
            replica.wait_for_seq(seq + 1)
        assert replica.wait_for_seq(seq) is True  # what it holds is still there


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


def test_import_tradelab_stays_cheap_and_connect_is_there_when_asked():
    import subprocess
    import sys

    code = (
        "import sys, tradelab; assert 'tornado' not in sys.modules; "
        "assert 'connect' in dir(tradelab) and 'tornado' not in sys.modules; "
        "from tradelab import connect; assert connect.__module__ == 'tradelab.bridge.replica'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


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


def test_a_wrong_bridge_address_fails_at_once_naming_it(tmp_path):
    with _engine(tmp_path) as engine, BridgeServer(engine) as server:
        wrong = server.url.replace("/bridge", "/nope")
        started = time.monotonic()
        with pytest.raises(BridgeAddressError, match="HTTP 404"):
            connect(wrong, timeout=20)
        assert time.monotonic() - started < 10  # not the whole timeout; generous on a busy CI
