"""`Replica` / `connect(url)`: a full StateStore kept in step with a running engine, read-only.

The replica folds the server's durable events with the same reducers as recovery, so its state
hash equals the server's at the same seq. Thread model: one background thread runs an asyncio
loop with a tornado websocket client; it alone applies events to `store` (snapshots and event
batches, in seq order) and calls `subscribe` handlers after each applied batch (keep them
short: they delay the next batch). `reactive` refreshes its params on its own thread. After a
dropped connection it reconnects with backoff and resumes after its last seq; on a gap, a new
server epoch, or history that no longer reaches back, it loads a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import tornado.httpclient
import tornado.websocket

from tradelab.bridge import protocol
from tradelab.bridge.protocol import BridgeAddressError, BridgeAuthError, BridgeError
from tradelab.bridge.replica_inputs import (
    Auth,
    check_subscription,
    journaled_only,
    no_such_host,
    nothing_listens,
    request_headers,
    websocket_url,
)
from tradelab.bus import EventBus
from tradelab.bus.failures import HANDLER_FAILED
from tradelab.bus.subscription import handler_name
from tradelab.collector import collector_paused
from tradelab.engine.store import build_store
from tradelab.errors import SchemaVersionError, TradelabError
from tradelab.events import Event
from tradelab.state import ReactiveState, StateSnapshot

log = logging.getLogger(__name__)
# A first connection refused this long is a wrong address (a server that is starting listens
# within it); once connected, a refusal is a server restarting, retried until close().
REFUSED_AT_START_SECONDS = 5.0


class Replica:
    """A live, read-only copy of a running engine's state. Use `connect(url)` to build one."""

    def __init__(
        self,
        url: str,
        *,
        auth: Auth = None,
        reducers: Mapping[str, Any] | None = None,
        schema_version: int = 1,
        rate_hz: float = 20.0,
        connect_timeout: float = 10.0,
        backoff_seconds: tuple[float, float] = (0.05, 5.0),
        ping_interval: float = 5.0,
        max_message_bytes: int = 1 << 30,
        history_size: int = 1_000,
    ) -> None:
        self.url = websocket_url(url)
        self._headers = request_headers(auth)
        self.store = build_store(schema_version, reducers)
        self._writes = self.store.refuse_writes(
            f"this store is a replica of the engine at {self.url}, read-only: events go to the "
            "engine (its notebook or console), and arrive here from it"
        )
        self.bus = EventBus(history_size=history_size, name="replica")
        self.reactive = ReactiveState(self.store, rate_hz=rate_hz)
        self.connect_timeout = connect_timeout
        self.backoff_seconds = backoff_seconds
        self.ping_interval = ping_interval
        self.max_message_bytes = max_message_bytes
        self.epoch: str | None = None  # the server history the state is consistent with
        self.topics: frozenset[str] | None = None  # the engine's durable topics, once welcomed
        self.error: BaseException | None = None  # what stopped it for good
        self.connected = False
        self._awaiting_snapshot = True
        self._offered_epoch: str | None = None
        self._cond = threading.Condition()
        self._synced = threading.Event()
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        # Counters (written by the replica's thread only).
        self.connects = 0
        self.snapshots_loaded = 0
        self.events_applied = 0
        self.duplicates_ignored = 0
        self.gaps = 0
        self.last_lag_seconds = 0.0
        self.last_error = ""

    # -- public face ----------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """Seq of the last event applied (or of the snapshot loaded)."""
        return self.store.version

    def subscribe(self, topic_pattern: str, fn: Callable[[Event], Any]) -> Any:
        """Call `fn(event)` for each applied event matching the glob (on the replica's thread).

        A snapshot (a resync) replaces the state without calling handlers."""
        check_subscription(
            topic_pattern, self.store, self.topics
        )  # else a typo would never fire, unsaid

        if not callable(fn) or topic_pattern == HANDLER_FAILED:
            return self.bus.subscribe(topic_pattern, fn)  # refused, or asked for by name
        return self.bus.subscribe(topic_pattern, journaled_only(fn), name=handler_name(fn))

    def wait_for_seq(self, seq: int, timeout: float | None = None) -> bool:
        """Block until the replica has applied `seq` (True) or `timeout` s passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.store.version < seq:
                if self.error is not None:
                    raise BridgeError(f"replica of {self.url} stopped: {self.error}")
                if self._closing:  # nothing more comes: a wait would never end
                    raise BridgeError(
                        f"replica of {self.url} is closed at seq {self.store.version}; seq {seq} "
                        "never comes to it (connect again: tradelab.connect)"
                    )
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left if left is None else min(left, 0.5))
        return True

    def metrics(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "connected": self.connected,
            "epoch": self.epoch,
            "seq": self.store.version,
            "connects": self.connects,
            "snapshots_loaded": self.snapshots_loaded,
            "events_applied": self.events_applied,
            "duplicates_ignored": self.duplicates_ignored,
            "gaps": self.gaps,
            "last_lag_seconds": self.last_lag_seconds,
            "last_error": self.last_error,
        }

    def start(self, timeout: float | None = 30.0) -> Replica:
        """Connect and return once the first snapshot (or resume) is applied."""
        if self._thread is not None:
            raise BridgeError("this replica was started already")
        self._thread = threading.Thread(target=self._run_thread, name="replica", daemon=True)
        self._thread.start()
        self.reactive.start()
        if not self._synced.wait(timeout) or self.error is not None:
            error = self.error
            self.close()
            if error is not None:
                raise error
            if "ConnectionRefused" in (self.last_error or ""):
                raise BridgeError(nothing_listens(self.url, timeout))
            if "gaierror" in (self.last_error or ""):
                raise BridgeError(no_such_host(self.url, self.last_error))
            raise BridgeError(
                f"replica of {self.url} did not receive its first snapshot within {timeout} s "
                f"(last error: {self.last_error or 'none'})"
            )
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Close the connection and stop the replica's threads (its state stays readable)."""
        self._closing = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # its loop already ended
                loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.reactive.stop()
        self.bus.close()
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> Replica:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"Replica({self.url!r}, seq={self.store.version}, {state})"

    # -- the replica's thread -------------------------------------------------------------------

    def _run_thread(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._task = loop.create_task(self._run())
        try:
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()
            self.connected = False
            with self._cond:
                self._cond.notify_all()

    async def _run(self) -> None:
        low, high = self.backoff_seconds
        delay = low
        started = time.monotonic()
        while not self._closing:
            try:
                if await self._session():
                    delay = low  # it was in step: the next drop starts the backoff afresh
            except (BridgeAuthError, BridgeAddressError) as exc:
                self._fail(exc)
                return
            except (SchemaVersionError, protocol.BridgeVersionError) as exc:
                self._fail(exc)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, dropped, timed out: try again
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.debug("replica connection to %s failed: %s", self.url, self.last_error)
                wrong = isinstance(exc, ConnectionRefusedError | socket.gaierror)
                if (
                    wrong
                    and not self.connects
                    and time.monotonic() - started > REFUSED_AT_START_SECONDS
                ):  # never connected, still refused or unresolved: a wrong address, not a restart
                    seconds = REFUSED_AT_START_SECONDS
                    self._fail(
                        BridgeError(
                            no_such_host(self.url, self.last_error)
                            if isinstance(exc, socket.gaierror)
                            else nothing_listens(self.url, seconds)
                        )
                    )
                    return
            finally:
                self.connected = False
                if self._conn is not None:
                    _close_connection(self._conn)
                    self._conn = None
            if self._closing:
                return
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(high, delay * 2)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self.last_error = str(exc)
        self._synced.set()
        with self._cond:
            self._cond.notify_all()

    async def _session(self) -> bool:
        """One connection: hello, then apply what arrives until it drops. True if it was in step."""
        request = tornado.httpclient.HTTPRequest(
            self.url, headers=self._headers, connect_timeout=self.connect_timeout
        )
        try:
            conn = await tornado.websocket.websocket_connect(
                request,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_interval,
                max_message_size=self.max_message_bytes,
            )
        except tornado.httpclient.HTTPClientError as exc:
            if exc.code in (401, 403):
                raise BridgeAuthError(
                    f"the server at {self.url} refused the replica (HTTP {exc.code}): "
                    "pass auth=(user, password) or the console's cookie"
                ) from None
            if exc.code == 404 and not self._synced.is_set():  # a wrong address, not a blip
                raise BridgeAddressError(
                    f"nothing answers the bridge at {self.url} (HTTP 404); a console serves it "
                    "at ws://HOST:PORT/bridge"
                ) from None
            raise
        self._conn = conn
        self.connects += 1
        self.connected = True
        self.last_error = ""  # connected again: what failed before is over
        resuming = self.epoch is not None and not self._awaiting_snapshot
        hello = protocol.Hello(
            version=protocol.PROTOCOL_VERSION,
            epoch=self.epoch if resuming else None,
            last_seq=self.store.version if resuming else None,
        )
        conn.write_message(protocol.encode(hello), binary=True)
        in_step = False
        while True:
            message = await conn.read_message()
            if message is None:
                reason = conn.close_reason or "connection closed"
                self.last_error = f"disconnected: {reason}"
                return in_step
            self._handle(protocol.decode_server(message))
            in_step = in_step or not self._awaiting_snapshot

    def _handle(self, msg: Any) -> None:
        if isinstance(msg, protocol.Events):
            self._apply(msg.events)
        elif isinstance(msg, protocol.Snapshot):
            self._load(msg)
        elif isinstance(msg, protocol.Welcome):
            if msg.resume and msg.epoch != self.epoch:
                raise BridgeError(f"server resumed epoch {msg.epoch}, replica is at {self.epoch}")
            self._offered_epoch = msg.epoch
            self.topics = frozenset(msg.topics) or None  # None: a server that does not say
            self._awaiting_snapshot = not msg.resume
            if msg.resume:
                self._in_step()
        elif isinstance(msg, protocol.Error):
            if "protocol version" in msg.message:
                raise protocol.BridgeVersionError(msg.message)
            raise BridgeError(f"server closed the bridge: {msg.message}")

    def _load(self, msg: protocol.Snapshot) -> None:
        snapshot = StateSnapshot.from_bytes(bytes(msg.state))
        self._writes.load_snapshot(snapshot)
        self.epoch = self._offered_epoch
        self._awaiting_snapshot = False
        self.snapshots_loaded += 1
        log.info("replica of %s loaded a snapshot at seq %d (%s)", self.url, msg.seq, msg.reason)
        self._in_step()

    def _apply(self, events: list[Event]) -> None:
        if self._awaiting_snapshot or not events:
            return  # a snapshot was asked for: events before it are of no use
        version = self.store.version
        if events[0].seq <= version:  # never expected: the server resumes after our seq
            fresh = [e for e in events if e.seq > version]
            self.duplicates_ignored += len(events) - len(fresh)
            events = fresh
            if not events:
                return
        try:
            if events[0].seq != version + 1:
                raise BridgeError(f"expected seq {version + 1}, got {events[0].seq}")
            # A catch-up frame pauses the collector as a replay does; small ones need not.
            with collector_paused() if len(events) >= 256 else contextlib.nullcontext():
                self._writes.apply_batch(events)  # atomic; a gap inside raises, store unchanged
        except TradelabError as exc:
            self.gaps += 1
            self._awaiting_snapshot = True
            self.last_error = f"resync: {exc}"
            log.warning("replica of %s resyncs: %s", self.url, exc)
            if self._conn is not None:
                request = protocol.ResyncRequest(reason=str(exc)[:200])
                self._conn.write_message(protocol.encode(request), binary=True)
            return
        self.events_applied += len(events)
        self.last_lag_seconds = max(0.0, time.time() - events[-1].ts / 1e9)
        if self.bus.subscriptions():
            self.bus.publish_events(events)
        self._in_step()

    def _in_step(self) -> None:
        self._synced.set()
        with self._cond:
            self._cond.notify_all()


def _close_connection(conn: Any) -> None:
    """Send the close frame and close the socket now. tornado closes it on a 5 s timer of the
    replica's loop, which a close for good ends first: the socket stayed open (CLOSE_WAIT)."""
    protocol = conn.protocol
    conn.close()
    stream = getattr(protocol, "stream", None)
    if stream is not None:
        stream.close()


def connect(
    url: str, *, auth: Auth = None, timeout: float | None = 30.0, **options: Any
) -> Replica:
    """A `Replica` of the engine served at `url`, in step (snapshot loaded) when returned.

    `auth`: (user, password) for basic auth, or the console's cookie (a Cookie header str or a
    {name: value} mapping). `options` go to `Replica` (reducers for topics of your own,
    rate_hz of the reactive face, backoff_seconds, ...). Close it (or use `with`) when done.
    """
    return Replica(url, auth=auth, **options).start(timeout)
