"""`Engine`: owns the bus, the store and the journal, and the ONE kernel thread that changes state.

Thread model: `submit` may be called from any thread; it validates and queues. The kernel thread
stamps seq and ts, applies the event to the store (a reducer failure rejects it before it is
journaled), hands the batch to the journal writer, then publishes on the bus, in seq order.
Critical (or wait=True) submitters are released by the writer once their event is durable: in
the writer process's synced ack log, or in a DuckDB commit (see README, "How an event becomes
durable").
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from tradelab.config import EngineConfig
from tradelab.cpu_layout import PinnedThreads, pin_engine_process
from tradelab.engine_kernel import KernelLoop, Wakeup
from tradelab.errors import InvalidInputError, JournalError, LifecycleError, TradelabError
from tradelab.events import Event, TopicRegistry, now_ns
from tradelab.journal.journal import Journal
from tradelab.journal.recovery import RecoveryReport, recover
from tradelab.journal.snapshots import SnapshotInfo
from tradelab.journal.writer import JournalWriter, Ticket
from tradelab.journal.writer_client import ProcessJournalWriter

log = logging.getLogger(__name__)

CREATED, RECOVERING, READY, RUNNING, STOPPING, STOPPED = (
    "created",
    "recovering",
    "ready",
    "running",
    "stopping",
    "stopped",
)
_REDUCER_MODULES = (
    "tradelab.state.reducers",
    "tradelab.market.reducers",
    "tradelab.trading.reducers",
)


def default_reducers() -> dict[str, list]:
    """Union of every domain module's `reducers()`; a domain not yet present is skipped."""
    import importlib

    merged: dict[str, list] = {}
    for name in _REDUCER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            raise
        for topic, reducers in module.reducers().items():
            merged.setdefault(topic, []).extend(reducers)
    return merged


def build_store(schema_version: int = 1, reducers: Mapping[str, Any] | None = None):
    """A fresh StateStore with the default reducers (plus `reducers`): what replay folds into."""
    from tradelab.state import StateStore

    store = StateStore(schema_version=schema_version)
    store.register_reducers(default_reducers())
    if reducers:
        store.register_reducers(reducers)
    return store


class Engine(KernelLoop):
    """One trading session's state engine. Construct, `start()`, `submit(...)`, `stop()`."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        registry: TopicRegistry | None = None,
        migrations: Any = None,
        **overrides: Any,
    ) -> None:
        from tradelab.bus import EventBus
        from tradelab.state import MigrationRegistry, StateStore

        self.config = config if config is not None else EngineConfig()
        if overrides:
            self.config.param.update(**overrides)
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
        self.store = StateStore(
            schema_version=self.config.state_schema_version, migrations=self.migrations
        )
        # Live events are built from `self.registry`, the very registry the default migrations
        # take their target versions from, so upcasting them is a no-op the kernel can skip.
        self._upcast_live = migrations is not None
        self.store.register_reducers(default_reducers())
        self.journal: Journal | None = None
        self.recovery_report: RecoveryReport | None = None
        self.state = CREATED
        self.rejected_events = 0
        self._writer: JournalWriter | ProcessJournalWriter | None = None
        self._pinned: PinnedThreads | None = None
        self._queue: deque = deque()
        self._wakeup = Wakeup()
        self._kernel_idle = False
        self._accepting = False
        self._lifecycle_lock = threading.RLock()
        self._kernel: threading.Thread | None = None
        self._kernel_ident: int | None = None
        self._kernel_stop = False
        self._since_snapshot = 0
        self._last_snapshot_at = time.monotonic()
        self._snapshot_every = (0, 0.0)  # (events, seconds), read by the kernel at start

    # -- wiring (before start) ------------------------------------------------------------------

    def register_reducers(self, mapping: Mapping[str, Any]) -> None:
        """Add reducers for topics; only before `start()` (replay must see the same set)."""
        if self.state != CREATED:
            raise LifecycleError(f"register reducers before start(); the engine is {self.state}")
        self.store.register_reducers(mapping)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Engine:
        """Open the journal, recover the store, start the writer and kernel: ready -> running."""
        with self._lifecycle_lock:
            if self.state != CREATED:
                raise LifecycleError(f"start() needs a new engine; this one is {self.state}")
            self.state = RECOVERING
            cfg = self.config
            try:
                self.journal = Journal(
                    cfg.journal_path,
                    wal_autocheckpoint=cfg.wal_autocheckpoint,
                    timeout=cfg.open_timeout_seconds,
                    writer_process=cfg.writer_process,
                )
                report = recover(self.journal, self.store, migrations=self.migrations)
                self._pinned, writer_cpus = pin_engine_process(cfg.pin_cpus and cfg.writer_process)
                self._writer = self.journal.start_writer(
                    cpus=writer_cpus,
                    ack_log=cfg.ack_log,
                    group_commit_ms=cfg.group_commit_ms,
                    max_group_events=cfg.max_group_events,
                    keep_snapshots=cfg.keep_snapshots,
                    checkpoint_idle_seconds=cfg.checkpoint_idle_seconds,
                    segments=cfg.segments_enabled,
                    segment_every_events=cfg.segment_every_events,
                    segment_every_seconds=cfg.segment_every_seconds,
                )
            except BaseException:
                self._unpin()
                if self.journal is not None:
                    self.journal.close()
                    self.journal = None
                self.state = CREATED
                raise
            report.problems = list(self.journal.check.problems) + [
                p for p in report.problems if p not in self.journal.check.problems
            ]
            self.recovery_report = report
            self._last_snapshot_at = time.monotonic()
            # A long replayed tail counts toward the next snapshot, so crash after crash does
            # not replay an ever longer tail.
            self._since_snapshot = report.events_replayed
            self._kernel = threading.Thread(
                target=self._kernel_loop, name="engine-kernel", daemon=True
            )
            self._kernel.start()
            self._accepting = True
            self._emit_state(RECOVERING, CREATED)
            if report.damage is not None:
                self._enqueue("journal.damage_detected", report.damage, critical=True)
            for rejected in report.rejected_snapshots:
                self._enqueue("snapshot.rejected", rejected)
            self._enqueue("journal.recovered", report.to_payload())
            self._set_state(READY)
            self._set_state(RUNNING, wait=True)  # start() returns with `running` durable
            return self

    def stop(self, timeout: float = 60.0) -> None:
        """Drain the queue, snapshot, journal `stopped`, commit, checkpoint, seal and close."""
        with self._lifecycle_lock:
            if self.state in (CREATED, STOPPED):
                self.state = STOPPED
                self._accepting = False
                return
            try:
                self._set_state(STOPPING)
                self._accepting = False
                if self._writer is not None and self._writer.failed is None:
                    self.snapshot_now(timeout=timeout)
                self._emit_state(STOPPED, STOPPING, wait=True)
            except TradelabError:
                self._accepting = False
                log.exception("engine stop could not snapshot/journal cleanly")
            self._kernel_stop = True
            self._wakeup.ring()
            if self._kernel is not None:
                self._kernel.join(timeout)
            assert self.journal is not None
            self.journal.close()
            self._unpin()
            self.state = STOPPED
            self.bus.close()

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

    def _emit_state(self, new: str, previous: str, wait: bool = False) -> None:
        self._enqueue("engine.state_changed", {"state": new, "previous": previous}, wait=wait)

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
        """Queue an event from any thread; critical (or wait=True) blocks until durable.

        Returns the stamped Event when it blocked, else None. Called on the kernel thread (from a
        bus handler) it never blocks: blocking there would deadlock, so it returns None.
        """
        if not self._accepting:
            raise LifecycleError(
                f"engine is {self.state}; submit({topic!r}) needs a running engine"
            )
        return self._enqueue(topic, payload, key=key, critical=critical, wait=wait, timeout=timeout)

    def _enqueue(self, topic, payload, *, key="", critical=None, wait=False, timeout=30.0):
        # Checked here, on the submitting thread; the kernel builds the Event once, stamped.
        spec, body, is_critical = self.registry.check(topic, payload, key=key, critical=critical)
        if spec.transient:
            event = Event(0, now_ns(), topic, key, body, is_critical, spec.schema_version)
            self.bus.publish_event(event)
            return event
        writer = self._writer
        if writer is not None and writer.failed is not None:
            raise JournalError(f"journal is not writable: {writer.failed}")
        if (is_critical or wait) and threading.get_ident() != self._kernel_ident:
            ticket = Ticket()
            self._queue.append((topic, key, body, is_critical, spec.schema_version, ticket))
            if self._kernel_idle:
                self._wakeup.ring()
            return ticket.wait(timeout)
        self._queue.append((topic, key, body, is_critical, spec.schema_version, None))
        if self._kernel_idle:
            self._wakeup.ring()
        return None

    def publish_transient(self, topic: str, payload: Mapping[str, Any], key: str = "") -> Event:
        """Publish a transient topic (e.g. market.tick) on the bus only: no seq, store, journal."""
        if not self.registry.is_transient(topic):
            raise InvalidInputError(
                f"topic {topic!r} is not transient; journaled topics go through submit()"
            )
        event = self.registry.make_event(topic, payload, key=key)
        self.bus.publish_event(event)
        return event

    def flush(self, timeout: float | None = 30.0) -> int:
        """Block until everything submitted so far is applied and durable; return its seq."""
        done = Ticket()
        self._queue.append((None, done))
        self._wakeup.ring()
        done.wait(timeout)
        assert self._writer is not None
        return self._writer.flush(timeout)

    def seal_segments(self, timeout: float | None = 60.0) -> int:
        """Make everything submitted so far readable by other processes now: commit it and seal
        it into Parquet segments (otherwise sealed every N events / T seconds). Returns the
        sealed-up-to seq."""
        self.flush(timeout)
        assert self.journal is not None
        return self.journal.seal_segments(timeout)

    def snapshot_now(self, timeout: float | None = 60.0) -> SnapshotInfo:
        """Take a snapshot now (copied on the kernel thread, written by the writer); wait for it."""
        if self.state not in (RUNNING, READY, STOPPING):
            raise LifecycleError(f"snapshot_now() needs a running engine; it is {self.state}")
        done = Ticket()
        self._queue.append((None, ("snapshot", done)))
        self._wakeup.ring()
        return done.wait(timeout)

    def metrics(self) -> dict[str, Any]:
        writer = self._writer
        return {
            "state": self.state,
            "version": self.store.version,
            "queued": len(self._queue),
            "rejected_events": self.rejected_events,
            "durable_seq": writer.durable_seq if writer else 0,
            "groups_committed": writer.groups_committed if writer else 0,
            "events_committed": writer.events_committed if writer else 0,
            # Where the journal writer runs: its own process (with its pid) or a thread here.
            "writer": "process" if isinstance(writer, ProcessJournalWriter) else "thread",
            "writer_pid": writer.pid if isinstance(writer, ProcessJournalWriter) else None,
        }

    def __repr__(self) -> str:
        return f"Engine({self.config.journal_path!r}, state={self.state}, seq={self.store.version})"
