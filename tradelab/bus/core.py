"""EventBus: synchronous in-process publish/subscribe with glob topics, isolation and history.

Thread model: publish from any thread, lock-free; handlers run on the publishing thread (async
handlers on the bus's loop thread). subscribe/unsubscribe/cache misses/failure counts take one
lock and swap in new immutable handler tuples (copy-on-write), so a delivery in progress keeps
the tuple it started with. A publish made by a handler on the same thread is queued and
delivered after the current event has reached all of its handlers.
"""

from __future__ import annotations

import logging
import threading
import time
from _thread import get_ident
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from tradelab.bus.async_handlers import AsyncHandlerRunner
from tradelab.bus.failures import HANDLER_FAILED, FailureRecorder
from tradelab.bus.metrics import TopicCounter, rates
from tradelab.bus.routes import Route, RouteEntry, build_route
from tradelab.bus.subscription import Handler, Subscription
from tradelab.bus.topics import (
    check_pattern,
    check_topic,
    coerce_payload_and_key,
    copy_ring,
    filter_history,
    pattern_matcher,
)
from tradelab.errors import InvalidInputError, LifecycleError
from tradelab.events import Event, TopicRegistry

log = logging.getLogger("tradelab.bus")
_time_ns = time.time_ns  # a module global: one lookup fewer per publish


class EventBus(FailureRecorder):
    """Delivers each event synchronously, in subscription order, to every matching handler.

    A handler that raises is isolated: the failure is logged, counted, and published as
    `bus.handler_failed`; the other handlers still get the event. With a `registry`, publishing
    an unregistered topic is an `UnknownTopicError`, and `publish` / `publish_event` of a seq-0
    event refuse a journaled (non-transient) topic: such an event would reach every subscriber
    without ever being stored or journaled. Journaled events come only from the engine's kernel
    (`publish_events`, stamped with their seq). Both checks run once per topic, on a cache miss.
    Handler call times are sampled: the first publish of each topic and then 1 in `sample_every`
    are timed per handler; counts per topic are exact.
    """

    def __init__(
        self,
        *,
        registry: TopicRegistry | None = None,
        history_size: int = 10_000,
        name: str = "bus",
        sample_every: int = 64,
        rate_window_s: float = 10.0,
    ) -> None:
        if not isinstance(history_size, int) or isinstance(history_size, bool) or history_size < 0:
            raise InvalidInputError(f"history_size {history_size!r} must be an int >= 0")
        if (
            not isinstance(sample_every, int)
            or sample_every < 1
            or sample_every & (sample_every - 1)
        ):
            raise InvalidInputError(f"sample_every {sample_every!r} must be a power of two >= 1")
        if not rate_window_s > 0:
            raise InvalidInputError(f"rate_window_s {rate_window_s!r} must be > 0 seconds")
        self.name = name
        self.registry = registry
        self.history_size = history_size
        self.sample_every = sample_every
        self._sample_mask = sample_every - 1
        self._rate_window_ns = int(rate_window_s * 1e9)
        self._lock = threading.Lock()
        self._subs: tuple[Subscription, ...] = ()
        self._next_sub_id = 1
        # topic -> RouteEntry (handlers, count iterator, Route); replaced whole on (un)subscribe.
        # `_routes` serves publish/publish_event and never holds a journaled topic, so their
        # refusal costs the hot path nothing; `_kernel_routes` (every topic) serves the kernel.
        self._routes: dict[str, RouteEntry] = {}
        self._kernel_routes: dict[str, RouteEntry] = {}
        self._counters: dict[str, TopicCounter] = {}
        self._history: deque[Event] = deque(maxlen=history_size)
        self._history_append = self._history.append
        # Threads currently delivering -> None, or a deque of events their handlers published.
        self._delivering: dict[int, deque | None] = {}
        self._reentrant_queued = 0
        self._failures_by_handler: dict[str, int] = {}
        self._failures_total = 0
        self._started_ns = time.perf_counter_ns()
        self._closed = False
        self._async = AsyncHandlerRunner(name, self._record_failure)

    # ---------------------------------------------------------------- subscribe / unsubscribe
    def subscribe(self, pattern: str, handler: Handler, *, name: str | None = None) -> Subscription:
        """Call `handler(event)` for every event whose topic matches `pattern` (glob: `trade.*`).

        Takes effect from the next publish. Coroutine functions run on the bus's loop thread.
        """
        check_pattern(pattern, None if pattern == HANDLER_FAILED else self.registry)
        if not callable(handler):
            raise InvalidInputError(
                f"handler for {pattern!r} must be callable, got {type(handler).__name__} "
                f"{handler!r}"
            )
        with self._lock:
            if self._closed:
                raise LifecycleError(f"bus {self.name!r} is closed; cannot subscribe {pattern!r}")
            sub = Subscription(self, self._next_sub_id, pattern, handler, name)
            sub.matches = pattern_matcher(pattern)
            self._next_sub_id += 1
            self._subs = (*self._subs, sub)
            self._rebuild_routes()
        return sub

    def unsubscribe(self, sub: Subscription) -> bool:
        """Stop delivery to `sub` from the next publish on; False if it was not subscribed."""
        if not isinstance(sub, Subscription) or sub._bus is not self:
            raise InvalidInputError(f"{sub!r} is not a subscription of bus {self.name!r}")
        with self._lock:
            if not sub.active:
                return False
            sub.active = False
            self._subs = tuple(s for s in self._subs if s is not sub)
            self._rebuild_routes()
        return True

    def subscriptions(self) -> tuple[Subscription, ...]:
        return self._subs

    def _rebuild_routes(self) -> None:
        # Called under the lock. A new dict is swapped in whole: publishers read either the old
        # or the new one, never a half-updated mapping.
        if not self._closed:
            routes = {topic: self._route(topic) for topic in self._kernel_routes}
            self._kernel_routes = routes
            self._routes = {topic: r for topic, r in routes.items() if not r[2].journaled}

    def _route(self, topic: str) -> RouteEntry:
        counter = self._counters.get(topic)
        if counter is None:
            counter = self._counters[topic] = TopicCounter(topic)
        subs = tuple(s for s in self._subs if s.matches(topic))
        return build_route(topic, subs, counter, self.registry, self._async.schedule)

    def _resolve(self, topic: Any, seq: int = 0) -> RouteEntry:
        """The cache-miss path: check the topic once, then cache its route. A journaled topic is
        refused for an unstamped event (`seq` 0) and never enters the direct-publish cache."""
        if topic != HANDLER_FAILED:  # the bus's own topic is allowed whatever the registry
            check_topic(topic, self.registry)
        with self._lock:
            if self._closed:
                raise LifecycleError(f"bus {self.name!r} is closed; cannot publish {topic!r}")
            route = self._kernel_routes.get(topic)
            if route is None:
                route = self._kernel_routes[topic] = self._route(topic)
            if not route[2].journaled:
                self._routes[topic] = route
            elif not seq:
                raise InvalidInputError(
                    f"topic {topic!r} is journaled, not transient: published on the bus directly "
                    "it would reach subscribers without being stored or journaled; use "
                    f"engine.submit({topic!r}, payload) instead"
                )
            return route

    def _resolve_kernel(self, topic: Any) -> RouteEntry:
        """The cache-miss path of `publish_events`: its events are stamped, any topic goes."""
        return self._resolve(topic, seq=1)

    # ---------------------------------------------------------------- publish
    def publish(self, topic: str, payload: Mapping[str, Any], *, key: str = "") -> Event:
        """Build a transient Event (seq 0, ts now) and deliver it; returns the event."""
        try:
            handlers, counter, route = self._routes[topic]
        except (KeyError, TypeError):
            handlers, counter, route = self._resolve(topic)
        if payload.__class__ is not dict or key.__class__ is not str:
            payload, key = coerce_payload_and_key(topic, payload, key)
        event = Event(0, _time_ns(), topic, key, payload, route.critical, route.schema_version)
        # The delivery below is publish_event's body, repeated: one Python call fewer per
        # publish is ~15% of the whole budget.
        delivering = self._delivering
        thread = get_ident()
        if delivering and thread in delivering:
            self._enqueue(thread, event, handlers, counter, route)
            return event
        delivering[thread] = None
        try:
            self._history_append(event)
            n = next(counter)
            if n & self._sample_mask:
                for handler in handlers:
                    try:
                        handler(event)
                    except BaseException as exc:  # see _handler_failed
                        self._handler_failed(route, handler, event, exc)
            else:
                self._deliver_sampled(event, handlers, route, n)
            if delivering[thread] is not None:
                self._drain(thread)
        finally:
            del delivering[thread]
        return event

    def publish_event(self, event: Event) -> None:
        """Deliver an already built Event (e.g. one the engine stamped with seq and ts)."""
        try:
            handlers, counter, route = self._routes[event.topic]
        except KeyError:
            handlers, counter, route = self._resolve(event.topic, event.seq)
        except AttributeError:
            raise InvalidInputError(
                f"publish_event expects an Event, got {type(event).__name__} {event!r}"
            ) from None
        delivering = self._delivering
        thread = get_ident()
        if delivering and thread in delivering:
            self._enqueue(thread, event, handlers, counter, route)
            return
        delivering[thread] = None
        try:
            self._history_append(event)
            n = next(counter)
            if n & self._sample_mask:
                for handler in handlers:
                    try:
                        handler(event)
                    except BaseException as exc:  # see _handler_failed
                        self._handler_failed(route, handler, event, exc)
            else:
                self._deliver_sampled(event, handlers, route, n)
            if delivering[thread] is not None:
                self._drain(thread)
        finally:
            del delivering[thread]

    def publish_events(self, events: Sequence[Event]) -> None:
        """`publish_event` for each of `events`, in order, with the per-call bookkeeping done
        once: the engine's kernel publishes every applied batch this way. This is the one door
        for journaled topics: the kernel passes only events the store applied, with their seq;
        an unstamped (seq 0) event of a journaled topic is refused here too, and the events
        before it in `events` have been delivered."""
        delivering = self._delivering
        thread = get_ident()
        if delivering and thread in delivering:  # from inside a handler: queued, one by one
            for event in events:
                self.publish_event(event)
            return
        routes, history, mask = self._kernel_routes, self._history_append, self._sample_mask
        # publish_event's body again, looped: a call per event fewer is the point of this method.
        delivering[thread] = None
        try:
            for event in events:
                try:
                    handlers, counter, route = routes[event.topic]
                except KeyError:
                    handlers, counter, route = self._resolve_kernel(event.topic)
                    routes = self._kernel_routes  # the miss may have swapped the table
                if not event.seq and route.journaled:  # unstamped: never stored or journaled
                    self._resolve(event.topic)  # raises, as publish_event does
                history(event)
                n = next(counter)
                if n & mask:
                    for handler in handlers:
                        try:
                            handler(event)
                        except BaseException as exc:  # see _handler_failed
                            self._handler_failed(route, handler, event, exc)
                else:
                    self._deliver_sampled(event, handlers, route, n)
                if delivering[thread] is not None:
                    self._drain(thread)
        finally:
            del delivering[thread]

    def _enqueue(self, thread: int, event: Event, handlers: Any, counter: Any, route: Any) -> None:
        pending = self._delivering.get(thread)
        if pending is None:
            pending = self._delivering[thread] = deque()
        pending.append((event, handlers, counter, route))
        self._reentrant_queued += 1

    def _drain(self, thread: int) -> None:
        """Deliver, in order, the events this thread's handlers published meanwhile."""
        pending = self._delivering[thread]
        while pending:
            event, handlers, counter, route = pending.popleft()
            self._history_append(event)
            n = next(counter)
            if n & self._sample_mask:
                for handler in handlers:
                    try:
                        handler(event)
                    except BaseException as exc:  # see _handler_failed
                        self._handler_failed(route, handler, event, exc)
            else:
                self._deliver_sampled(event, handlers, route, n)

    def _deliver_sampled(
        self, event: Event, handlers: tuple[Handler, ...], route: Route, n: int
    ) -> None:
        perf_ns = time.perf_counter_ns
        route.counter.checkpoint(perf_ns(), n)
        for handler, sub in zip(handlers, route.subs, strict=True):
            started = perf_ns()
            try:
                handler(event)
            except BaseException as exc:  # see _handler_failed
                elapsed = perf_ns() - started  # before the failure is logged and published
                self._handler_failed(route, handler, event, exc)
            else:
                elapsed = perf_ns() - started
            if not sub.is_async:  # async handlers are timed where they actually run
                sub.record_call_time(elapsed)

    # ---------------------------------------------------------------- history, metrics, close
    def history(
        self, pattern: str = "*", since_seq: int | None = None, limit: int | None = None
    ) -> list[Event]:
        """Recent events, oldest first, filtered by glob `pattern` and by `seq > since_seq`.

        Transient events have seq 0, so `since_seq` (even 0) leaves them out. `limit` keeps the
        most recent `limit` matches. The ring holds the last `history_size` delivered events.
        """
        return filter_history(copy_ring(self._history), pattern, since_seq, limit)

    def metrics(self) -> dict[str, Any]:
        """Counts, rates and handler statistics as a plain dict (JSON-serializable).

        The same figures in Prometheus form: register `BusCollector(bus)` in a registry."""
        total, per_topic, lifetime, recent = rates(
            list(self._counters.values()), self._started_ns, self._rate_window_ns
        )
        subs = self._subs
        return {
            "name": self.name,
            "closed": self._closed,
            "uptime_s": (time.perf_counter_ns() - self._started_ns) / 1e9,
            "events_total": total,
            "events_per_topic": per_topic,
            "rate_per_s_lifetime": lifetime,
            "rate_per_s_recent": recent,
            "rate_window_s": self._rate_window_ns / 1e9,
            "subscriptions": len(subs),
            "history_len": len(self._history),
            "history_size": self.history_size,
            "reentrant_queued": self._reentrant_queued,
            "handler_failures_total": self._failures_total,
            "handler_failures": dict(self._failures_by_handler),
            "handler_time_sample_every": self.sample_every,
            "async_pending": self._async.pending,
            "async_dropped": self._async.dropped,
            "async_dropped_by_handler": dict(self._async.dropped_by_handler),
            "handlers": [sub.stats() for sub in subs],
        }

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float = 5.0) -> None:
        """Refuse further publishes, wait up to `timeout` s for async handlers, stop their loop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._routes = {}  # every publish now misses the cache and meets LifecycleError
            self._kernel_routes = {}
        cancelled = self._async.close(timeout)
        if cancelled:
            log.warning("bus %r closed with %d async handler calls cancelled", self.name, cancelled)

    def __enter__(self) -> EventBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<EventBus {self.name!r} {state}, {len(self._subs)} subscriptions>"
