"""The state layer: StateStore (event-sourced plain-data tree), snapshots, migrations, reactive face.

Import what you need; nothing here starts threads until `ReactiveState.start()` is called.
"""

from tradelab.state.meta import PathMeta
from tradelab.state.migrations import MigrationRegistry
from tradelab.state.paths import DELETE, check_path_level
from tradelab.state.snapshot import StateSnapshot, canonical_json, state_sha256
from tradelab.state.store import Derived, Reducer, StateStore, StateView
from tradelab.state.views import fresh_values
from tradelab.state.watchers import Watch

__all__ = [
    "DELETE",
    "Derived",
    "MigrationRegistry",
    "PathMeta",
    "PathValue",
    "ReactiveState",
    "Reducer",
    "StateSnapshot",
    "StateStore",
    "StateView",
    "Watch",
    "canonical_json",
    "check_path_level",
    "fresh_values",
    "state_sha256",
]


def __getattr__(name: str):
    # The param/Panel face is imported on first use so the engine's hot path never loads param.
    if name in ("ReactiveState", "PathValue"):
        from tradelab.state import reactive

        return getattr(reactive, name)
    raise AttributeError(f"module 'tradelab.state' has no attribute {name!r}")
