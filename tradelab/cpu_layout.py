"""An optional CPU layout for a process that runs the engine: its threads on some cores, the
journal writer process alone on another.

Why: the kernel and the threads feeding it take turns on one GIL. When the OS spreads them over
two cores, every hand-over of the GIL also moves the hot data between caches, and the writer
process's DuckDB commits land on whichever core is free. Keeping the engine's threads together
and giving the writer its own core measured 1.25x the durable rate (benchmarks/journal.py,
`--pin-cpus`). It changes the affinity of every thread of this process, so it is opt-in
(`EngineConfig.pin_cpus`) and undone when the engine stops.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CpuLayout:
    """Which CPUs the engine's process keeps, and which one the writer process gets."""

    engine: frozenset[int]
    writer: frozenset[int]

    @classmethod
    def split(cls, available: set[int] | frozenset[int]) -> CpuLayout | None:
        """The highest CPU for the writer, the rest for the engine; None with fewer than two."""
        if len(available) < 2:
            return None
        writer = max(available)
        return cls(frozenset(available - {writer}), frozenset({writer}))


class PinnedThreads:
    """Pins every thread of this process to a set of CPUs; `restore()` puts the old mask back.

    Threads started later inherit the mask of the thread that starts them, so pinning the ones
    alive now covers the process.
    """

    def __init__(self, cpus: frozenset[int]) -> None:
        self.cpus = cpus
        self._previous = frozenset(os.sched_getaffinity(0))
        self._set_all(cpus)

    def restore(self) -> None:
        self._set_all(self._previous)

    @staticmethod
    def _set_all(cpus: frozenset[int]) -> None:
        for name in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(name), cpus)
            except (ProcessLookupError, PermissionError):  # ended meanwhile / not ours to move
                continue


def pin_engine_process(enabled: bool) -> tuple[PinnedThreads | None, frozenset[int]]:
    """(pinned threads to restore later or None, CPUs for the writer process or empty)."""
    if not enabled:
        return None, frozenset()
    if not hasattr(os, "sched_setaffinity"):
        log.warning("pin_cpus is set, but this platform cannot set CPU affinity; not pinned")
        return None, frozenset()
    layout = CpuLayout.split(frozenset(os.sched_getaffinity(0)))
    if layout is None:
        log.warning("pin_cpus is set, but this process may run on one CPU only; not pinned")
        return None, frozenset()
    return PinnedThreads(layout.engine), layout.writer
