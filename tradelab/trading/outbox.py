"""An ordered outbox: callbacks run in the order they were queued, with no lock held while one
runs.

Why: a fill's `trade.executed` is critical, so submitting it blocks until the engine's kernel
thread has journaled it; if that happened under a broker or desk lock, a strategy running on the
kernel thread (a bus handler placing an order) would wait for the same lock: deadlock. Queue
under your own short lock, then `drain()` after releasing it. Whichever thread gets the drain
lock runs every queued callback, FIFO; the others return at once (their items are run by it).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class OrderedOutbox:
    def __init__(self) -> None:
        self._items: deque[Callable[[], object]] = deque()
        self._drainer = threading.Lock()

    def put(self, callback: Callable[[], object]) -> None:
        self._items.append(callback)

    def drain(self) -> None:
        # Re-check after releasing: an item queued while we were finishing must not be stranded.
        while self._items:
            if not self._drainer.acquire(blocking=False):
                return
            try:
                while self._items:
                    self._items.popleft()()
            finally:
                self._drainer.release()
