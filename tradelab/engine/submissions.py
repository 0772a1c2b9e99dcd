"""The engine's submit queue: one FIFO lane per producing thread, one bound over all of them.

Thread model: any thread `put`s into its own lane; only the kernel thread `take`s. A lane keeps
its producer's order. The kernel serves first every lane holding an item whose submitter blocks
(a critical event, a wait=True submit, a flush or snapshot request), then a fair share of every
other lane, so a flood from one thread cannot hold a critical event from another behind it.

Policy when full (`max_events` ordinary items queued): the producer waits for room, up to its
timeout, then gets an `OverloadError`; nothing accepted is dropped. Blocking submitters and the
engine's own events bypass the bound: each blocking thread has at most one item in flight, and
the engine's internal threads must never wait on the kernel they feed.

`CriticalPriority`: while a critical submit is in flight, producers with a backlog step aside.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tradelab.errors import LifecycleError, OverloadError


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


class _Lane:
    __slots__ = ("items", "urgent", "thread")

    def __init__(self, thread: threading.Thread) -> None:
        self.items: deque = deque()
        self.urgent = False  # holds an item whose submitter blocks: served first
        self.thread = thread


class SubmitQueue:
    """Bounded, per-producer-ordered queue of submitted items (see the module docstring)."""

    def __init__(self, max_events: int, wakeup: Wakeup) -> None:
        self.max_events = max_events
        self._wakeup = wakeup
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._local = threading.local()
        self._lanes: list[_Lane] = []
        self._depth = 0
        self._waiting = 0
        self._closed = ""
        self._pruned_at = 0.0
        self._barrier = False
        self.kernel_idle = False  # set by the kernel; a producer rings only when it is idle
        self.high_water = 0
        self.wait_seconds = 0.0
        self.waits = 0
        self.refusals = 0
        self.accepted = 0  # items ever put (events and controls): a lockstep's "anything new?"

    def __len__(self) -> int:
        return self._depth

    def own_backlog(self) -> int:
        """How many of the calling thread's items are queued (no lock: a length read)."""
        lane = getattr(self._local, "lane", None)
        return 0 if lane is None else len(lane.items)

    def metrics_lanes(self) -> int:
        """How many producer lanes are known (live threads, or ended ones not yet pruned)."""
        return len(self._lanes)

    def put(
        self,
        item: Any,
        *,
        bounded: bool,
        urgent: bool,
        timeout: float | None,
        internal: bool = False,
        barrier: bool = False,
    ) -> int:
        """Queue `item` in the calling thread's lane; return `accepted` counting it. `bounded` items wait for room (at most
        `timeout` s, then OverloadError); `urgent` marks the lane to be served first;
        `internal` (the engine's own items) are taken even after `close`; a `barrier` (flush,
        snapshot) makes the next pass take every lane whole, so it follows everything queued
        before it by any thread."""
        try:
            lane = self._local.lane
        except AttributeError:
            lane = self._new_lane()
        with self._lock:
            if self._closed and not internal:
                raise LifecycleError(self._closed)
            if bounded and self._depth >= self.max_events:
                self._wait_for_room(timeout)
            lane.items.append(item)
            if urgent:
                lane.urgent = True
            if barrier:
                self._barrier = True
            self._depth += 1
            self.accepted += 1
            accepted = self.accepted
            if self._depth > self.high_water:
                self.high_water = self._depth
        if self.kernel_idle:
            self._wakeup.ring()
        return accepted

    def pass_by(self, *, internal: bool = False) -> bool:
        """An inline kernel's item taken at once instead of queued: True (counted in `accepted`)
        if nothing is queued ahead of it, False if something is (then it must be `put` behind
        it). Refused like `put` once closed. Nothing is queued, so there is no bound to wait for."""
        with self._lock:
            if self._closed and not internal:
                raise LifecycleError(self._closed)
            if self._depth:
                return False
            self.accepted += 1
            return True

    def _wait_for_room(self, timeout: float | None) -> None:
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        self._waiting += 1
        self.waits += 1
        try:
            while self._depth >= self.max_events and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    self.refusals += 1
                    raise OverloadError(
                        f"engine submit queue is full: {self._depth} events queued, limit "
                        f"{self.max_events}; no room within {timeout} s (the kernel and journal "
                        "are behind: slow the producer or raise EngineConfig.max_queued_events)"
                    )
                self._room.wait(left)
        finally:
            self._waiting -= 1
            self.wait_seconds += time.monotonic() - started
        if self._closed:
            raise LifecycleError(self._closed)

    def _new_lane(self) -> _Lane:
        lane = _Lane(threading.current_thread())
        self._local.lane = lane
        with self._lock:
            self._lanes.append(lane)
        return lane

    def take(self, limit: int) -> list:
        """Kernel thread: the next batch: every urgent lane whole, or else up to `limit` items
        in fair shares of the other lanes; each lane's items in its own order."""
        batch: list = []
        with self._lock:
            if self._barrier:
                self._barrier = False
                for lane in self._lanes:
                    lane.urgent = False
                    batch.extend(lane.items)
                    lane.items.clear()
                return self._taken(batch)
            busy = []
            for lane in self._lanes:
                if lane.urgent:
                    lane.urgent = False
                    batch.extend(lane.items)
                    lane.items.clear()
                elif lane.items:
                    busy.append(lane)
            # A pass with a blocking submitter carries only the urgent lanes: the sooner it is
            # applied and journaled, the sooner the submitter is released. The rest waits one
            # short pass.
            room = 0 if batch else limit
            while busy and room > 0:
                share = max(1, room // len(busy))
                still = []
                for lane in busy:
                    items = lane.items
                    n = min(share, len(items), room)
                    batch.extend([items.popleft() for _ in range(n)])
                    room -= n
                    if items:
                        still.append(lane)
                busy = still
            return self._taken(batch)

    def _taken(self, batch: list) -> list:
        """Account for a batch taken (holding the lock)."""
        self._depth -= len(batch)
        # Wake waiting producers once half the room is free, not per item: fewer thundering
        # wake-ups competing with the kernel for the GIL.
        if self._waiting and self._depth <= self.max_events // 2:
            self._room.notify_all()
        return batch

    def prune(self, every_seconds: float = 1.0) -> None:
        """Kernel thread, when idle: forget empty lanes of threads that have ended (at most
        once per `every_seconds`, so a trickle of single submits does not pay for it)."""
        now = time.monotonic()
        if now - self._pruned_at < every_seconds:
            return
        self._pruned_at = now
        with self._lock:
            self._lanes = [ln for ln in self._lanes if ln.items or ln.thread.is_alive()]

    def close(self, reason: str) -> None:
        """Refuse new items with `reason`; producers waiting for room get it too."""
        with self._lock:
            self._closed = reason
            self._room.notify_all()

    def reopen(self) -> None:
        with self._lock:
            self._closed = ""


class CriticalPriority:
    """A producer with a backlog steps aside while a critical submit is in flight.

    A flooding producer holds the GIL for whole switch intervals (5 ms), so a critical event's
    few hand-offs (the kernel taking it, its submitter waking to sync, returning) each queued
    behind one: under a two-thread flood its ack took ~20 ms at p99 (benchmarks/README.md,
    Overload). An ordinary submit whose thread already has `min_backlog` events of its own
    queued (a kernel pass of them: it produces faster than the kernel takes them, so pausing
    costs it nothing the kernel could have done) therefore waits, off the GIL, until as many
    criticals have returned as had begun when it came, or `max_wait` seconds at most (so a
    chain of overlapping criticals cannot starve it). A producer without such a backlog, e.g.
    a thread placing an order, never waits for another thread's critical.

    Thread model: any thread; `begin`/`end` bracket a critical submit on its own thread.
    """

    def __init__(self, max_wait: float, backlog: Callable[[], int], min_backlog: int) -> None:
        self.max_wait = max_wait
        self._backlog = backlog  # the calling thread's queued events
        self.min_backlog = min_backlog
        self._lock = threading.Lock()
        self._cleared = threading.Condition(self._lock)
        self._started = 0  # critical submits begun ...
        self._ended = 0  # ... and returned; in flight while they differ
        self._waiting = 0
        self.waits = 0
        self.wait_seconds = 0.0

    def begin(self) -> None:
        with self._lock:
            self._started += 1

    def end(self) -> None:
        with self._lock:
            self._ended += 1
            if self._waiting:
                self._cleared.notify_all()

    def step_aside(self) -> None:
        """Called before an ordinary submit: wait while the criticals now in flight finish, if
        this thread has a backlog."""
        target = self._started
        if self._ended >= target or self.max_wait <= 0:  # the common case: no lock taken
            return
        if self._backlog() < self.min_backlog:
            return
        started = time.monotonic()
        with self._lock:
            self._waiting += 1
            self.waits += 1
            try:
                self._cleared.wait_for(lambda: self._ended >= target, self.max_wait)
            finally:
                self._waiting -= 1
                self.wait_seconds += time.monotonic() - started
