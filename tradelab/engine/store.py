"""The store every engine and every replay folds into: the default reducers of each domain.

Pure construction; no threads. `build_store` is what `tradelab verify` and tests replay into.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def default_reducers() -> dict[str, list]:
    """Union of every domain module's `reducers()`: what the live store and replay fold with."""
    from tradelab.broker.reconcile import reducers as reconciliation
    from tradelab.market import reducers as market
    from tradelab.state import reducers as state
    from tradelab.trading import reducers as trading

    merged: dict[str, list] = {}
    for module in (state, market, trading, reconciliation):
        for topic, reducers in module.reducers().items():
            merged.setdefault(topic, []).extend(reducers)
    return merged


def build_store(schema_version: int = 1, reducers: Mapping[str, Any] | None = None):
    """A fresh StateStore with the default reducers (plus `reducers`): what replay folds into."""
    from tradelab.state import StateStore

    store = StateStore(schema_version=schema_version)
    store.register_reducers(default_reducers())
    if reducers:
        store.register_reducers(reducers)
    return store
