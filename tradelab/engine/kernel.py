"""The engine's kernel: the one thread that changes state. It takes submitted items in batches,
stamps seq and ts, applies them to the store, hands them to the journal writer, publishes them on
the bus, and runs flush barriers and snapshots.

Thread model: `run` is the kernel thread's body and everything it calls runs there. The engine
starts it, stops it with `request_stop`, and reads `ident` to refuse blocking calls made on it.
Without a thread (a backtest's engine): `InlineKernel` in kernel_inline.py.

Threaded, a blocking submitter may process its own event (`run_here`): when nothing is queued
and the kernel thread is not processing, its event is stamped, applied and journaled on the
submitter's thread, under the same turn lock the kernel thread holds per batch, so seq order
and each producer's order hold; its acknowledgement needs no hand-off to the kernel thread and
back. Its hand-over to the writer process and its publishing stay on the kernel thread, in seq
order and first, once the submitter has synced its event and rung: no bus handler runs on a
submitter's thread, and neither competes with that sync for a CPU.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from tradelab.engine.submissions import SubmitQueue, Wakeup
from tradelab.errors import StateError, interrupts_the_user
from tradelab.events import Event
from tradelab.journal.snapshots import SnapshotInfo

log = logging.getLogger("tradelab.engine")

# A submitted event: (topic, key, payload dict, payload JSON bytes, critical, schema_version,
# Ticket or None). A control: (None, ("flush" | "applied" | "snapshot", Future)). "applied" is a
# barrier for the store and the bus only (wait_applied, when_applied): events held back for the
# writer stay held, so an order's wait does not cost a pipe write of its own.
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
        # A replayed tail counts toward the next snapshot: crashes replay no ever longer tail.
        self.since_snapshot = since_snapshot
        self.last_snapshot_at = time.monotonic()
        self.announce = announce  # queues an event of the engine's own (e.g. snapshot.taken)
        self.rejected_events = 0
        # A KeyboardInterrupt a reducer or watcher raised on the main thread (an inline backtest,
        # a submitter processing its own event): raised once the batch is journaled.
        self._interrupt: BaseException | None = None
        # False (an engine without durable acks): critical events wait for the next group
        # commit like the others, their submitters are not registered with the writer, and
        # events are handed to the writer HOLD_EVENTS at a time (inline, a pass holds one
        # event: one pipe write each cost more than the rest of its journaling).
        self.rush_critical = rush_critical
        self._held: tuple[list, list] = ([], [])
        self.busy_seconds = 0.0  # in _process: applying, handing to the writer, publishing
        self.publishing = 0  # events of the batch being published (a stop's notice counts them)
        self.ident: int | None = None
        self._stop = False
        self._thread = threading.Thread(target=self.run, name="engine-kernel", daemon=True)
        # Threaded: held by whoever processes items, the kernel thread or a submitter (run_here).
        self._turn = threading.Lock()
        self._guest: int | None = None  # the submitter's thread while it processes its event
        self.run_here_events = 0
        # (writer frame or None, events) a submitter processed: the kernel thread sends and
        # publishes them before anything else.
        self._deferred: list[tuple[Any, list[Event]]] = []
        self._log_only = getattr(writer, "log", None)  # the process writer's first half

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

    def on_its_thread(self) -> bool:
        """Whether the calling thread is processing items (the kernel thread, a drain, or a
        submitter in `run_here`): a blocking call there would wait for itself."""
        me = threading.get_ident()
        return me == self.ident or me == self._guest

    # -- the thread ---------------------------------------------------------------------------

    def run(self) -> None:
        self.ident = threading.get_ident()
        queue, wakeup, limit, turn = self.queue, self.wakeup, self.batch_size, self._turn
        while True:
            if not len(queue) and not self._deferred:
                if self._stop:
                    return
                queue.kernel_idle = True
                # Re-checked: a producer that saw the kernel busy did not ring.
                if not len(queue) and not self._deferred:
                    wakeup.wait(self._idle_wait())
                    queue.prune()
                queue.kernel_idle = False
                with turn:
                    self._publish_deferred()
                    self._maybe_snapshot()
                continue
            with turn:
                self._publish_deferred()
                if not len(queue):
                    continue
                batch = queue.take(limit)
                try:
                    self._process(batch)
                except BaseException:  # keep the kernel alive; the failure is in the log
                    log.exception("engine kernel failed to process a batch")

    def run_here(self, item: tuple) -> bool:
        """Threaded: process a blocking submitter's `item` on its own thread (see the module
        docstring). False, with nothing done, when it must be queued instead: items are
        queued ahead of it, the kernel thread is processing, or the kernel is stopping. After
        True the submitter syncs its event (its ticket's duty), then rings `wakeup`: the
        kernel thread sends and publishes it, not competing with that sync for a CPU."""
        if len(self.queue) or self._stop or not self._turn.acquire(blocking=False):
            return False
        try:
            if not self.queue.pass_by():  # something was queued meanwhile
                return False
            self._guest = threading.get_ident()
            self.run_here_events += 1
            try:
                self._process_one(item, deferred=self._deferred)
            except BaseException as exc:  # its ticket carries the failure to the submitter
                if interrupts_the_user(exc):
                    raise  # the user's Ctrl-C, its event refused or journaled (_interrupt)
                log.exception("engine kernel failed to process a submitter's event")
            finally:
                self._guest = None
        finally:
            self._turn.release()
        return True

    def _publish_deferred(self) -> None:
        if not self._deferred:
            return
        deferred, self._deferred = self._deferred, []
        for frame, events in deferred:
            try:
                if frame is not None:
                    self.writer.send_events(frame)
            except BaseException:  # the writer failed: it reports that itself
                log.exception("engine kernel failed to hand a batch to the journal writer")
            self._publish(events)

    def _publish(self, events: list[Event]) -> None:
        self.publishing = len(events)
        try:
            self.bus.publish_events(events)
        finally:
            self.publishing = 0

    def _idle_wait(self) -> float:
        every = self.snapshot_every[1]
        return 0.5 if not every else max(0.01, min(0.5, every))

    def _process(self, batch: list) -> None:
        started = time.perf_counter()
        try:
            self._process_batch(batch)
        finally:
            self.busy_seconds += time.perf_counter() - started

    def _process_one(self, item: tuple, deferred: list | None = None) -> None:
        """`_process([item])` for one submitted event, without the batch's lists and loop (a
        backtest's every bar, a submitter's own event); snapshots are left to the caller."""
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
            self._journal_and_publish([event], [item[3]], [item[6]], deferred)
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

    def _journal_and_publish(
        self,
        events: list[Event],
        payloads: list,
        waiting: list,
        deferred: list | None = None,
    ) -> None:
        events, payloads, waiting = self._apply(events, payloads, waiting)
        try:
            self._hand_on(events, payloads, waiting, deferred)
        finally:
            interrupt, self._interrupt = self._interrupt, None
            if interrupt is not None:  # the user's Ctrl-C, after nothing applied was left out
                raise interrupt

    def _hand_on(self, events: list, payloads: list, waiting: list, deferred: list | None) -> None:
        """Journal and publish the applied `events` (after `_apply`)."""
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
        frame = None
        if self.rush_critical and deferred is not None and self._log_only is not None:
            frame = self._log_only(events, payloads, tickets, urgent=urgent)
        elif self.rush_critical:
            self.writer.append(events, payloads, tickets, urgent=urgent)
        else:
            held_events, held_payloads = self._held
            held_events += events
            held_payloads += payloads
            if len(held_events) >= HOLD_EVENTS:
                self.release_held()
        self.since_snapshot += len(events)
        if deferred is None:
            self._publish(events)
        else:
            deferred.append((frame, events))

    def _apply(self, events: list[Event], payloads: list, waiting: list) -> tuple:
        """Apply the stamped batch in one store call. An event a reducer rejects is dropped
        before it is journaled; the events after it are stamped again to close the seq gap."""
        applied, error = self._apply_each(events)
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
            applied, error = self._apply_each(rest)
            kept += rest[:applied]
            kept_payloads += rest_payloads[:applied]
            kept_waiting += rest_waiting[:applied]
            rest, rest_payloads, rest_waiting = (
                rest[applied:],
                rest_payloads[applied:],
                rest_waiting[applied:],
            )
        return kept, kept_payloads, kept_waiting

    def _apply_each(self, events: list[Event]) -> tuple[int, Any]:
        """`store.apply_each`, with a reducer's SystemExit or KeyboardInterrupt taken as its
        event's refusal: the store applies the events before it, rolls it back and lets the
        exception through, which would leave those events applied but never journaled (a seq
        gap) and the refused one's submitter waiting for a ticket nobody resolves."""
        try:
            return self.store.apply_each(events, upcast=self.upcast)
        except BaseException as exc:
            if interrupts_the_user(exc):
                self._interrupt = exc
            applied = self.store.version - events[0].seq + 1
            if applied >= len(events):  # raised once all were applied (by a watcher)
                if self._interrupt is None:
                    log.exception("a store watcher raised at seq %d", self.store.version)
                return applied, None
            refused = events[applied]
            error = StateError(
                f"a reducer for topic {refused.topic!r} raised {type(exc).__name__} at seq "
                f"{refused.seq}; the event is refused and the store is unchanged"
            )
            error.__cause__ = exc
            return applied, error

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
