"""The engine: `Engine` (lifecycle, submit) in engine.py, its kernel thread in kernel.py, the
bounded submit queue in submissions.py. Follow one event: `Engine.submit` → `SubmitQueue.put` →
`Kernel._process` (stamp, apply, journal writer, bus)."""

from tradelab.engine.engine import (
    CREATED,
    READY,
    RECOVERING,
    RUNNING,
    STOPPED,
    STOPPING,
    Engine,
)
from tradelab.engine.store import build_store, default_reducers

__all__ = [
    "CREATED",
    "READY",
    "RECOVERING",
    "RUNNING",
    "STOPPED",
    "STOPPING",
    "Engine",
    "build_store",
    "default_reducers",
]
