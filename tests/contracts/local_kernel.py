"""A synchronous stand-in for Engine.submit: checks an event, stamps seq, applies it to a real
StateStore and keeps it, so desks, routers and reducers are tested without the engine thread."""

from __future__ import annotations

import threading
from typing import Any

from tradelab.events import Event, TopicRegistry
from tradelab.market.reducers import reducers as market_reducers
from tradelab.state import StateStore
from tradelab.trading.reducers import reducers as trading_reducers


def book_store() -> StateStore:
    store = StateStore()
    store.register_reducers(market_reducers())
    store.register_reducers(trading_reducers())
    return store


class LocalKernel:
    def __init__(self, store_factory=book_store) -> None:
        self.registry = TopicRegistry()
        self._store_factory = store_factory
        self.store = store_factory()
        self.events: list[Event] = []
        self.transient: list[Event] = []
        self._lock = threading.Lock()

    def submit(
        self,
        topic: str,
        payload: Any,
        *,
        key: str = "",
        critical: bool | None = None,
        wait: bool = False,
    ) -> Event:
        with self._lock:
            event = self.registry.make_event(
                topic, payload, key=key, critical=critical, seq=len(self.events) + 1
            )
            self.store.apply(event)
            self.events.append(event)
            return event

    def publish_transient(self, topic: str, payload: Any, key: str = "") -> None:
        self.transient.append(self.registry.make_event(topic, payload, key=key))

    def topics(self, prefix: str = "") -> list[str]:
        return [e.topic for e in self.events if e.topic.startswith(prefix)]

    def replayed_store(self) -> StateStore:
        """A fresh store folded from the recorded events: what recovery would rebuild."""
        store = self._store_factory()
        for event in self.events:
            store.apply(event)
        return store
