"""`BridgeHub`: hands an engine's durable events to any number of replica connections.

Thread model: the engine's kernel thread only queues (feed.py); everything else runs on the
server's event loop: the feed's pump fills the `DurableHistory` with what the journal cannot
lose any more, and one sender coroutine per connection walks the history with its own cursor.
A slow replica therefore never slows the engine: when its next event has left the history, it
is sent a fresh snapshot (a resync). Frames are whole websocket frames built once per cursor
and written as is to every replica there: a replica costs the loop a socket write, no copy.
Bounds: the feed's pending queue (`pending_events`), the history (`history_events`), frames
built since the history moved (one per distinct cursor, dropped at each move), per connection
one frame in flight of about `frame_events` events, taken within `write_timeout_seconds` or the
connection is closed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import tornado.iostream
import tornado.websocket

from tradelab.bridge import protocol
from tradelab.bridge.feed import DurableFeed
from tradelab.bridge.history import DurableHistory
from tradelab.errors import InvalidInputError

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ReplicaSession:
    """One connected replica: where it stands and what it cost. Loop thread only."""

    id: int
    peer: str
    user: str | None
    # Starts sending one whole websocket frame (protocol.websocket_frame): a future done once
    # the socket took it all; raises (or its future does) WebSocketClosedError once closed.
    write: Callable[[bytes], asyncio.Future[None]]
    hang_up: Callable[[str], None]  # closes the connection, saying why
    cursor: int = 0  # seq of the last event sent (or of the snapshot sent)
    resync_reason: str | None = None  # set: a snapshot is owed before any further event
    resyncs: int = 0
    dropped: int = 0
    frames: int = 0
    bytes_sent: int = 0
    connected_at: float = field(default_factory=time.time)
    closed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class BridgeHub:
    """Durable events of one engine, fanned out to replica sessions (see the module docstring)."""

    def __init__(
        self,
        engine: Any,
        *,
        history_events: int = 100_000,
        pending_events: int = 100_000,
        frame_events: int = 2_000,
        pump_interval_seconds: float = 0.005,
        write_timeout_seconds: float = 30.0,
    ) -> None:
        if not isinstance(pending_events, int) or pending_events < 1:
            raise InvalidInputError(f"pending_events {pending_events!r} must be an int >= 1")
        if not isinstance(frame_events, int) or frame_events < 1:
            raise InvalidInputError(f"frame_events {frame_events!r} must be an int >= 1")
        if not pump_interval_seconds > 0:
            raise InvalidInputError(f"pump_interval_seconds {pump_interval_seconds!r} must be > 0")
        if not write_timeout_seconds > 0:
            raise InvalidInputError(f"write_timeout_seconds {write_timeout_seconds!r} must be > 0")
        self.engine = engine
        # A new epoch per hub: a replica resumes only from the very history it was fed from.
        self.epoch = uuid.uuid4().hex
        self.history = DurableHistory(history_events)
        self.frame_events = frame_events
        self.pump_interval_seconds = pump_interval_seconds
        self.write_timeout_seconds = write_timeout_seconds
        self.feed = DurableFeed(
            engine,
            self.history,
            self._wake_all,
            pending_events=pending_events,
            frame_events=frame_events,
            pump_interval_seconds=pump_interval_seconds,
        )
        # Frames built since the history last moved, by the cursor they follow: at most one per
        # connected replica (they share one while they keep up), dropped at each move.
        self._frames: dict[int, tuple[bytes, int]] = {}
        self._sessions: dict[int, ReplicaSession] = {}
        self._ids = itertools.count(1)
        self.sessions_total = 0
        self.resyncs = 0
        self.dropped = 0
        self.write_timeouts = 0
        self.frames_built = 0  # events frames built; each is written to every replica at its cursor

    @property
    def durable_seq(self) -> int:
        """Highest seq the engine's journal cannot lose (synced in the ack log or committed)."""
        return self.feed.durable_seq

    def attach_loop(self, loop: Any) -> None:
        """The server's IOLoop (called by each connection as it opens, on that loop)."""
        self.feed.attach_loop(loop)

    def _wake_all(self) -> None:
        """The history moved (pump, loop thread): frames built before are short or gone."""
        self._frames.clear()
        for session in list(self._sessions.values()):
            session.wake.set()

    def open_session(
        self,
        write: Callable[[bytes], asyncio.Future[None]],
        hang_up: Callable[[str], None],
        *,
        peer: str = "",
        user: str | None = None,
    ) -> ReplicaSession:
        session = ReplicaSession(next(self._ids), peer, user, write, hang_up)
        self._sessions[session.id] = session
        self.sessions_total += 1
        return session

    def close_session(self, session: ReplicaSession) -> None:
        session.closed = True
        session.wake.set()
        self._sessions.pop(session.id, None)

    def request_resync(self, session: ReplicaSession, reason: str) -> None:
        """The replica saw a gap: send it a fresh snapshot next."""
        self._resync(session, f"requested by the replica: {reason}" if reason else "requested")

    def _resync(self, session: ReplicaSession, reason: str, dropped: int = 0) -> None:
        session.resync_reason = reason
        session.resyncs += 1
        session.dropped += dropped
        self.resyncs += 1
        self.dropped += dropped
        session.wake.set()

    def welcome(self, session: ReplicaSession, hello: protocol.Hello) -> protocol.Welcome:
        """Decide how `session` starts: resume after `hello.last_seq`, or a snapshot."""
        history, last = self.history, hello.last_seq
        resume = False
        if hello.epoch is None or last is None:
            session.resync_reason = "new replica"
        elif hello.epoch != self.epoch:
            session.resync_reason = "the server restarted (new epoch)"
        elif last > history.last_seq or not history.reaches(last):
            session.resync_reason = f"the history no longer reaches back to seq {last}"
        else:
            session.cursor, resume = last, True
        if not resume:
            self.resyncs += 1
            session.resyncs += 1
        return protocol.Welcome(
            version=protocol.PROTOCOL_VERSION,
            epoch=self.epoch,
            schema_version=self.engine.store.schema_version,
            durable_seq=history.last_seq,
            resume=resume,
            topics=tuple(spec.name for spec in self.engine.registry if not spec.transient),
        )

    async def serve(self, session: ReplicaSession) -> None:
        """Send `session` its snapshot (when owed) and events until it closes."""
        history = self.history
        try:
            while not session.closed:
                if session.resync_reason is not None:
                    await self._send_snapshot(session)
                    continue
                if session.cursor < history.last_seq:
                    if not history.reaches(session.cursor):
                        behind = history.first_seq - 1 - session.cursor
                        self._resync(session, f"fell {behind} events behind", dropped=behind)
                        continue
                    cursor = session.cursor
                    frame, count = self._frame_after(cursor)
                    await self._write(session, frame)
                    session.cursor = cursor + count
                    continue
                session.wake.clear()
                await session.wake.wait()
        except (
            TimeoutError,
            tornado.websocket.WebSocketClosedError,
            tornado.iostream.StreamClosedError,
        ) as exc:
            log.debug("bridge session %s ended: %r", session.id, exc)
            if not session.closed:
                session.hang_up(
                    f"too slow: a frame was not taken within {self.write_timeout_seconds} s"
                )
        except Exception:
            log.exception("bridge session %s failed; closing it", session.id)
            if not session.closed:
                session.hang_up("server error; reconnect to resume")
        finally:
            self.close_session(session)

    def _frame_after(self, cursor: int) -> tuple[bytes, int]:
        """The events frame after `cursor`, built once for all replicas at that cursor (until
        the history moves on: `_wake_all` forgets the frames)."""
        cached = self._frames.get(cursor)
        if cached is not None:
            return cached
        parts, count = self.history.after(cursor, self.frame_events)
        self._frames[cursor] = cached = (protocol.events_frame(parts), count)
        self.frames_built += 1
        return cached

    async def _write(self, session: ReplicaSession, frame: bytes) -> None:
        sent = session.write(frame)
        # Mostly the socket took the whole frame at once: nothing to wait for (the common case
        # for a replica keeping up, so it costs the loop no task and no timer).
        if not sent.done():
            # Waited on, never cancelled (tornado's stream does not expect that): on a timeout
            # the connection is closed, which ends the write; its error is then retrieved here.
            done, _ = await asyncio.wait((sent,), timeout=self.write_timeout_seconds)
            if not done:
                sent.add_done_callback(lambda f: f.cancelled() or f.exception())
                self.write_timeouts += 1
                raise TimeoutError(f"frame not taken within {self.write_timeout_seconds} s")
        sent.result()
        session.frames += 1
        session.bytes_sent += len(frame)

    async def _send_snapshot(self, session: ReplicaSession) -> None:
        reason = session.resync_reason or ""
        loop = asyncio.get_running_loop()
        # Copy and encode off the loop: other replicas keep streaming meanwhile.
        seq, state = await loop.run_in_executor(None, self._encoded_snapshot)
        # The snapshot may hold events the journal could still lose: wait until they are
        # durable (one group commit, normally) before a replica may see them.
        while self.durable_seq < seq and not session.closed:
            await asyncio.sleep(self.pump_interval_seconds)
        if session.closed:
            return
        session.resync_reason = None
        session.cursor = seq
        frame = protocol.websocket_frame(
            protocol.encode(protocol.Snapshot(seq=seq, reason=reason, state=state))
        )
        await self._write(session, frame)

    def _encoded_snapshot(self) -> tuple[int, msgspec.Raw]:
        snapshot = self.engine.store.snapshot()
        return snapshot.seq, msgspec.Raw(snapshot.to_bytes())

    # -- metrics, close -------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        """Connected replicas, their lag, resyncs, events skipped by resyncs, the bounds."""
        history = self.history
        head = history.last_seq
        sessions = list(self._sessions.values())
        return {
            "epoch": self.epoch,
            "clients": len(sessions),
            "clients_total": self.sessions_total,
            "durable_seq": self.durable_seq,
            "history_first_seq": history.first_seq,
            "history_last_seq": head,
            "history_events": len(history),
            "history_capacity": history.capacity,
            "history_bytes": history.bytes_held,
            "history_restarts": self.feed.history_restarts,
            "feed": self.feed.source,
            "pending_events": self.feed.pending_events,
            "pending_limit": self.feed.pending_limit,
            "pending_dropped": self.feed.pending_dropped,
            "resyncs": self.resyncs,
            "dropped": self.dropped,
            "write_timeouts": self.write_timeouts,
            "frames_built": self.frames_built,
            "per_client": [
                {
                    "id": s.id,
                    "peer": s.peer,
                    "user": s.user,
                    "cursor": s.cursor,
                    "lag_events": max(0, head - s.cursor),
                    "resyncs": s.resyncs,
                    "dropped": s.dropped,
                    "frames": s.frames,
                    "bytes_sent": s.bytes_sent,
                }
                for s in sessions
            ],
        }

    def hang_up_all(self, reason: str) -> None:
        """Close every replica connection (loop thread)."""
        for session in list(self._sessions.values()):
            session.hang_up(reason)

    def close(self) -> None:
        """Stop listening to the engine's bus (connections are closed by their server)."""
        self.feed.close()
        # From any thread (the loop may be gone): the sessions' asyncio events are not touched.
        for session in list(self._sessions.values()):
            session.closed = True
        self._sessions.clear()
