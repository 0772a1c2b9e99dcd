"""A per-caller outbox: callbacks queued under a lock run later, on the thread that queued them,
in the order it queued them, with no lock held.

Why: a fill's `trade.executed` is critical, so submitting it blocks until it is durable; done
under a broker or desk lock, every other caller would wait for that sync (and a strategy on the
kernel thread could deadlock on the lock). And why per caller: when one shared queue was drained
by whichever thread got there first, that thread ran everyone's blocking callbacks (one
`place_order` took 37 s with 8 threads). Here each thread runs only what its own call caused, so
callers wait only for their own events and the engine can sync many callers' events at once.
Memory: a thread's list holds only what one call produced, and `drain` empties it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class CallerOutbox:
    def __init__(self) -> None:
        self._local = threading.local()

    def _items(self) -> deque[Callable[[], object]]:
        try:
            return self._local.items
        except AttributeError:
            items: deque[Callable[[], object]] = deque()
            self._local.items = items
            return items

    def put(self, callback: Callable[[], object]) -> None:
        """Queue `callback` for the calling thread's next `drain`."""
        self._items().append(callback)

    def drain(self) -> None:
        """Run the calling thread's queued callbacks, FIFO. A callback that queues more (a
        listener calling back into the broker) has them run in this same drain."""
        items = self._items()
        # Pop before running: a callback that raises leaves the rest for the next drain on this
        # thread, and nothing that already ran runs twice.
        while items:
            items.popleft()()
