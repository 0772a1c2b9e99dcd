"""A bus handler that holds an engine's kernel thread: what is submitted meanwhile queues."""

from __future__ import annotations

import threading

from tradelab.engine import Engine


class HeldKernel:
    """Holds the kernel thread in the first `mark.updated` it handles until `release` is set."""

    def __init__(self, engine: Engine) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        engine.bus.subscribe("mark.updated", self)

    def __call__(self, event) -> None:
        self.entered.set()
        self.release.wait(30)
