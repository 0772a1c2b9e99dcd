"""A subscription handle and its per-handler statistics (sampled call times, failures).

Thread model: the handle may be used from any thread. Failure counts are updated under the bus
lock (exact); call times go to a prometheus_client Histogram, which locks each update, by
whichever thread ran the sampled call.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import Histogram

if TYPE_CHECKING:
    from tradelab.bus.core import EventBus
    from tradelab.events import Event

Handler = Callable[["Event"], Any]

ERROR_TEXT_LIMIT = 500
# Upper bounds (s) of the call-time buckets, 100 ns to 1 min, plus +Inf; a handler is meant to
# take microseconds. Prometheus scans them in order, so the common fast calls end the scan early.
CALL_SECONDS_BUCKETS = (
    *(m * 10.0**e for e in range(-7, 1) for m in (1, 2.5, 5)),
    10.0,
    60.0,
    math.inf,
)


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
        "call_seconds",
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
        # Unregistered: the bus's BusCollector exports it with the bus and handler as labels.
        self.call_seconds = Histogram(
            "tradelab_bus_handler_call_seconds",
            "Sampled handler call time.",
            registry=None,
            buckets=CALL_SECONDS_BUCKETS,
        )

    def unsubscribe(self) -> bool:
        """Stop delivery to this handler from the next publish on; False if already unsubscribed."""
        return self._bus.unsubscribe(self)

    def record_call_time(self, elapsed_ns: int) -> None:
        self.call_seconds.observe(elapsed_ns * 1e-9)

    def call_time_buckets(self) -> tuple[list[tuple[str, float]], float]:
        """The call-time histogram as Prometheus exports it: cumulative (le, count) pairs, sum."""
        buckets: list[tuple[str, float]] = []
        total_seconds = 0.0
        for metric in self.call_seconds.collect():
            for sample in metric.samples:
                if sample.name.endswith("_bucket"):
                    buckets.append((sample.labels["le"], sample.value))
                elif sample.name.endswith("_sum"):
                    total_seconds = sample.value
        return buckets, total_seconds

    def stats(self) -> dict[str, Any]:
        """Plain-dict statistics of this handler (times are bucket upper bounds in ns)."""
        return {
            "id": self.id,
            "name": self.name,
            "pattern": self.pattern,
            "async": self.is_async,
            "active": self.active,
            "failures": self.failures,
            **histogram_summary(self.call_time_buckets()[0]),
        }

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        state = "active" if self.active else "unsubscribed"
        return f"<Subscription #{self.id} {self.pattern!r} -> {self.name} ({state})>"


def histogram_summary(cumulative: list[tuple[str, float]]) -> dict[str, Any]:
    """p50/p99/max and the non-empty buckets of a cumulative (le, count) histogram, in ns.

    Each figure is the upper bound of the bucket it falls in, as Prometheus' histogram_quantile
    would bound it (without interpolating inside the bucket); +Inf stays infinite.
    """
    uppers_ns = [float(le) * 1e9 for le, _ in cumulative]
    counts = [int(n) for _, n in cumulative]
    total = counts[-1] if counts else 0
    per_bucket = {
        _ns(upper): n - before
        for upper, n, before in zip(uppers_ns, counts, [0, *counts[:-1]], strict=True)
        if n > before
    }

    def bound(share: float) -> float | int | None:
        # The first bucket whose cumulative count reaches `share` of the calls.
        return next((_ns(u) for u, n in zip(uppers_ns, counts, strict=True) if n >= share), None)

    return {
        "sampled_calls": total,
        "time_ns_p50": bound(total * 0.5) if total else None,
        "time_ns_p99": bound(total * 0.99) if total else None,
        "time_ns_max": bound(total) if total else None,
        "time_ns_histogram": per_bucket,
    }


def _ns(upper_ns: float) -> float | int:
    return upper_ns if math.isinf(upper_ns) else round(upper_ns)


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
