"""A subscription handle and its per-handler statistics (sampled call times, failures).

Thread model: the handle may be used from any thread. Failure counts are updated under the bus
lock (exact); the time histogram is written by whichever thread ran the sampled call without a
lock, so under concurrent publishers a few samples can be lost (it is a sample anyway).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradelab.bus.core import EventBus
    from tradelab.events import Event

Handler = Callable[["Event"], Any]

ERROR_TEXT_LIMIT = 500
# Call times are kept in power-of-two buckets: bucket b counts calls that took [2**(b-1), 2**b) ns.
HISTOGRAM_BUCKETS = 64


def handler_name(handler: Callable[..., Any]) -> str:
    """A readable, stable name for a handler: `module.qualname`, or its repr for other callables."""
    qualname = getattr(handler, "__qualname__", None)
    module = getattr(handler, "__module__", None)
    if isinstance(qualname, str):
        return f"{module}.{qualname}" if module else qualname
    return repr(handler)


class Subscription:
    """The handle `EventBus.subscribe` returns: what was subscribed, its stats, `unsubscribe()`."""

    __slots__ = (
        "_bus",
        "active",
        "call_time_histogram",
        "failures",
        "handler",
        "id",
        "is_async",
        "matches",
        "name",
        "pattern",
    )

    def __init__(
        self, bus: EventBus, sub_id: int, pattern: str, handler: Handler, name: str | None
    ) -> None:
        self._bus = bus
        self.id = sub_id
        self.pattern = pattern
        self.handler = handler
        self.name = name or handler_name(handler)
        self.is_async = inspect.iscoroutinefunction(handler)
        self.matches: Callable[[str], bool] = pattern.__eq__  # the bus sets a glob matcher
        self.active = True
        self.failures = 0
        self.call_time_histogram = [0] * HISTOGRAM_BUCKETS

    def unsubscribe(self) -> bool:
        """Stop delivery to this handler from the next publish on; False if already unsubscribed."""
        return self._bus.unsubscribe(self)

    def record_call_time(self, elapsed_ns: int) -> None:
        bucket = elapsed_ns.bit_length()
        self.call_time_histogram[bucket if bucket < HISTOGRAM_BUCKETS else -1] += 1

    def stats(self) -> dict[str, Any]:
        """Plain-dict statistics of this handler (times are bucket upper bounds in ns)."""
        return {
            "id": self.id,
            "name": self.name,
            "pattern": self.pattern,
            "async": self.is_async,
            "active": self.active,
            "failures": self.failures,
            **histogram_summary(self.call_time_histogram),
        }

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        state = "active" if self.active else "unsubscribed"
        return f"<Subscription #{self.id} {self.pattern!r} -> {self.name} ({state})>"


def histogram_summary(histogram: list[int]) -> dict[str, Any]:
    """p50/p99/max upper bounds and the non-empty buckets of a power-of-two ns histogram."""
    counts = list(histogram)  # a copy: publishers may be adding samples while we read
    total = sum(counts)
    summary: dict[str, Any] = {
        "sampled_calls": total,
        "time_ns_p50": None,
        "time_ns_p99": None,
        "time_ns_max": None,
        "time_ns_histogram": {1 << b: n for b, n in enumerate(counts) if n},
    }
    if not total:
        return summary
    seen = 0
    for bucket, n in enumerate(counts):
        if not n:
            continue
        seen += n
        upper = 1 << bucket
        if summary["time_ns_p50"] is None and seen * 2 >= total:
            summary["time_ns_p50"] = upper
        if summary["time_ns_p99"] is None and seen * 100 >= total * 99:
            summary["time_ns_p99"] = upper
        summary["time_ns_max"] = upper
    return summary


def failure_payload(sub: Subscription, event: Event, exc: BaseException) -> dict[str, Any]:
    """The payload of `bus.handler_failed`: which handler failed on which event, and how."""
    error = str(exc)
    return {
        "topic": event.topic,
        "seq": event.seq,
        "handler": sub.name,
        "subscription_id": sub.id,
        "error_type": type(exc).__qualname__,
        "error": error if len(error) <= ERROR_TEXT_LIMIT else error[:ERROR_TEXT_LIMIT] + "…",
    }
