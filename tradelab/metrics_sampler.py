"""`MetricsSampler`: the engine's key figures journaled every few seconds as `metrics.sampled`, so
the history of a session's health (throughput, queue, journal latency, console push) can be
read back from its journal (analytics view `metrics_history`).

One per Lab (constructed and passed, started and stopped by it); off in a deterministic replay,
whose journal must not depend on wall time. Other parts add figures with `add_source` (the
console its sessions and push lag). Thread model: one `metrics-sampler` thread; `sample()` may
be called from any thread. A sample that cannot be journaled (engine stopping or overloaded) is
counted in `failures` and logged; sampling goes on.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from tradelab.errors import InvalidInputError, TradelabError

log = logging.getLogger(__name__)

TOPIC = "metrics.sampled"


class MetricsSampler:
    """`MetricsSampler(engine, every_seconds).start()`; `stop()`; `sample()` for one now."""

    def __init__(self, engine: Any, every_seconds: float) -> None:
        if not every_seconds > 0:
            raise InvalidInputError(f"every_seconds {every_seconds!r} must be > 0")
        self.engine, self.every_seconds = engine, float(every_seconds)
        self._sources: dict[str, Callable[[], dict[str, float | int | None]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0
        self.failures = 0

    def add_source(self, name: str, figures: Callable[[], dict[str, float | int | None]]) -> None:
        """Add `figures()` (flat name -> number) to every sample from now on."""
        with self._lock:
            self._sources[name] = figures

    def remove_source(self, name: str) -> None:
        with self._lock:
            self._sources.pop(name, None)

    def figures(self) -> dict[str, float | int | None]:
        """The figures of one sample (latencies in ms, None when not measured yet)."""
        engine = self.engine.metrics()
        commit = engine.get("journal_commit_latency") or {}
        ack = engine.get("journal_critical_ack_latency") or {}
        out: dict[str, float | int | None] = {
            "applied_seq": engine.get("version"),
            "durable_seq": engine.get("durable_seq"),
            "events_per_s": _round(self.engine.bus.metrics().get("rate_per_s_recent")),
            "queue_depth": engine.get("queue_depth"),
            "commit_p50_ms": _round(commit.get("p50_ms")),
            "commit_p99_ms": _round(commit.get("p99_ms")),
            "critical_ack_p99_ms": _round(ack.get("p99_ms")),
        }
        with self._lock:
            sources = list(self._sources.items())
        for name, source in sources:
            try:
                out.update({k: _round(v) for k, v in source().items()})
            except Exception:  # one bad source must not cost the engine's own figures
                log.exception("metrics source %r failed", name)
        return out

    def sample(self) -> bool:
        """Journal one `metrics.sampled` now (not critical: it never waits for durability)."""
        try:
            self.engine.submit(TOPIC, self.figures(), key="engine")
        except TradelabError as exc:
            self.failures += 1
            log.warning("metrics sample not journaled: %s", exc)
            return False
        self.samples += 1
        return True

    def start(self) -> MetricsSampler:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="metrics-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.every_seconds):
            self.sample()


def _round(value: Any) -> Any:
    # Microsecond precision is all a chart needs; shorter numbers keep the journal small.
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else None
    return value
