"""`DurableFeed`: brings an engine's events into the bridge's history once they are durable.

Thread model: on the thread processing events (the engine's kernel thread, or a submitter
processing its own event under the kernel's turn lock) it only queues (a journal writer
listener getting each batch as the journal got it, or else a bus subscription getting each
event) and, when the pump is idle, wakes the server's loop. On that loop the pump moves what the journal cannot lose
any more (seq <= the writer's durable seq) into the `DurableHistory` and tells the hub.

Bound: events queued and not yet in the history <= `pending_events` (above the journal writer's
own bound on events not yet durable, so it fills only when the server's loop stalls). Policy when
full: the oldest are dropped; the gap restarts the history, and every replica behind it resyncs
(`pending_dropped` counts the events, `history_restarts` the gaps).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from tradelab.bridge.history import DurableHistory
from tradelab.events import Event

_encode_list = msgspec.json.Encoder().encode


class DurableFeed:
    """The engine's durable events, in seq order, into `history`; `on_moved()` after each pass."""

    def __init__(
        self,
        engine: Any,
        history: DurableHistory,
        on_moved: Callable[[], None],
        *,
        pending_events: int,
        frame_events: int,
        pump_interval_seconds: float,
    ) -> None:
        self.engine = engine
        self.history = history
        self.on_moved = on_moved
        self.frame_events = frame_events
        self.pump_interval_seconds = pump_interval_seconds
        self.pending_limit = pending_events
        self._pending: deque[Event] = deque(maxlen=pending_events)  # drops the oldest when full
        self._pending_chunks: deque[tuple[int, int, bytes]] = deque()
        self.source = ""  # "journal batches" or "bus events", once listening
        self.pending_dropped = 0
        self.history_restarts = 0
        self._loop: Any = None  # the tornado IOLoop of the server, known once a client connects
        self._pumping = False  # a pump pass is scheduled or running
        # Listening starts when the first replica connects: until then the engine pays nothing.
        self._subscription: Any = None

    @property
    def pending_events(self) -> int:
        chunks = list(self._pending_chunks)
        return len(self._pending) + sum(last - first + 1 for first, last, _ in chunks)

    # -- the kernel thread --------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        """Bus handler on the kernel thread: queue, and wake the loop's pump if it is idle."""
        if event.seq:  # transient events (ticks, rejections) are never journaled
            self._pending.append(event)
            if not self._pumping:
                self._pumping = True
                try:
                    self._loop.add_callback(self._pump)
                except (RuntimeError, AttributeError):  # the loop closed: the server stopped
                    self._pumping = False

    def _on_batch(self, first: int, last: int, body: bytes) -> None:
        """Journal writer listener (kernel thread or a submitter holding the kernel's turn): a
        batch as the journal got it."""
        chunks = self._pending_chunks
        chunks.append((first, last, body))
        if last - chunks[0][0] >= self.pending_limit:  # bounded by events, like `_pending`
            chunks.popleft()
        if not self._pumping:
            self._pumping = True
            try:
                self._loop.add_callback(self._pump)
            except (RuntimeError, AttributeError):  # the loop closed: the server stopped
                self._pumping = False

    # -- the loop thread ------------------------------------------------------------------------

    @property
    def durable_seq(self) -> int:
        """Highest seq the engine's journal cannot lose (synced in the ack log or committed)."""
        journal = self.engine.journal
        writer = journal.writer if journal is not None else None
        return writer.durable_seq if writer is not None else 0

    def attach_loop(self, loop: Any) -> None:
        """The server's IOLoop (called by each connection as it opens, on that loop)."""
        if self._loop is not loop:
            self._loop = loop
            self._pumping = True
            loop.add_callback(self._pump)
        if self._subscription is None and not self.engine.bus.closed:
            self._subscription = self._listen()

    def _listen(self) -> Any:
        """Feed on the journal writer's encoded batches when it offers them (the process
        writer: nothing to encode here), else on the bus, one event at a time."""
        journal = self.engine.journal
        writer = journal.writer if journal is not None else None
        if writer is not None and getattr(writer, "batch_listener", False) is None:
            writer.batch_listener = self._on_batch
            self.source = "journal batches"
            return writer
        self.source = "bus events"
        return self.engine.bus.subscribe("*", self._on_event, name="bridge")

    def _pump(self) -> None:
        """Move durable events into the history and wake the senders. While events keep coming
        it runs every `pump_interval_seconds` (one frame per replica per pass, however many
        events); once nothing is pending it goes idle until the kernel wakes it."""
        loop = self._loop
        if loop is None:
            self._pumping = False
            return
        durable = self.durable_seq
        history = self.history
        moved = 0
        # At most a quarter of the history per pass, then the senders run: one large commit
        # group must not overwrite the history under replicas that are keeping up.
        budget = max(1, history.capacity // 4)
        while moved < budget:
            chunk = self._next_durable_chunk(durable, budget - moved)
            if chunk is None:
                break
            first, last, body = chunk
            if first != history.last_seq + 1:
                if first <= history.last_seq:  # seen already (never expected): skip it
                    continue
                # A gap: the pending queue overflowed (or the first event after attaching).
                if len(history):
                    self.pending_dropped += first - history.last_seq - 1
                    self.history_restarts += 1
                history.restart_at(first - 1)
            history.append(first, last, body)
            moved += last - first + 1
        pending = self._pending or self._pending_chunks
        if moved:
            self.on_moved()
        if pending:
            delay = 0.0 if moved >= budget else self.pump_interval_seconds
            loop.call_later(delay, self._pump)
            return
        self._pumping = False
        # Queued after the check above, while the kernel still saw the pump busy: go on.
        if (self._pending or self._pending_chunks) and not self._pumping:
            self._pumping = True
            loop.add_callback(self._pump)

    def _next_durable_chunk(self, durable: int, room: int) -> tuple[int, int, bytes] | None:
        """The next durable run of pending events as (first, last, comma-joined JSON)."""
        chunks = self._pending_chunks
        if chunks:  # whole journal batches (a batch is durable as a whole, in practice)
            if chunks[0][1] > durable:
                return None
            first, last, body = chunks.popleft()
            return first, last, body[1:-1]
        pending = self._pending
        if not pending or pending[0].seq > durable:
            return None
        # Pending events are in seq order: the durable ones are a prefix. One encode call.
        take = min(self.frame_events, room, durable - pending[0].seq + 1, len(pending))
        popleft = pending.popleft
        batch = [popleft() for _ in range(take)]
        return batch[0].seq, batch[-1].seq, _encode_list(batch)[1:-1]

    def close(self) -> None:
        """Stop listening to the engine (from any thread)."""
        subscription, self._subscription = self._subscription, None
        if getattr(subscription, "batch_listener", None) == self._on_batch:
            subscription.batch_listener = None
        elif subscription is not None and subscription.active and not self.engine.bus.closed:
            self.engine.bus.unsubscribe(subscription)
        self._loop = None
