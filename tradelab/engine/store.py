"""The store every engine and every replay folds into: the default reducers of each domain.

Pure construction; no threads. `build_store` is what `tradelab verify` and tests replay into.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradelab.state import StateStore

# The version of the default reducers' fold: raised whenever they fold the same events into
# other state, so a snapshot taken by the earlier reducers is passed by (recovery replays from
# an older one, or from seq 0) instead of mixing two folds, which `verify` would rightly call a
# difference from full replay. 2: exit levels are state (`trading.exits`); a position's
# opened/updated/closed times are its fills' market times (were the engine's stamps); each
# strategy's record (`runner.by_strategy`). 3: a position a reconciliation fix adopts is valued
# at the symbol's latest mark at once (was at the next mark). 4: a daily loss breach halts by
# itself (`risk.control`, `risk.breach`); a broker's disconnect and reconnect set its health.
# 5: each position's last logged round trip (`trading.logged_exits`). 6: a position reversed
# by one fill opened with that fill (`opened_seq`, `opened_ts`), so the book trims the fills
# before it; a session's open drops the contracts expired before it (`expired_symbols`). 7: an
# exit refused keeps its refusal in the position's exit levels (`trading.exits.<id>.refused`).
# 8: a resume (`risk.resumed`) arms the refused levels again (drops `refused`).
FOLD_VERSION = 8


def default_reducers() -> dict[str, list]:
    """Union of every domain module's `reducers()`: what the live store and replay fold with."""
    from tradelab.broker.reconcile import reducers as reconciliation
    from tradelab.market import reducers as market
    from tradelab.runner import strategy_state
    from tradelab.state import reducers as state
    from tradelab.trading import reducers as trading

    merged: dict[str, list] = {}
    for module in (state, market, trading, reconciliation, strategy_state):
        for topic, reducers in module.reducers().items():
            merged.setdefault(topic, []).extend(reducers)
    return merged


def build_store(
    schema_version: int = 1,
    reducers: Mapping[str, Any] | None = None,
    *,
    migrations: bool = False,
) -> StateStore:
    """A fresh StateStore with the default reducers (plus `reducers`): what replay folds into.
    `migrations`: with the default topics' migrations, as an Engine's store has them (events
    of an older version upcast, of a newer one refused: a SchemaVersionError)."""
    from tradelab.events import TopicRegistry
    from tradelab.state import MigrationRegistry, StateStore

    registry = (
        MigrationRegistry(snapshot_version=schema_version, topics=TopicRegistry())
        if migrations
        else None
    )
    store = StateStore(schema_version=schema_version, migrations=registry)
    store.register_reducers(default_reducers())
    store.fold_version = FOLD_VERSION
    if reducers:
        store.register_reducers(reducers)
    return store


def engine_store(schema_version: int, migrations: Any, journal_path: str) -> tuple[Any, Any]:
    """An engine's store (the default reducers) and its writer (`StateStore.refuse_writes`),
    which only the engine holds: its recovery and kernel fold the journal into the store;
    anyone else's write would leave the store, and the seqs journaled after it, off that fold."""
    from tradelab.state import StateStore

    store = StateStore(schema_version=schema_version, migrations=migrations)
    store.register_reducers(default_reducers())
    store.fold_version = FOLD_VERSION
    writer = store.refuse_writes(
        f"this store is the engine's state, the fold of its journal {journal_path}, read-only "
        "to everyone but the engine: change it with engine.submit(topic, payload), which "
        "journals the event and applies it"
    )
    return store, writer
