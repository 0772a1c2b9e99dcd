"""`Engine`: owns the bus, the store, the journal and the kernel; the lifecycle and `submit`.

Thread model: `submit` may be called from any thread; it checks the payload, encodes it once
(those bytes are what the journal stores; the store applies their decode) and queues it in the
bounded submit queue (submissions.py). The kernel thread (kernel.py) stamps, applies, journals
and publishes. Critical (or wait=True) submitters return once their own event is durable (the
synced ack log, critical_acks.py); while a critical is in flight, producers with a backlog
step aside (CriticalPriority).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from tradelab.config import EngineConfig, config_with, writer_settings
from tradelab.cpu_layout import PinnedThreads, pin_engine_process
from tradelab.engine.controls import EngineControls
from tradelab.engine.kernel import Kernel
from tradelab.engine.kernel_inline import InlineKernel
from tradelab.engine.stop_notice import StopNotice
from tradelab.engine.store import engine_store
from tradelab.engine.submissions import CriticalPriority, SubmitQueue, Wakeup
from tradelab.errors import InvalidInputError, LifecycleError, TradelabError
from tradelab.events import Event, TopicRegistry, encode_submitted, now_ns
from tradelab.journal.journal import Journal
from tradelab.journal.recovery import RecoveryReport, lost_tail_error, recover
from tradelab.journal.writer import JournalWriter, Ticket

log = logging.getLogger(__name__)

CREATED, RECOVERING, READY, RUNNING, STOPPING, STOPPED = (
    "created",
    "recovering",
    "ready",
    "running",
    "stopping",
    "stopped",
)


class Engine(EngineControls):
    """One trading session's state engine. Construct, `start()`, `submit(...)`, `stop()`."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        registry: TopicRegistry | None = None,
        migrations: Any = None,
        inline_kernel: bool = False,
        durable_acks: bool = True,
        **overrides: Any,
    ) -> None:
        """`inline_kernel`: no kernel thread; every submit applies, journals and publishes what
        is queued on the submitting thread (a backtest's single thread; see kernel.py).
        `durable_acks=False` (inline only): a critical submit returns once its event is applied
        and published, not once durable; critical events are committed with the next group
        like the others, and `stop()` returns with everything durable. For a backtest, whose acknowledgements mean nothing
        before its end (a crashed backtest is run again, not recovered)."""
        if not durable_acks and not inline_kernel:
            raise InvalidInputError("durable_acks=False needs inline_kernel=True (a backtest)")
        from tradelab.bus import EventBus
        from tradelab.state import MigrationRegistry

        self.config = config_with(config, overrides)
        self.registry = registry if registry is not None else TopicRegistry()
        self.bus = EventBus(
            registry=self.registry, history_size=self.config.history_size, name="engine"
        )
        self.migrations = (
            migrations
            if migrations is not None
            else MigrationRegistry(
                snapshot_version=self.config.state_schema_version, topics=self.registry
            )
        )
        self.store, self._store_writes = engine_store(
            self.config.state_schema_version, self.migrations, self.config.journal_path
        )
        # Live events are built from `self.registry`, the very registry the default migrations
        # take their target versions from, so upcasting them is a no-op the kernel can skip.
        self._upcast_live = migrations is not None
        self.journal: Journal | None = None
        self.recovery_report: RecoveryReport | None = None
        self.stop_problem: str | None = None  # what a stop could not do (said by the CLI)
        self.state = CREATED
        self._writer: JournalWriter | None = None
        self._pinned: PinnedThreads | None = None
        self._wakeup = Wakeup()
        self._queue = SubmitQueue(self.config.max_queued_events, self._wakeup)
        self._queue.close(f"engine is {CREATED}; submit() needs a running engine")
        self._submit_timeout = self.config.submit_timeout_seconds
        self._priority = CriticalPriority(
            self.config.critical_priority_ms / 1000,
            self._queue.own_backlog,
            min_backlog=self.config.kernel_batch_size,
        )
        self._kernel: Kernel | None = None
        self._inline = inline_kernel
        self._durable_acks = durable_acks
        self.durable_wait_seconds = 0.0
        self._lifecycle_lock = threading.RLock()

    # -- wiring (before start) ------------------------------------------------------------------

    def register_reducers(self, mapping: Mapping[str, Any]) -> None:
        """Add reducers for topics; only before `start()` (replay must see the same set)."""
        if self.state != CREATED:
            raise LifecycleError(f"register reducers before start(); the engine is {self.state}")
        self._store_writes.register_reducers(mapping)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Engine:
        """Open the journal, recover the store, start the writer and kernel: ready -> running.

        If any step fails, everything started so far (writer process, kernel thread, CPU pinning)
        is stopped again before the error propagates; the engine is then `stopped`.
        """
        with self._lifecycle_lock:
            if self.state != CREATED:
                raise LifecycleError(f"start() needs a new engine; this one is {self.state}")
            self.state = RECOVERING
            try:
                self._start()
            except BaseException:
                self._abandon_start()
                raise
            return self

    def _start(self) -> None:
        cfg = self.config
        self.journal = Journal(
            cfg.journal_path,
            wal_autocheckpoint=cfg.wal_autocheckpoint,
            timeout=cfg.open_timeout_seconds,
            writer_process=cfg.writer_process,
        )
        if self.journal.check.damage is not None and not cfg.accept_lost_tail:
            raise lost_tail_error(cfg.journal_path, self.journal.check.damage)
        report = recover(self.journal, self._store_writes, migrations=self.migrations)
        self._pinned, writer_cpus = pin_engine_process(cfg.pin_cpus and cfg.writer_process)
        self._writer = self.journal.start_writer(cpus=writer_cpus, **writer_settings(cfg))
        report.problems = list(self.journal.check.problems) + [
            p for p in report.problems if p not in self.journal.check.problems
        ]
        self.recovery_report = report
        self._kernel = (InlineKernel if self._inline else Kernel)(
            store=self._store_writes,
            bus=self.bus,
            writer=self._writer,
            queue=self._queue,
            wakeup=self._wakeup,
            batch_size=cfg.kernel_batch_size,
            snapshot_every_events=cfg.snapshot_every_events,
            snapshot_every_seconds=cfg.snapshot_every_seconds,
            upcast=self._upcast_live,
            since_snapshot=report.events_replayed,
            announce=self._announce,
            rush_critical=self._durable_acks,
        )
        if not self._inline:
            self._kernel.start()
        self._queue.reopen()
        self._emit_state(RECOVERING, CREATED)
        if report.damage is not None:
            self._enqueue("journal.damage_detected", report.damage, critical=True)
        for rejected in report.rejected_snapshots:
            self._enqueue("snapshot.rejected", rejected)
        self._enqueue("journal.recovered", report.to_payload())
        self._set_state(READY)
        self._set_state(RUNNING, wait=True)  # start() returns with `running` durable

    def _abandon_start(self) -> None:
        self._queue.close(f"engine start failed; it is {STOPPED}")
        kernel_stopped = True
        if self._kernel is not None:
            self._kernel.request_stop()
            kernel_stopped = self._kernel.join(30.0)
        if self.journal is not None and kernel_stopped:
            try:
                self.journal.close()
            except BaseException:
                log.exception("closing the journal after a failed start")
        self._unpin()
        self.state = STOPPED
        self.bus.close()

    def stop(self, timeout: float = 60.0) -> None:
        """Drain the queue, snapshot, journal `stopped`, commit, checkpoint, seal and close.

        Producers still waiting for room in the queue get a LifecycleError. If the kernel does
        not finish within `timeout`, the journal is left open under it (closing it would lose
        what the kernel still hands on) and a LifecycleError says so.
        """
        if self._kernel is not None and self._kernel.on_its_thread():
            raise LifecycleError(
                "stop() was called on the engine's kernel thread (from a bus handler?); it "
                "waits for that very thread to finish, so call it from another thread"
            )
        with self._lifecycle_lock:
            if self.state in (CREATED, STOPPED):
                self.state = STOPPED
                self._queue.close(f"engine is {STOPPED}; submit() needs a running engine")
                return
            assert self._kernel is not None
            deadline = time.monotonic() + timeout  # for the snapshot, stopped event, kernel's end

            def held() -> int:  # by the kernel: queued, or in the batch its handlers take
                return len(self._queue) + self._kernel.publishing

            with StopNotice(self._writer_pid(), queued=held) as notice:
                if self.state != STOPPING:  # a second stop() after a timeout only waits again
                    self._stop_journaled(notice, deadline)
                    self._kernel.request_stop()
                notice.step = "the kernel to apply what is queued"
                if not self._kernel.join(max(deadline - time.monotonic(), 1.0)):
                    raise LifecycleError(
                        f"the engine kernel did not finish within {timeout} s; the journal is "
                        "left open (call stop() again to keep waiting)"
                    )
                assert self.journal is not None
                if self._inline:  # what is still queued or held back reaches the writer first
                    self._kernel.drain()
                    self._kernel.release_held()
                notice.step = "the journal writer to commit and close"
                self.journal.close()
            self._unpin()
            self.state = STOPPED
            self._queue.close(f"engine is {STOPPED}; submit() needs a running engine")
            self.bus.close()

    def _stop_journaled(self, notice: StopNotice, deadline: float) -> None:
        """Close the queue, snapshot and journal `stopped`; on a failure, log it in one line
        (the caller's stop goes on: the kernel still applies and hands on what was queued)."""
        stopped_queued = False
        try:
            self._set_state(STOPPING)
            self._queue.close(f"engine is {STOPPING}; submit() needs a running engine")
            if self.journal_failure is None:
                notice.step = "the final snapshot"
                self.snapshot_now(timeout=max(deadline - time.monotonic(), 0.001))
            stopped_queued = True
            notice.step = "the stopped event to be durable"
            left = max(deadline - time.monotonic(), 0.001)
            self._emit_state(STOPPED, STOPPING, wait=True, timeout=left)
        except TradelabError as exc:
            log.error("engine stop could not snapshot and journal cleanly: %s", exc)
            self.stop_problem = f"{notice.step} failed ({exc})"
            if not stopped_queued and self.journal_failure is None:
                self._emit_state(STOPPED, STOPPING)  # journaled when the kernel gets to it

    def _writer_pid(self) -> int | None:
        """The journal writer's process, when it is not this one (the thread layout)."""
        pid = self._writer.describe().get("writer_pid") if self._writer is not None else None
        return pid if pid != os.getpid() else None

    def _unpin(self) -> None:
        if self._pinned is not None:
            self._pinned.restore()
            self._pinned = None

    def __enter__(self) -> Engine:
        if self.state == CREATED:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _set_state(self, new: str, wait: bool = False) -> None:
        previous, self.state = self.state, new
        self._emit_state(new, previous, wait=wait)

    def _emit_state(
        self, new: str, previous: str, wait: bool = False, timeout: float | None = 30.0
    ) -> None:
        self._enqueue(
            "engine.state_changed",
            {"state": new, "previous": previous},
            wait=wait,
            timeout=timeout,
            internal=True,
        )

    def _announce(self, topic: str, payload: dict) -> None:
        """An event of the engine's own, from any of its threads (never waits for room)."""
        try:
            # Inline, not drained here: this may be the writer client's reader thread, which
            # must not wait for a drain that waits for the writer (the next submit takes it).
            self._enqueue(topic, payload, internal=True, drain=False)
        except TradelabError:  # stopping or failed: the journal cannot take it any more
            log.debug("engine event %s not queued", topic, exc_info=True)

    # -- submitting -----------------------------------------------------------------------------

    def submit(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        key: str = "",
        critical: bool | None = None,
        wait: bool = False,
        timeout: float | None = 30.0,
    ) -> Event | None:
        """Queue an event from any thread; critical (or wait=True) blocks until durable (and
        applied to the store). Bus subscribers get it on the kernel thread, in seq order, maybe
        just after this returns; `wait_applied()` waits for that too.

        Returns the stamped Event when it blocked, else None. Called on the kernel thread (from a
        bus handler) it never blocks: blocking there would deadlock, so it returns None. A
        transient topic (`market.tick`) is published at once and never journaled: its Event,
        seq 0, is returned.

        When the queue is full (`EngineConfig.max_queued_events`) an ordinary submit waits for
        room up to `EngineConfig.submit_timeout_seconds`, then raises OverloadError; the event
        is then not accepted; with a kernel pass of this thread's events queued already, it
        first waits for other threads' critical submits in flight, up to
        `EngineConfig.critical_priority_ms`. A payload that cannot be journaled exactly is
        refused here with an InvalidInputError naming the field, before anything is applied.
        """
        return self._enqueue(topic, payload, key=key, critical=critical, wait=wait, timeout=timeout)

    def _enqueue(
        self,
        topic,
        payload,
        *,
        key="",
        critical=None,
        wait=False,
        timeout=30.0,
        internal=False,
        drain=True,
    ):
        # Checked and encoded here, on the submitting thread; the kernel stamps the Event once.
        spec, body, is_critical = self.registry.check(topic, payload, key=key, critical=critical)
        # Plain str: a subclass (numpy.str_) passes the checks, not the journal's encoder.
        topic, key = spec.name, key if type(key) is str else str.__str__(key)
        if spec.transient:
            event = Event(0, now_ns(), topic, key, body, is_critical, spec.schema_version)
            self.bus.publish_event(event)
            return event
        kernel = self._kernel
        on_kernel = kernel is not None and kernel.on_its_thread()
        blocking = (is_critical or wait) and not on_kernel
        threaded = not (self._inline or internal or on_kernel)
        if threaded and not blocking:
            self._priority.step_aside()  # while a critical is in flight, if it has a backlog
        data, applied = encode_submitted(body, topic)
        self._refuse_if_unwritable()
        ticket = Ticket() if blocking else None
        item = (topic, key, applied, data, is_critical, spec.schema_version, ticket)
        if not (threaded and is_critical):
            return self._hand_over(item, internal, on_kernel, drain, timeout)
        self._priority.begin()  # ordinary producers step aside until it returns
        try:
            return self._hand_over(item, internal, on_kernel, drain, timeout)
        finally:
            self._priority.end()

    def _hand_over(self, item: tuple, internal: bool, on_kernel: bool, drain: bool, timeout):
        """Have the kernel (or this thread) process a checked `item`; wait if it has a ticket."""
        kernel, ticket = self._kernel, item[6]
        blocking = ticket is not None
        inline = self._inline and drain and kernel is not None
        if inline:
            taken = kernel.process_now(item, internal=internal)
        else:  # a blocking submitter processes its own event when the kernel is free
            taken = blocking and not internal and kernel is not None and kernel.run_here(item)
        if not taken:
            self._queue.put(
                item,
                bounded=not (blocking or internal or on_kernel),
                urgent=blocking,
                timeout=self._submit_timeout,
                internal=internal,
            )
            if inline:
                kernel.drain()
        if inline and ticket is not None and not self._durable_acks and ticket.event is not None:
            return ticket.event  # applied and published (a rejection raises below)
        if ticket is None:
            return None
        started = time.perf_counter()
        try:
            return ticket.wait(timeout)
        finally:  # a metric: summed over every blocking submitter
            self.durable_wait_seconds += time.perf_counter() - started
            if taken and not inline:  # processed here: the kernel thread sends and publishes it
                self._wakeup.ring()

    def __repr__(self) -> str:
        return f"Engine({self.config.journal_path!r}, state={self.state}, seq={self.store.version})"
