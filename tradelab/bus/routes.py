"""What the bus resolves once per topic: its handlers in order, its counter, its registry facts.

Pure construction, called under the bus lock on a subscribe or a topic's first publish; the
resulting Route is immutable in use, so publishers on any thread read it without a lock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from tradelab.bus.metrics import TopicCounter
from tradelab.bus.subscription import Handler, Subscription
from tradelab.events import TopicRegistry


class Route:
    """Everything the bus resolved for one topic: who gets it and how to count it.

    `journaled`: the registry knows the topic and it is not transient, so only the engine's
    kernel may put it on the bus (stamped with its seq).
    """

    __slots__ = ("counter", "critical", "handlers", "journaled", "schema_version", "subs", "topic")

    def __init__(
        self,
        topic: str,
        subs: tuple[Subscription, ...],
        handlers: tuple[Handler, ...],
        counter: TopicCounter,
        critical: bool,
        schema_version: int,
        journaled: bool,
    ) -> None:
        self.topic = topic
        self.subs = subs
        self.handlers = handlers
        self.counter = counter
        self.critical = critical
        self.schema_version = schema_version
        self.journaled = journaled


# (handlers, count iterator, Route): unpacked in one step on every publish.
RouteEntry = tuple[tuple[Handler, ...], Any, Route]


def build_route(
    topic: str,
    subs: tuple[Subscription, ...],
    counter: TopicCounter,
    registry: TopicRegistry | None,
    schedule_async: Callable[..., Any],
) -> RouteEntry:
    handlers: list[Handler] = []
    for sub in subs:
        if sub.is_async:
            call: Handler = functools.partial(schedule_async, sub)
        elif any(h is sub.handler for h in handlers):
            # The same function subscribed twice: a distinct wrapper keeps each entry
            # identifiable so a failure is charged to the right subscription.
            call = functools.partial(sub.handler)
        else:
            call = sub.handler
        handlers.append(call)
    spec = registry.get(topic) if registry is not None and topic in registry else None
    route = Route(
        topic,
        subs,
        tuple(handlers),
        counter,
        spec.critical if spec else False,
        spec.schema_version if spec else 1,
        spec is not None and not spec.transient,
    )
    return route.handlers, counter.counter, route
