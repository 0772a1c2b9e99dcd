"""What callers ask of a running Engine besides submitting: barriers (`flush`, `when_applied`),
snapshots (`snapshot_now`), sealing segments, the counters a lockstep reads, `metrics()`, and
`publish_transient` (a tick on the bus, never queued).

A mixin of `Engine` (its state: `_queue`, `_kernel`, `_writer`, `_priority`, `_inline`,
`journal`, `state`, `registry`, `bus`).
Thread model: any thread except the kernel's (which a barrier would wait for); `when_applied`
never waits, its callback runs on the kernel thread.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from tradelab.engine.kernel import APPLIED, FLUSH, SNAPSHOT
from tradelab.engine.metrics import engine_metrics
from tradelab.errors import InvalidInputError, JournalError, LifecycleError, RecoveryError
from tradelab.events import Event, now_ns
from tradelab.journal.snapshots import SnapshotInfo

_LIVE = ("running", "ready", "stopping")
_STOP_LOOK = 0.25  # how often a waiting request looks whether the engine stopped under it


class EngineControls:
    def on_kernel_thread(self) -> bool:
        """Whether the caller runs on the kernel thread (a bus handler): what waits for the
        kernel (a flush, a snapshot, a stop) cannot run there."""
        return self._kernel is not None and self._kernel.on_its_thread()

    def _control(
        self, kind: str, what: str, timeout: float | None, *, everyone: bool = True
    ) -> Any:
        """Queue a flush barrier or a snapshot request behind everything submitted so far (by
        this thread only, when not `everyone`: its lane keeps its order, and the other lanes
        are then not taken whole, which would put a flood ahead of a critical event)."""
        if self._kernel is not None and self._kernel.on_its_thread():
            raise LifecycleError(
                f"{what}() was called on the engine's kernel thread (from a bus handler?); it "
                "waits for that very thread, so call it from another thread"
            )
        if self.state not in _LIVE:
            raise LifecycleError(f"{what}() needs a running engine; it is {self.state}")
        done: Future = Future()
        self._queue.put(
            (None, (kind, done)),
            bounded=False,
            urgent=True,
            timeout=None,
            internal=True,
            barrier=everyone,
        )
        if self._inline:
            self._kernel.drain()
        return self._answer(done, what, timeout)

    def _answer(self, done: Future, what: str, timeout: float | None) -> Any:
        """`done`'s result; a LifecycleError at once if the engine stops first (a request
        queued after the kernel took its last items is never served)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            try:
                return done.result(_STOP_LOOK if left is None else max(min(left, _STOP_LOOK), 0))
            except FutureTimeout:
                if self.state not in _LIVE and not done.done():
                    raise self._stopped_meanwhile(what) from None
                if left is not None and left <= _STOP_LOOK:
                    raise JournalError(f"{what}() did not finish within {timeout:.3g} s") from None

    def when_applied(self, callback: Callable[[int], object]) -> int:
        """Call `callback(seq)` on the kernel thread once everything submitted before this call
        (by any thread) is applied and published; never blocks. Returns `submitted_count` as of
        this request: if it is unchanged when the callback's effects are seen, nothing was
        submitted after it (a lockstep's "all settled" test, see StrategyRunner.lockstep)."""
        done: Future = Future()
        done.add_done_callback(lambda future: callback(future.result()))
        count = self._queue.put(
            (None, (APPLIED, done)),
            bounded=False,
            urgent=False,
            timeout=None,
            internal=True,
            barrier=True,
        )
        if self._inline:
            self._kernel.drain()
        return count

    @property
    def kernel_seconds(self) -> float:
        """Time the kernel spent applying, handing to the writer and publishing."""
        return self._kernel.busy_seconds if self._kernel is not None else 0.0

    @property
    def submitted_count(self) -> int:
        """Items ever queued for the kernel (events, barriers, snapshot requests)."""
        return self._queue.accepted

    def flush(self, timeout: float | None = 30.0, *, what: str = "flush") -> int:
        """Block until everything submitted so far is applied and durable; return its seq."""
        self._control(FLUSH, what, timeout)
        with self._stopped_under(what):
            return self._writer.flush(timeout)

    def seal_segments(self, timeout: float | None = 60.0) -> int:
        """Make everything submitted so far readable by other processes now: commit it and seal
        it into Parquet segments (otherwise sealed every N events / T seconds). Returns the
        sealed-up-to seq."""
        self.flush(timeout, what="seal_segments")  # errors name the call the user made
        assert self.journal is not None
        with self._stopped_under("seal_segments"):
            return self.journal.seal_segments(timeout)

    @contextlib.contextmanager
    def _stopped_under(self, what: str) -> Iterator[None]:
        """A writer request the engine's stop cut short is a LifecycleError, as when the
        engine had stopped before the call: the journal did not fail."""
        try:
            yield
        except JournalError:
            if self.state in ("running", "ready") or self.journal_failure is not None:
                raise
            raise self._stopped_meanwhile(what) from None

    def _stopped_meanwhile(self, what: str) -> LifecycleError:
        return LifecycleError(
            f"{what}() could not finish: the engine stopped meanwhile (it is {self.state}); "
            "everything before the stop is in the journal"
        )

    def snapshot_now(self, timeout: float | None = 60.0) -> SnapshotInfo:
        """Take a snapshot now (copied on the kernel thread, written by the writer); wait for it."""
        return self._control(SNAPSHOT, "snapshot_now", timeout)

    def wait_applied(self, timeout: float | None = 30.0) -> int:
        """Block until everything this thread submitted so far is applied and published, not
        necessarily durable; return the seq reached. On the kernel thread (a bus handler) it
        returns at once: what that thread submits is applied after the handler anyway."""
        if self._kernel is not None and self._kernel.on_its_thread():
            return self.store.version
        return self._control(APPLIED, "wait_applied", timeout, everyone=False)

    @property
    def rejected_events(self) -> int:
        """Submitted events a reducer refused (never journaled)."""
        return self._kernel.rejected_events if self._kernel is not None else 0

    @property
    def journal_failure(self) -> BaseException | None:
        """The error that stopped the journal writer, or None while it is healthy."""
        return self._writer.failed if self._writer is not None else None

    def _refuse_if_unwritable(self) -> None:
        """A submit once the writer failed: refused with its cause, a damaged file's as a
        RecoveryError (`run` exits 1 for it, 3 for a writer that died)."""
        failed = self.journal_failure
        if failed is not None:
            kind = RecoveryError if isinstance(failed, RecoveryError) else JournalError
            raise kind(f"journal is not writable: {failed}")

    @property
    def segments_failure(self) -> str | None:
        """Why the segment sealer stopped (the journal goes on; segments are stale), or None."""
        return self._writer.segments_failure if self._writer is not None else None

    def metrics(self) -> dict[str, Any]:
        return engine_metrics(self, self._queue, self._writer, self._kernel, self._priority)

    def publish_transient(self, topic: str, payload: Mapping[str, Any], key: str = "") -> Event:
        """Publish a transient topic (e.g. market.tick) on the bus only: no seq, store, journal.

        Transient events are never queued: they are delivered on the caller's thread, so a tick
        flood costs its producer, not the engine's memory (subscribers keep their own bounds).
        """
        if not self.registry.is_transient(topic):
            raise InvalidInputError(
                f"topic {topic!r} is not transient; journaled topics go through submit()"
            )
        # Checked, not converted: a transient event is never encoded, and this is the tick path.
        spec, body, critical = self.registry.check(topic, payload, key=key)
        event = Event(0, now_ns(), topic, key, body, critical, spec.schema_version)
        self.bus.publish_event(event)
        return event
