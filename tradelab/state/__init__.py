"""The state layer: StateStore (event-sourced plain-data tree), snapshots, migrations, reactive face.

Import what you need; nothing here starts threads until `ReactiveState.start()` is called.
"""

from tradelab.state.meta import PathMeta
from tradelab.state.migrations import MigrationRegistry
from tradelab.state.paths import DELETE
from tradelab.state.snapshot import StateSnapshot, canonical_json, state_sha256
from tradelab.state.store import Derived, Reducer, StateStore, StateView
from tradelab.state.watchers import Watch

__all__ = [
    "DELETE",
    "Derived",
    "MigrationRegistry",
    "PathMeta",
    "Reducer",
    "StateSnapshot",
    "StateStore",
    "StateView",
    "Watch",
    "canonical_json",
    "state_sha256",
]
