"""Journal latencies seen from the engine's process: commit and critical-ack, in bounded windows.

`LatencyWindow` keeps the latest `WINDOW_SAMPLES` latencies of one kind (older ones fall out:
the figures describe recent behaviour) plus a lifetime count; `summary()` gives p50/p99/max.
`BatchStamps` remembers when each batch was handed to the writer, until the writer reports
it committed (or acknowledged): one stamp per batch, never per event. Its deque is capped at
`IN_FLIGHT_STAMPS`; the writer's own pending bound keeps far fewer batches in flight, and past
the cap the oldest stamps are dropped and counted (`unsampled`), so those batches go unmeasured.

Thread model: one thread stamps (the kernel), one thread resolves (the writer's ack or commit
thread), any thread reads `summary()`.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

WINDOW_SAMPLES = 2048
IN_FLIGHT_STAMPS = 8192

clock = time.perf_counter


class LatencyWindow:
    """The latest `size` latencies (seconds) of one kind, and how many were ever recorded."""

    def __init__(self, size: int = WINDOW_SAMPLES) -> None:
        if size < 1:
            raise ValueError(f"latency window size {size} is not 1 or more")
        self.size = size
        self._samples: collections.deque[float] = collections.deque(maxlen=size)
        self._lock = threading.Lock()  # a reader copies while the resolving thread appends
        self.count = 0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(seconds)
            self.count += 1

    def __len__(self) -> int:
        return len(self._samples)

    def summary(self) -> dict[str, Any]:
        """p50/p99/max in ms over the window (None before the first sample), the lifetime
        `count`, the samples held (`window`) and their bound (`window_limit`)."""
        with self._lock:
            ordered = sorted(self._samples)
            count = self.count
        held = len(ordered)

        def rank(q: float) -> float | None:  # nearest rank: always one of the samples
            return ordered[min(held - 1, int(q * held))] * 1e3 if held else None

        return {
            "p50_ms": rank(0.5),
            "p99_ms": rank(0.99),
            "max_ms": ordered[-1] * 1e3 if held else None,
            "count": count,
            "window": held,
            "window_limit": self.size,
        }


class BatchStamps:
    """When each batch in flight was handed over, keyed by its last seq (seqs rise)."""

    def __init__(self, window: LatencyWindow, limit: int = IN_FLIGHT_STAMPS) -> None:
        self.window = window
        self.limit = limit
        self._stamps: collections.deque[tuple[int, float]] = collections.deque(maxlen=limit)
        self.unsampled = 0

    def stamp(self, last_seq: int) -> None:
        """The batch ending at `last_seq` is handed to the writer now."""
        if len(self._stamps) == self.limit:
            self.unsampled += 1  # the append below drops the oldest stamp
        self._stamps.append((last_seq, clock()))

    def resolve(self, last_seq: int) -> None:
        """Every batch up to `last_seq` is done now: record each one's latency."""
        stamps = self._stamps
        if not stamps or stamps[0][0] > last_seq:
            return
        now = clock()
        add = self.window.add
        while stamps and stamps[0][0] <= last_seq:
            # Only this thread removes from the left; a concurrent drop at the cap can make
            # this pop the next stamp instead, which then goes unsampled (never misattributed).
            handed = stamps[0][1]
            stamps.popleft()
            add(now - handed)

    def __len__(self) -> int:
        return len(self._stamps)


class JournalLatency:
    """Both figures for one writer: commit (batch handed over -> commit reported) and
    critical ack (a batch holding critical events handed over -> its submitters released)."""

    def __init__(self, window_size: int = WINDOW_SAMPLES, in_flight: int = IN_FLIGHT_STAMPS):
        self.commits = BatchStamps(LatencyWindow(window_size), in_flight)
        self.critical_acks = BatchStamps(LatencyWindow(window_size), in_flight)

    def handed_over(self, last_seq: int, critical: bool) -> None:
        self.commits.stamp(last_seq)
        if critical:
            self.critical_acks.stamp(last_seq)

    def committed(self, last_seq: int) -> None:
        """Where a commit also releases the critical submitters (the writer thread's layout)."""
        self.commits.resolve(last_seq)
        self.critical_acks.resolve(last_seq)

    def metrics(self) -> dict[str, Any]:
        """The `Engine.metrics()` entries: one summary per figure, and the stamps dropped."""
        return {
            "journal_commit_latency": self.commits.window.summary(),
            "journal_critical_ack_latency": self.critical_acks.window.summary(),
            "journal_latency_unsampled_batches": (
                self.commits.unsampled + self.critical_acks.unsampled
            ),
        }
