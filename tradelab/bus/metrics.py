"""Per-topic counters and event rates for the bus, cheap enough to stay on in production.

Thread model: each topic's count is an `itertools.count`, whose `next()` is one atomic C call
under the GIL, so concurrent publishers never lose a count. Rate checkpoints are appended only on
the sampled path (1 publish in `sample_every` per topic, at most one per `CHECKPOINT_EVERY_NS`).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterable

# A checkpoint (time, count) is kept at most every 0.25 s per topic; 64 of them span 16 s, which
# covers the default 10 s recent-rate window.
CHECKPOINT_EVERY_NS = 250_000_000
CHECKPOINTS_KEPT = 64


def count_value(counter: itertools.count) -> int:
    """The next value an `itertools.count` will return, i.e. how many times `next` was called.

    `itertools.count` exposes its position only through its repr ("count(42)"); reading it this
    way keeps the hot path at a single atomic `next()` call.
    """
    return int(repr(counter)[6:-1])


class TopicCounter:
    """Events seen on one topic, with checkpoints from which a recent rate is derived."""

    __slots__ = ("checkpoints", "counter", "topic")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.counter = itertools.count()
        self.checkpoints: deque[tuple[int, int]] = deque(maxlen=CHECKPOINTS_KEPT)

    @property
    def count(self) -> int:
        return count_value(self.counter)

    def checkpoint(self, now_ns: int, count_before: int) -> None:
        """Note that `count_before` events had been published on this topic at `now_ns`."""
        checkpoints = self.checkpoints
        if not checkpoints or now_ns - checkpoints[-1][0] >= CHECKPOINT_EVERY_NS:
            checkpoints.append((now_ns, count_before))

    def recent_rate(self, now_ns: int, window_ns: int) -> float:
        """Events/s from the oldest checkpoint inside the window (or the newest before it) to now.

        Every event after the chosen checkpoint is counted exactly, so the figure is an exact
        average over [checkpoint, now]; the span is the window rounded to checkpoint spacing, and
        longer for a topic too quiet to have reached a sampled publish inside the window.
        """
        chosen: tuple[int, int] | None = None
        for checkpoint in tuple(self.checkpoints):
            if checkpoint[0] >= now_ns - window_ns:
                chosen = checkpoint
                break
            chosen = checkpoint  # the newest one before the window so far
        if chosen is None or now_ns <= chosen[0]:
            return 0.0
        return (self.count - chosen[1]) * 1e9 / (now_ns - chosen[0])


def rates(
    counters: Iterable[TopicCounter], started_ns: int, window_ns: int
) -> tuple[int, dict[str, int], float, float]:
    """(total, per-topic counts, lifetime events/s, recent events/s) over `counters`."""
    now = time.perf_counter_ns()
    per_topic: dict[str, int] = {}
    recent = 0.0
    for topic_counter in counters:
        n = topic_counter.count
        if n:
            per_topic[topic_counter.topic] = n
            recent += topic_counter.recent_rate(now, window_ns)
    total = sum(per_topic.values())
    lifetime = total * 1e9 / max(now - started_ns, 1)
    return total, per_topic, lifetime, recent
