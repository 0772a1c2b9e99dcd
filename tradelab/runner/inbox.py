"""The runner's inbox: journaled events, ticks and commands, handled in the order they came.

Producers: the kernel thread (journaled events, in seq order), the feed thread (ticks), any
thread (commands). One consumer: the runner's thread (or the caller pumping an unthreaded
runner).

Prices: latest wins. A tick (or a journaled `mark.updated`) of a symbol whose previous one is
still waiting, with no other journaled event (a bar, an order's or a fill's) queued since,
supersedes it: the waiting one is skipped when reached and the new one queued at the end, so
prices still come out in feed order (the runner's market time never goes back) and a strategy
slower than the feed acts on the current quote, not on a backlog minutes old
(`ticks_superseded` counts both kinds). A mark is journaled for nearly every tick, so were marks
not prices too, no tick would ever find its predecessor still superseded. When the inbox is
full, the new price takes the waiting one's place instead. Lockstep replays hand one step at a
time, so nothing is superseded there and the journal does not depend on thread timing.

Bound (`limit` entries waiting, superseded ones not counted), policy when full: a tick is
dropped and counted (the next quote supersedes it); any other journaled event is dropped and
counted and `overflowed` is set (the runner then stops every strategy: a strategy is never fed
a gap); the kernel thread never waits. Superseded slots stay in the queue until reached, so
once it holds `limit` entries in all, a price takes its waiting one's place (no new slot) and a
tick with none waiting is dropped: memory stays within twice the bound. Commands come from
people and are not bounded. Once `skip_ticks` is set (the runner stopping), ticks still waiting
are dropped when reached, so `on_stop` comes after the journaled events only.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

MARK_TOPIC = "mark.updated"


class _PriceSlot:
    """A price's place in the queue; its event is None once a newer one of its symbol (and
    kind: `key` is (is a tick, symbol)) superseded it."""

    __slots__ = ("event", "key")

    def __init__(self, event: Any, key: tuple[bool, str]) -> None:
        self.event: Any = event
        self.key = key


class RunnerInbox:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        # (is a tick, symbol) -> the slot of its price still waiting, queued after the last
        # journaled event that is not a price
        self._waiting: dict[tuple[bool, str], _PriceSlot] = {}
        self._superseded_slots = 0  # in the queue, holding nothing: not counted in the bound
        self.ticks_dropped = 0
        self.ticks_superseded = 0
        self.events_dropped = 0
        self.overflowed = False
        self.skip_ticks = False

    def qsize(self) -> int:
        return self._queue.qsize() - self._superseded_slots

    def put_journaled(self, event: Any) -> None:
        if event.topic == MARK_TOPIC:
            self._put_price(event, False)
            return
        if self.qsize() >= self.limit:
            self.events_dropped += 1
            self.overflowed = True
            return
        if self._waiting:
            # A price after this event must not be handled before it: later ones take new
            # slots. Cleared before the put: a price in between is queued before it, as it came.
            with self._lock:
                self._waiting.clear()
        self._queue.put(event)

    def put_tick(self, event: Any) -> None:
        self._put_price(event, True)

    def _put_price(self, event: Any, is_tick: bool) -> None:
        key = (is_tick, event.key or event.payload.get("symbol"))
        with self._lock:
            waiting = self._waiting.get(key)
            if waiting is not None:
                self.ticks_superseded += 1
            # Superseded slots stay in the queue until reached: past `limit` entries in all, a
            # price takes its waiting one's place instead of leaving another (memory bounded:
            # at most `limit` entries of prices and dead slots, and `limit` live others).
            crowded = self._queue.qsize() >= self.limit
            if waiting is not None and crowded:
                waiting.event = event
                return
            if (is_tick and crowded) or self.qsize() >= self.limit:
                if is_tick:
                    self.ticks_dropped += 1
                else:  # a mark no waiting one can take: a journaled event dropped
                    self.events_dropped += 1
                    self.overflowed = True
                return
            if waiting is not None:
                waiting.event = None
                self._superseded_slots += 1
            slot = _PriceSlot(event, key)
            self._waiting[key] = slot
            self._queue.put(slot)

    def put_command(self, item: Any) -> None:
        self._queue.put(item)

    def get(self, block: bool = True) -> Any:
        """The next item (a journaled event, a tick, a command); None for a price superseded
        or a tick skipped at a stop. Raises queue.Empty when not blocking and nothing waits."""
        item = self._queue.get(block)
        if type(item) is not _PriceSlot:
            return item
        with self._lock:
            event = item.event
            if self._waiting.get(item.key) is item:
                del self._waiting[item.key]
            if event is None:
                self._superseded_slots -= 1
        if event is None:  # superseded: its symbol's newer price is further on
            return None
        if self.skip_ticks and item.key[0]:  # a tick
            self.ticks_dropped += 1
            return None
        return event
