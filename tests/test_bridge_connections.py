"""Bridge connections: auth, the read-only protocol, frames, bad addresses and closed replicas."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest
import tornado.httpclient
import tornado.websocket

from tests.bridge_engine import _engine, _in_step, _storm
from tradelab.bridge import (
    BridgeAddressError,
    BridgeAuthError,
    BridgeError,
    BridgeServer,
    basic_authorizer,
    connect,
    protocol,
)
from tradelab.errors import InvalidInputError


def test_unauthorized_replica_is_refused(tmp_path):
    authorize = basic_authorizer({"alice": "s3cret"})
    with _engine(tmp_path) as engine, BridgeServer(engine, authorize=authorize) as server:
        with pytest.raises(BridgeAuthError, match="401"):
            connect(server.url, timeout=10)
        for wrong in ("wrong", "s3cret-and-more", "s3cre", ""):
            with pytest.raises(BridgeAuthError, match="401"):
                connect(server.url, auth=("alice", wrong), timeout=10)
        with pytest.raises(BridgeAuthError, match="401"):
            connect(server.url, auth=("bob", "s3cret"), timeout=10)
        with connect(server.url, auth=("alice", "s3cret"), timeout=10) as replica:
            _in_step(replica, engine)
            assert server.hub.metrics()["per_client"][0]["user"] == "alice"


def test_cookie_auth_is_passed_to_the_server(tmp_path):
    def authorize(handler):
        return "bob" if handler.get_cookie("session") == "token-1" else None

    with _engine(tmp_path) as engine, BridgeServer(engine, authorize=authorize) as server:
        with pytest.raises(BridgeAuthError):
            connect(server.url, auth={"session": "nope"}, timeout=10)
        with connect(server.url, auth={"session": "token-1"}, timeout=10) as replica:
            _in_step(replica, engine)
            assert server.hub.metrics()["per_client"][0]["user"] == "bob"


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


def test_import_tradelab_stays_cheap_and_connect_is_there_when_asked():
    import subprocess
    import sys

    code = (
        "import sys, tradelab; assert 'tornado' not in sys.modules; "
        "assert 'connect' in dir(tradelab) and 'tornado' not in sys.modules; "
        "from tradelab import connect; assert connect.__module__ == 'tradelab.bridge.replica'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_wrong_bridge_address_fails_at_once_naming_it(tmp_path):
    with _engine(tmp_path) as engine, BridgeServer(engine) as server:
        wrong = server.url.replace("/bridge", "/nope")
        started = time.monotonic()
        with pytest.raises(BridgeAddressError, match="HTTP 404"):
            connect(wrong, timeout=20)
        assert time.monotonic() - started < 10  # not the whole timeout; generous on a busy CI


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds in /proc")
def test_a_closed_replica_holds_no_socket(tmp_path):
    # tornado's close sends the close frame and closes the socket on a 5 s timer of the
    # replica's loop, which a close for good ends first: each connect/close in a notebook left
    # one socket open (CLOSE_WAIT) for the kernel's life.
    with _engine(tmp_path) as engine, BridgeServer(engine) as server:
        with connect(server.url):
            pass
        time.sleep(0.2)  # the server's side of the first is closed too
        before = _sockets()
        for _ in range(5):
            with connect(server.url):
                pass
        deadline = time.monotonic() + 3  # the server closes its ends on its own thread
        while _sockets() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _sockets() <= before
