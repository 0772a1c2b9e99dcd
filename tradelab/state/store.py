"""StateStore: the plain-data state tree that is the fold of the journal, changed only by events.

Thread model: ONE writer thread calls `apply`/`apply_batch`/`load_snapshot`; any thread may call
`get`, `get_many`, `snapshot`, `state_hash`, `age`, `watch`. Writes and reads take one short lock;
values handed to readers are never changed afterwards (copy-on-write, see tree.py). Watchers run
on the writer thread after the change set is complete and the lock is released.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tradelab.errors import (
    InvalidInputError,
    LifecycleError,
    SchemaVersionError,
    TradelabError,
)
from tradelab.events import Event
from tradelab.state.applying import ApplyMixin
from tradelab.state.meta import MetaTree, PathMeta, load_meta
from tradelab.state.migrations import MigrationRegistry
from tradelab.state.paths import MISSING, parse_path
from tradelab.state.snapshot import StateSnapshot, plain_copy, state_sha256
from tradelab.state.tree import CowTree, detached
from tradelab.state.views import Derived, FrozenView, Reducer, StateView
from tradelab.state.watchers import Watch, WatchCallback, WatcherSet

__all__ = ["Derived", "Reducer", "StateStore", "StateView"]


class StateStore(ApplyMixin):
    """The state tree, its version (seq of the last applied event) and per-path change metadata.

    Reducers registered per topic turn an event into `(dot_path, value)` changes (`DELETE`
    removes). Reducers for one topic run in registration order, each seeing the changes of those
    before it; all changes of an event (or of a batch) apply atomically (`apply`, `apply_batch`,
    `apply_each`: tradelab.state.applying).
    """

    def __init__(
        self,
        *,
        schema_version: int = 1,
        migrations: MigrationRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if type(schema_version) is not int or schema_version < 1:
            raise InvalidInputError(f"schema_version must be an int >= 1, got {schema_version!r}")
        self.schema_version = schema_version
        # Which reducers fold this store (tradelab.engine.store.FOLD_VERSION for the default
        # ones), stamped on its snapshots; 1 for reducers that never changed.
        self.fold_version = 1
        self.migrations = migrations
        self._clock = clock
        self._lock = threading.RLock()
        self._tree = CowTree()
        self._meta = MetaTree()
        self._view = StateView(self._tree)
        self._version = 0
        self._writes_refused = ""  # set by refuse_writes: the store is then read-only
        self._reducers: dict[str, tuple[Reducer, ...]] = {}
        # The same, each reducer paired with its fresh_values mark, read once at registration.
        self._plans: dict[str, tuple[tuple[Reducer, bool], ...]] = {}
        self._watchers = WatcherSet()
        self._events_applied = 0
        # Readers on other threads ask the writer to publish a frozen root between two events
        # instead of queueing on the lock mid-apply (each such wait costs GIL handoffs).
        self._read_request = False
        self._read_ready = threading.Event()
        self._published: tuple[int, dict[str, Any]] | None = None
        self._batches = 0
        self._reducer_failures = 0
        self.apply_seconds = 0.0  # in apply*: reducers, tree writes, path metadata

    # -- reducers -------------------------------------------------------------------------------
    def register_reducer(self, topic: str, reducer: Reducer) -> None:
        self._check_writable()  # a reducer changes what every later event folds into
        self._register_reducer(topic, reducer)

    def _register_reducer(self, topic: str, reducer: Reducer) -> None:
        if not isinstance(topic, str) or not topic:
            raise InvalidInputError(f"reducer topic must be a non-empty str, got {topic!r}")
        if not callable(reducer):
            raise InvalidInputError(
                f"reducer for topic {topic!r} must be callable, got {type(reducer).__name__}"
            )
        with self._lock:
            reducers = dict(self._reducers)
            reducers[topic] = (*reducers.get(topic, ()), reducer)
            plans = dict(self._plans)
            plans[topic] = (
                *plans.get(topic, ()),
                (reducer, getattr(reducer, "fresh_values", False)),
            )
            self._reducers, self._plans = reducers, plans

    def register_reducers(self, mapping: Mapping[str, Reducer | Sequence[Reducer]]) -> None:
        self._check_writable()
        self._register_reducers(mapping)

    def _register_reducers(self, mapping: Mapping[str, Reducer | Sequence[Reducer]]) -> None:
        for topic, entry in mapping.items():
            for reducer in entry if isinstance(entry, Sequence) else (entry,):
                self._register_reducer(topic, reducer)

    def reducers_for(self, topic: str) -> tuple[Reducer, ...]:
        return self._reducers.get(topic, ())

    # -- reading --------------------------------------------------------------------------------
    def get(self, path: str, default: Any = None) -> Any:
        """A private copy of the value at `path` (O(its size)), or `default` when absent:
        mutating it never changes the store, which must stay the fold of the journal."""
        segments = parse_path(path)
        with self._lock:
            value = self._tree.lookup(segments)
            if value is MISSING:
                return default
            value = self._tree.hand_out(value)  # never changed in place now: copy off the lock
        return detached(value)

    def get_many(self, paths: Iterable[str], default: Any = None) -> tuple[int, dict[str, Any]]:
        """(version, {path: private copy}) at one consistent version, not stalling the writer."""
        version, values = self._read_frozen(paths)
        return version, {p: default if v is MISSING else detached(v) for p, v in values.items()}

    def _read_frozen(self, paths: Iterable[str]) -> tuple[int, dict[str, Any]]:
        """(version, {path: value or MISSING}) of SHARED frozen nodes, for readers in this
        package that copy only what changed (the reactive face). Never mutate them."""
        if isinstance(paths, str) or not isinstance(paths, Iterable):
            # A str is iterable too: read char by char it would name '.' as the bad path.
            raise InvalidInputError(
                f"paths must be a list of state paths, e.g. ['pnl.daily'], got "
                f"{type(paths).__name__} {paths!r}; for one path use get(path)"
            )
        parsed = [(path, parse_path(path)) for path in paths]
        version, root = self._frozen_root()
        tree = CowTree(root)
        return version, {path: tree.lookup(segments) for path, segments in parsed}

    def _frozen_root(self) -> tuple[int, dict[str, Any]]:
        """(version, root frozen at that version). When the writer is busy, it publishes one
        after its current event; when idle (or slow to answer), the lock is taken."""
        if self._lock.acquire(blocking=False):
            try:
                return self._version, self._tree.freeze()
            finally:
                self._lock.release()
        self._read_ready.clear()
        self._read_request = True
        if self._read_ready.wait(0.05):
            published = self._published
            if published is not None:
                return published
        with self._lock:
            return self._version, self._tree.freeze()

    def __contains__(self, path: str) -> bool:
        segments = parse_path(path)
        with self._lock:
            return self._tree.lookup(segments) is not MISSING

    def frozen(self) -> tuple[int, StateView]:
        """(version, a view of the state at that version); its reads are private copies."""
        version, root = self._frozen_root()
        return version, FrozenView(CowTree(root))

    def snapshot(self) -> StateSnapshot:
        """An independent copy of the whole state, tagged with version and schema version."""
        with self._lock:
            root = self._tree.freeze()
            seq = self._version
            meta = self._meta.to_plain()
        return StateSnapshot(
            seq=seq,
            schema_version=self.schema_version,
            state=plain_copy(root),
            meta=meta,
            fold=self.fold_version,
        )

    def state_hash(self) -> str:
        """sha256 hex of the canonical JSON state: equal state gives an equal hash in any process."""
        return state_sha256(self._frozen_root()[1])

    # -- snapshots --------------------------------------------------------------------------------
    def load_snapshot(
        self, snapshot: StateSnapshot, migrations: MigrationRegistry | None = None
    ) -> None:
        """Replace the state by `snapshot` (upcast to this store's schema); watchers are not called."""
        self._check_writable()
        self._load_snapshot(snapshot, migrations)

    def refuse_writes(self, why: str) -> StoreWriter:
        """Make the store read-only for everyone but its one owner: from now on `apply`,
        `apply_batch`, `apply_each`, `load_snapshot` and `register_reducer(s)` raise
        LifecycleError(`why`), and only the returned writer (held by the owner) makes them
        (an engine folding its journal, a replica following an engine: a write of a reader's
        would make the store differ from that fold unseen). Once per store."""
        if self._writes_refused:
            raise LifecycleError(
                f"the store's writes have an owner already: {self._writes_refused}"
            )
        self._writes_refused = why
        return StoreWriter(self)

    def _load_snapshot(
        self, snapshot: StateSnapshot, migrations: MigrationRegistry | None = None
    ) -> None:
        migrations = migrations or self.migrations
        if snapshot.schema_version != self.schema_version:
            if migrations is None:
                if snapshot.schema_version > self.schema_version:
                    raise SchemaVersionError(
                        f"snapshot at seq {snapshot.seq} has schema version "
                        f"{snapshot.schema_version}, newer than this store's version "
                        f"{self.schema_version}; upgrade tradelab to read it"
                    )
                raise SchemaVersionError(
                    f"snapshot at seq {snapshot.seq} has schema version "
                    f"{snapshot.schema_version} but this store is version {self.schema_version} "
                    "and no MigrationRegistry was given to upcast it"
                )
            snapshot = migrations.upcast_snapshot(snapshot, self.schema_version)
        state = plain_copy(snapshot.state)
        meta = MetaTree() if snapshot.meta is None else load_meta(snapshot.meta, snapshot.seq)
        with self._lock:
            self._tree = CowTree(state)
            self._view = StateView(self._tree)
            self._meta = meta
            self._version = snapshot.seq

    @classmethod
    def from_snapshot(
        cls,
        snapshot: StateSnapshot,
        migrations: MigrationRegistry | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> StateStore:
        """A new store holding `snapshot`, at the migrations' schema version when given."""
        version = migrations.snapshot_version if migrations else snapshot.schema_version
        store = cls(schema_version=version, migrations=migrations, clock=clock)
        store.load_snapshot(snapshot)
        return store

    # -- watchers, metadata, derived reads ------------------------------------------------------
    def watch(self, pattern: str, callback: WatchCallback) -> Watch:
        """Call `callback(path, new, old, seq)` after each change set that changes a matching path.

        `*` matches one level: 'trading.positions.*' reports each position whose value (anything
        below it) changed. Absent values are passed as None. Returns a handle with `unwatch()`.
        """
        return self._watchers.add(pattern, callback)

    def unwatch(self, watch: Watch) -> None:
        self._watchers.remove(watch)

    def meta(self, path: str) -> PathMeta | None:
        """The newest change that set `path`, something below it, or a whole parent of it."""
        segments = parse_path(path)
        with self._lock:
            return self._meta.lookup(segments)

    def age(self, path: str) -> float | None:
        """Seconds since the event time of the newest change affecting `path` (None: never set)."""
        meta = self.meta(path)
        return None if meta is None else self._clock() - meta.ts / 1e9

    def is_stale(self, path: str, max_age: float) -> bool:
        """True when `path` was never set or its newest change is older than `max_age` seconds."""
        if not isinstance(max_age, int | float) or max_age < 0:
            raise InvalidInputError(f"max_age must be seconds >= 0, got {max_age!r}")
        age = self.age(path)
        return age is None or age > max_age

    def derived(self, fn: Callable[[StateView], Any]) -> Derived:
        """A callable returning `fn(view)`, recomputed only when the store's version has moved."""
        return Derived(self, fn)

    def metrics(self) -> dict[str, Any]:
        return {
            "version": self._version,
            "events_applied": self._events_applied,
            "batches": self._batches,
            "apply_seconds": self.apply_seconds,
            "reducer_failures": self._reducer_failures,
            "watches": len(self._watchers.watches),
            "watcher_calls": self._watchers.delivered,
            "watcher_failures": self._watchers.failures,
        }

    def __repr__(self) -> str:
        return f"StateStore(version={self._version}, schema_version={self.schema_version})"


class StoreWriter:
    """A store as its one owner sees it (`StateStore.refuse_writes`): the writes the store
    refuses to everyone else, and every read as the store's own, so the owner's recovery and
    kernel take it wherever they take a store."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    @property
    def version(self) -> int:  # read per event by the kernel: not through __getattr__
        return self._store._version

    def __getattr__(self, name: str) -> Any:  # reads: snapshot, migrations...
        if name == "_store":  # not set yet (a copy in the making): no endless lookup
            raise AttributeError(name)
        return getattr(self._store, name)

    def apply(self, event: Event) -> None:
        """As `StateStore.apply`."""
        self._store._apply_batch((event,))

    def apply_batch(self, events: Iterable[Event]) -> None:
        """As `StateStore.apply_batch`."""
        self._store._apply_batch(events)

    def apply_each(
        self, events: Sequence[Event], *, upcast: bool = True
    ) -> tuple[int, TradelabError | None]:
        """As `StateStore.apply_each`."""
        return self._store._apply_each(events, upcast)

    def load_snapshot(
        self, snapshot: StateSnapshot, migrations: MigrationRegistry | None = None
    ) -> None:
        """As `StateStore.load_snapshot`."""
        self._store._load_snapshot(snapshot, migrations)

    def register_reducers(self, mapping: Mapping[str, Reducer | Sequence[Reducer]]) -> None:
        """As `StateStore.register_reducers`."""
        self._store._register_reducers(mapping)
