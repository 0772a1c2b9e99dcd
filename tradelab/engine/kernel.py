"""The engine's kernel: the one thread that changes state. It takes submitted items in batches,
stamps seq and ts, applies them to the store, hands them to the journal writer, publishes them on
the bus, and runs flush barriers and snapshots.

Thread model: `run` is the kernel thread's body and everything it calls runs there. The engine
starts it, stops it with `request_stop`, and reads `ident` to refuse blocking calls made on it.
Inline (an engine built with `inline_kernel=True`, a single-threaded backtest): no thread; each
submit calls `process_now` (nothing queued: its item is processed at once, without the queue)
or else `drain`, which do the same work on the submitting thread, one caller at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from tradelab.engine.submissions import SubmitQueue, Wakeup
from tradelab.events import Event
from tradelab.journal.snapshots import SnapshotInfo

log = logging.getLogger("tradelab.engine")

# A submitted event: (topic, key, payload dict, payload JSON bytes, critical, schema_version,
# Ticket or None). A control: (None, ("flush" | "applied" | "snapshot", Future)).
# "applied" is a barrier for the store and the bus only (wait_applied, when_applied): events held
# back for the writer stay held, so an order's wait does not cost a pipe write of its own.
SNAPSHOT, FLUSH, APPLIED = "snapshot", "flush", "applied"
HOLD_EVENTS = 256


class Kernel:
    """State changes, in seq order, on one thread. Built by `Engine.start()` after recovery."""

    def __init__(
        self,
        *,
        store: Any,
        bus: Any,
        writer: Any,
        queue: SubmitQueue,
        wakeup: Wakeup,
        batch_size: int,
        snapshot_every_events: int,
        snapshot_every_seconds: float,
        upcast: bool,
        since_snapshot: int,
        announce: Callable[[str, dict], None],
        rush_critical: bool = True,
    ) -> None:
        self.store, self.bus, self.writer = store, bus, writer
        self.queue, self.wakeup = queue, wakeup
        self.batch_size = batch_size
        self.snapshot_every = (snapshot_every_events, snapshot_every_seconds)
        self.upcast = upcast
        # A long replayed tail counts toward the next snapshot, so crash after crash does not
        # replay an ever longer tail.
        self.since_snapshot = since_snapshot
        self.last_snapshot_at = time.monotonic()
        self.announce = announce  # queues an event of the engine's own (e.g. snapshot.taken)
        self.rejected_events = 0
        # False (an engine without durable acks): critical events wait for the next group
        # commit like the others, their submitters are not registered with the writer, and
        # events are handed to the writer HOLD_EVENTS at a time (inline, a pass holds one
        # event: one pipe write each cost more than the rest of its journaling).
        self.rush_critical = rush_critical
        self._held: tuple[list, list] = ([], [])
        self.busy_seconds = 0.0  # in _process: applying, handing to the writer, publishing
        self.ident: int | None = None
        self._stop = False
        self._thread = threading.Thread(target=self.run, name="engine-kernel", daemon=True)
        self._drain_lock = threading.RLock()

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Finish what is queued, then end the thread."""
        self._stop = True
        self.wakeup.ring()

    def join(self, timeout: float | None) -> bool:
        """Wait for the thread to end; False if it is still running after `timeout`."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the thread ---------------------------------------------------------------------------

    def run(self) -> None:
        self.ident = threading.get_ident()
        queue, wakeup, limit = self.queue, self.wakeup, self.batch_size
        while True:
            if not len(queue):
                if self._stop:
                    return
                queue.kernel_idle = True
                if not len(queue):  # re-checked: a producer that saw the kernel busy did not ring
                    wakeup.wait(self._idle_wait())
                    queue.prune()
                queue.kernel_idle = False
                self._maybe_snapshot()
                continue
            batch = queue.take(limit)
            try:
                self._process(batch)
            except BaseException:  # keep the kernel alive; the failure is in the log
                log.exception("engine kernel failed to process a batch")

    def drain(self) -> None:
        """Inline: process everything queued, on the calling thread. A submit made meanwhile by
        a bus handler (same thread, `ident` set) returns at once: this loop takes its event."""
        with self._drain_lock:
            if self.ident is not None:
                return
            self.ident = threading.get_ident()
            try:
                self._drain_queued()
            finally:
                self.ident = None

    def process_now(self, item: tuple, *, internal: bool = False) -> bool:
        """Inline: process `item` at once, as a batch of its own, then whatever handlers queued
        meanwhile, when nothing is queued ahead of it and no drain is under way; the queue's
        put and take are skipped (a backtest's one event a bar). False, with nothing done,
        when it must be queued instead (a submit from a bus handler during a drain, or items
        already waiting): `put` it and `drain`."""
        if self.ident is not None or len(self.queue):  # checked again under the lock
            return False
        with self._drain_lock:
            if self.ident is not None or not self.queue.pass_by(internal=internal):
                return False
            self.ident = threading.get_ident()
            try:
                try:
                    self._process_one(item)
                except BaseException:
                    log.exception("engine kernel failed to process a batch")
                self._drain_queued()
            finally:
                self.ident = None
            return True

    def _drain_queued(self) -> None:
        while len(self.queue):
            batch = self.queue.take(self.batch_size)
            try:
                self._process(batch)
            except BaseException:
                log.exception("engine kernel failed to process a batch")

    def _idle_wait(self) -> float:
        every = self.snapshot_every[1]
        return 0.5 if not every else max(0.01, min(0.5, every))

    def _process(self, batch: list) -> None:
        started = time.perf_counter()
        try:
            self._process_batch(batch)
        finally:
            self.busy_seconds += time.perf_counter() - started

    def _process_one(self, item: tuple) -> None:
        """`_process([item])` for one submitted event (`process_now`'s), without the batch's
        lists and loop: a backtest's every bar comes this way."""
        started = time.perf_counter()
        try:
            event = Event(
                self.store.version + 1,
                time.time_ns(),
                item[0],
                item[1],
                item[2],
                item[4],
                item[5],
            )
            try:
                self._journal_and_publish([event], [item[3]], [item[6]])
            finally:
                self._maybe_snapshot()
        finally:
            self.busy_seconds += time.perf_counter() - started

    def _process_batch(self, batch: list) -> None:
        events: list[Event] = []
        payloads: list[bytes] = []
        waiting: list = []  # aligned with `events`
        controls = []
        seq = self.store.version
        stamp = time.time_ns  # now_ns() without the extra call, once per event
        for item in batch:
            topic = item[0]
            if topic is None:
                controls.append(item[1])
                continue
            seq += 1
            events.append(Event(seq, stamp(), topic, item[1], item[2], item[4], item[5]))
            payloads.append(item[3])
            waiting.append(item[6])
        try:
            if events:
                self._journal_and_publish(events, payloads, waiting)
        finally:
            # Whatever a handler raised, a flush or snapshot request queued behind these events
            # is still answered.
            for kind, done in controls:
                self._run_control(kind, done)
            self._maybe_snapshot()

    def _journal_and_publish(self, events: list[Event], payloads: list, waiting: list) -> None:
        events, payloads, waiting = self._apply(events, payloads, waiting)
        if not events:
            return
        tickets = []
        urgent = False
        for event, ticket in zip(events, waiting, strict=True):
            if ticket is not None:
                ticket.event = event
                tickets.append(ticket)
            elif event.critical:
                urgent = True
        if self.rush_critical:
            self.writer.append(events, payloads, tickets, urgent=urgent)
        else:
            held_events, held_payloads = self._held
            held_events += events
            held_payloads += payloads
            if len(held_events) >= HOLD_EVENTS:
                self.release_held()
        self.since_snapshot += len(events)
        self.bus.publish_events(events)

    def _apply(self, events: list[Event], payloads: list, waiting: list) -> tuple:
        """Apply the stamped batch in one store call. An event a reducer rejects is dropped
        before it is journaled; the events after it are stamped again to close the seq gap."""
        applied, error = self.store.apply_each(events, upcast=self.upcast)
        if error is None:
            return events, payloads, waiting
        kept, kept_payloads, kept_waiting = events[:applied], payloads[:applied], waiting[:applied]
        rest, rest_payloads, rest_waiting = events[applied:], payloads[applied:], waiting[applied:]
        while error is not None:
            rejected, ticket = rest[0], rest_waiting[0]
            self.rejected_events += 1
            log.warning("event %s rejected by the store: %s", rejected.topic, error)
            if ticket is not None:
                ticket.resolve(error)
            # A fire-and-forget submitter has no ticket: the bus is where anyone learns of it.
            self.bus.publish(
                "engine.event_rejected",
                {"topic": rejected.topic, "key": rejected.key, "error": str(error)},
                key=rejected.key,
            )
            rest = [
                Event(e.seq - 1, e.ts, e.topic, e.key, e.payload, e.critical, e.schema_version)
                for e in rest[1:]
            ]
            rest_payloads, rest_waiting = rest_payloads[1:], rest_waiting[1:]
            if not rest:
                break
            applied, error = self.store.apply_each(rest, upcast=self.upcast)
            kept += rest[:applied]
            kept_payloads += rest_payloads[:applied]
            kept_waiting += rest_waiting[:applied]
            rest, rest_payloads, rest_waiting = (
                rest[applied:],
                rest_payloads[applied:],
                rest_waiting[applied:],
            )
        return kept, kept_payloads, kept_waiting

    def release_held(self) -> None:
        """Hand the writer the events held back (see `rush_critical`); before a flush barrier,
        a snapshot or close, so the writer has every applied event."""
        events, payloads = self._held
        if events:
            self._held = ([], [])
            self.writer.append(events, payloads, [], urgent=False)

    def _run_control(self, kind: str, done: Future) -> None:
        if kind == APPLIED:
            done.set_result(self.store.version)
            return
        self.release_held()
        if kind == FLUSH:  # a barrier: everything queued before it is applied and handed on
            done.set_result(self.store.version)
        else:
            self._take_snapshot(done)

    def _maybe_snapshot(self) -> None:
        if self.since_snapshot == 0:
            return
        every_events, every_seconds = self.snapshot_every
        if (every_events and self.since_snapshot >= every_events) or (
            every_seconds and time.monotonic() - self.last_snapshot_at >= every_seconds
        ):
            self._take_snapshot(None)

    def _take_snapshot(self, done: Future | None) -> None:
        self.release_held()
        try:
            snapshot = self.store.snapshot()  # the copy happens here; serializing on the writer
        except BaseException as exc:
            if done is not None:
                done.set_exception(exc)
            raise
        self.since_snapshot = 0
        self.last_snapshot_at = time.monotonic()

        def written(info: SnapshotInfo | BaseException) -> None:
            # On the writer's thread: never blocks on the kernel (the announcement bypasses
            # the queue's bound).
            if isinstance(info, BaseException):
                if done is not None and not done.done():
                    done.set_exception(info)
                return
            self.announce("snapshot.taken", info.to_payload())
            if done is not None and not done.done():
                done.set_result(info)

        try:
            self.writer.write_snapshot(snapshot, written)
        except BaseException as exc:
            written(exc)
            raise
