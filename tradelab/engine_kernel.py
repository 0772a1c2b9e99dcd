"""The engine's kernel thread: drain submitted events in batches, stamp seq and ts, apply them to
the store, hand them to the journal writer, publish them on the bus, and take snapshots.

Thread model: everything here runs on the one kernel thread, except `Wakeup.ring`, which any
submitting thread may call. `KernelLoop` is the kernel half of `Engine` (see engine.py).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from tradelab.events import Event, encode_payload, now_ns
from tradelab.journal.snapshots import SnapshotInfo
from tradelab.journal.writer import Ticket

log = logging.getLogger("tradelab.engine")


class Wakeup:
    """The kernel's doorbell: one waiter, any number of ringers. A bare lock, so a ring is one C
    call where threading.Event.set takes a Condition and notifies in Python, per submit."""

    __slots__ = ("_bell",)

    def __init__(self) -> None:
        self._bell = threading.Lock()
        self._bell.acquire()

    def ring(self) -> None:
        try:  # noqa: SIM105 (a try is free; contextlib.suppress is a call on every submit)
            self._bell.release()
        except RuntimeError:  # already rung and not yet heard: once is enough
            pass

    def wait(self, timeout: float) -> bool:
        """Block until rung (True) or `timeout` seconds pass; a ring heard before counts."""
        return self._bell.acquire(timeout=timeout)


class KernelLoop:
    """The kernel-thread methods of Engine; they use its store, bus, writer, queue and config."""

    def _kernel_loop(self) -> None:
        self._kernel_ident = threading.get_ident()
        queue, wakeup = self._queue, self._wakeup
        cfg = self.config
        limit = cfg.kernel_batch_size
        # Read once: a param attribute costs ~1 us, and these are checked after every batch.
        self._snapshot_every = (cfg.snapshot_every_events, cfg.snapshot_every_seconds)
        while True:
            if not queue:
                if self._kernel_stop:
                    return
                self._kernel_idle = True
                if not queue:  # re-checked: a producer that saw the kernel busy did not ring
                    wakeup.wait(self._idle_wait())
                self._kernel_idle = False
                self._maybe_snapshot()
                continue
            batch = [queue.popleft() for _ in range(min(limit, len(queue)))]
            try:
                self._process(batch)
            except BaseException:  # keep the kernel alive; the failure is in the log
                log.exception("engine kernel failed to process a batch")

    def _idle_wait(self) -> float:
        every = self._snapshot_every[1]
        return 0.5 if not every else max(0.01, min(0.5, every))

    def _process(self, batch: list) -> None:
        store, writer = self.store, self._writer
        assert writer is not None
        events: list[Event] = []
        waiting: list[Ticket | None] = []  # aligned with `events`
        controls = []
        seq = store.version
        stamp = time.time_ns  # now_ns() without the extra call, once per event
        for item in batch:
            topic = item[0]
            if topic is None:
                controls.append(item[1])
                continue
            seq += 1
            events.append(Event(seq, stamp(), topic, item[1], item[2], item[3], item[4]))
            waiting.append(item[5])
        if events:
            events, waiting = self._apply(events, waiting)
        if events:
            tickets = []
            urgent = False
            for event, ticket in zip(events, waiting, strict=True):
                if ticket is not None:
                    ticket.event = event
                    tickets.append(ticket)
                elif event.critical:
                    urgent = True
            writer.append(
                events, [encode_payload(e.payload) for e in events], tickets, urgent=urgent
            )
            self.bus.publish_events(events)
            self._since_snapshot += len(events)
        for control in controls:
            self._run_control(control)
        self._maybe_snapshot()

    def _apply(self, events: list[Event], waiting: list) -> tuple[list[Event], list]:
        """Apply the stamped batch in one store call. An event a reducer rejects is dropped
        before it is journaled; the events after it are stamped again to close the seq gap."""
        applied, error = self.store.apply_each(events, upcast=self._upcast_live)
        if error is None:
            return events, waiting
        kept, kept_waiting = events[:applied], waiting[:applied]
        rest, rest_waiting = events[applied:], waiting[applied:]
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
            rest_waiting = rest_waiting[1:]
            if not rest:
                break
            applied, error = self.store.apply_each(rest, upcast=self._upcast_live)
            kept += rest[:applied]
            kept_waiting += rest_waiting[:applied]
            rest, rest_waiting = rest[applied:], rest_waiting[applied:]
        return kept, kept_waiting

    def _run_control(self, control: Any) -> None:
        if isinstance(control, Ticket):  # a flush barrier: everything before it is applied
            control.event = Event(self.store.version, now_ns(), "engine.flushed", "", {})
            control.resolve()
        else:
            _, done = control
            self._take_snapshot(done)

    def _maybe_snapshot(self) -> None:
        if self._since_snapshot == 0:
            return
        every_events, every_seconds = self._snapshot_every
        if (every_events and self._since_snapshot >= every_events) or (
            every_seconds and time.monotonic() - self._last_snapshot_at >= every_seconds
        ):
            self._take_snapshot(None)

    def _take_snapshot(self, done: Ticket | None) -> None:
        snapshot = self.store.snapshot()  # the copy happens here; serializing on the writer
        self._since_snapshot = 0
        self._last_snapshot_at = time.monotonic()

        def written(info: SnapshotInfo | BaseException) -> None:
            if isinstance(info, BaseException):
                if done is not None:
                    done.resolve(info)
                return
            self._enqueue("snapshot.taken", info.to_payload())
            if done is not None:
                done.event = info
                done.resolve()

        assert self._writer is not None
        self._writer.write_snapshot(snapshot, written)
