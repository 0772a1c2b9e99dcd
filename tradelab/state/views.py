"""Read-only faces of the state for reducers and derived reads: `StateView` and `Derived`.

A StateView reads one CowTree and is used on whichever thread holds it (the writer's view during
apply, a frozen root's view elsewhere). A Derived may be called from any thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from tradelab.errors import InvalidInputError
from tradelab.events import Event
from tradelab.state.paths import MISSING, parse_path
from tradelab.state.tree import CowTree, detached

if TYPE_CHECKING:
    from tradelab.state.store import StateStore


class StateView:
    """Read-only access to the state for reducers: `get` returns the store's own nodes (no copy,
    the hot path), so never mutate what it returns; whatever a reducer stores is copied in."""

    __slots__ = ("_tree",)

    def __init__(self, tree: CowTree) -> None:
        self._tree = tree

    def get(self, path: str, default: Any = None) -> Any:
        value = self._tree.lookup(parse_path(path))
        return default if value is MISSING else value

    def has(self, path: str) -> bool:
        return self._tree.lookup(parse_path(path)) is not MISSING


class FrozenView(StateView):
    """A StateView for readers outside the store (`StateStore.frozen`, `Derived`): each read is
    a private copy, so nothing a reader does to it reaches the store."""

    __slots__ = ()

    def get(self, path: str, default: Any = None) -> Any:
        value = self._tree.lookup(parse_path(path))
        return default if value is MISSING else detached(value)


Reducer = Callable[[StateView, Event], Iterable[tuple[str, Any]]]
R = TypeVar("R", bound=Callable[..., Any])


def fresh_values(reducer: R) -> R:
    """Mark `reducer` as building every container it returns for that write, holding only
    scalars (str, int, bool, None, finite floats: read from the tree, or from the payload and
    checked, or computed from such) and members of the sequence stored at the same path (as a
    bounded history keeps them). Nothing else holds any of those containers: not the event's
    payload (published on the bus after the store applied it), not another path of the tree,
    not the reducer. The store then takes such values as they are, without `adopt`'s copy and
    plain-data walk; a bare float is still checked. For the reducers every bar or mark runs.
    """
    reducer.fresh_values = True  # type: ignore[attr-defined]
    return reducer


class Derived:
    """A derived read cached on the store version: it can never return data older than the
    version at the moment of the call. Any thread may call it."""

    __slots__ = ("_store", "_fn", "_cached", "computations")

    def __init__(self, store: StateStore, fn: Callable[[StateView], Any]) -> None:
        if not callable(fn):
            raise InvalidInputError(f"derived() needs a callable, got {type(fn).__name__}")
        self._store = store
        self._fn = fn
        self._cached: tuple[int, Any] | None = None
        self.computations = 0

    def __call__(self) -> Any:
        cached = self._cached
        if cached is not None and cached[0] == self._store.version:
            return cached[1]
        version, view = self._store.frozen()
        value = self._fn(view)
        self.computations += 1
        self._cached = (version, value)  # one tuple assignment: readers never see a torn pair
        return value
