"""The runner's inbox: journaled events, ticks and commands, handled in the order they came.

Producers: the kernel thread (journaled events, in seq order), the feed thread (ticks), any
thread (commands). One consumer: the runner's thread (or the caller pumping an unthreaded
runner).

Ticks: latest quote wins. A tick of a symbol whose previous tick is still waiting (with no
journaled event queued since) supersedes it: the waiting one is skipped when reached and the
new one queued at the end, so ticks still come out in feed order (the runner's market time
never goes back) and a strategy slower than the feed acts on the current quote, not on a
backlog minutes old (`ticks_superseded` counts them). When the inbox is full, the new tick
takes the waiting one's place instead. Lockstep replays hand one step at a time, so nothing is
superseded there and the journal does not depend on thread timing.

Bound (`limit` entries waiting), policy when full: a tick is dropped and counted (the next
quote supersedes it); a journaled event is dropped and counted and `overflowed` is set (the
runner then stops every strategy: a strategy is never fed a gap); the kernel thread never waits.
Commands come from people and are not bounded. Once `skip_ticks` is set (the runner stopping),
ticks still waiting are dropped when reached, so `on_stop` comes after the journaled events
only.
"""

from __future__ import annotations

import queue
import threading
from typing import Any


class _TickSlot:
    """A tick's place in the queue; None once a newer tick of its symbol superseded it."""

    __slots__ = ("event", "symbol")

    def __init__(self, event: Any, symbol: str) -> None:
        self.event: Any = event
        self.symbol = symbol


class RunnerInbox:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        # symbol -> the slot of its tick still waiting, queued after the last journaled event
        self._waiting_ticks: dict[str, _TickSlot] = {}
        self.ticks_dropped = 0
        self.ticks_superseded = 0
        self.events_dropped = 0
        self.overflowed = False
        self.skip_ticks = False

    def qsize(self) -> int:
        return self._queue.qsize()

    def put_journaled(self, event: Any) -> None:
        if self._queue.qsize() >= self.limit:
            self.events_dropped += 1
            self.overflowed = True
            return
        if self._waiting_ticks:
            # A tick after this event must not be handled before it: later ticks take new
            # slots. Cleared before the put: a tick in between is queued before it, as it came.
            with self._lock:
                self._waiting_ticks.clear()
        self._queue.put(event)

    def put_tick(self, event: Any) -> None:
        symbol = event.key or event.payload.get("symbol")
        with self._lock:
            waiting = self._waiting_ticks.get(symbol)
            if waiting is not None:
                self.ticks_superseded += 1
            if self._queue.qsize() >= self.limit:
                if waiting is not None:
                    waiting.event = event  # full: the newest takes the waiting one's place
                else:
                    self.ticks_dropped += 1
                return
            if waiting is not None:
                waiting.event = None
            slot = _TickSlot(event, symbol)
            self._waiting_ticks[symbol] = slot
            self._queue.put(slot)

    def put_command(self, item: Any) -> None:
        self._queue.put(item)

    def get(self, block: bool = True) -> Any:
        """The next item (a journaled event, a tick, a command); None for a tick superseded or
        skipped at a stop. Raises queue.Empty when not blocking and nothing waits."""
        item = self._queue.get(block)
        if type(item) is not _TickSlot:
            return item
        with self._lock:
            event = item.event
            if self._waiting_ticks.get(item.symbol) is item:
                del self._waiting_ticks[item.symbol]
        if event is None:  # superseded: its symbol's newer tick is further on
            return None
        if self.skip_ticks:
            self.ticks_dropped += 1
            return None
        return event
