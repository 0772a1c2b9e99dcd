"""ReactiveState: the param face of a StateStore for Panel views and notebooks.

Thread model: params are set from ONE thread only — the refresher thread started by `start()`
(or the caller of `refresh_now()`; a lock keeps the two from overlapping). The refresher wakes at
`rate_hz`, and only when the store's version moved does it read the bound paths (one consistent
read) and set the changed ones, each inside one batch. The store's writer never touches param, so
a watched param set (~50 µs) costs the hot path nothing however fast events arrive.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from typing import Any

import param

from tradelab.errors import InvalidInputError, LifecycleError
from tradelab.state.paths import MISSING, parse_path
from tradelab.state.store import StateStore
from tradelab.state.tree import detached

log = logging.getLogger(__name__)
_UNSEEN = object()


class PathValue(param.Parameterized):
    """The live value at one state path; watch `value` (or bind to it) to follow the path."""

    path = param.String(default="", constant=True, doc="dot path in the state store")
    value = param.Parameter(default=None, doc="value at `path` at the last refresh (None: absent)")
    seq = param.Integer(
        default=0,
        doc="store version when `value` last changed (set by the "
        "refresher; read-only for everyone else)",
    )


class ReactiveState(param.Parameterized):
    """Bound state paths as params, refreshed in batches at a bounded rate.

    `reactive.rx("pnl.daily")` is a `param.rx` expression; `reactive.parameter("pnl.daily")` is
    the Parameter to hand to `pn.bind` / `param.depends`. Values are private copies of plain
    data: changing one never changes the store. `start()` refreshes on a thread until `stop()`
    (or `with`), or until nothing holds this face or a value bound from it any more.
    """

    rate_hz = param.Number(default=20.0, bounds=(0.1, 1000.0), doc="refreshes per second at most")
    version = param.Integer(default=0, constant=True, doc="store version at the last refresh")
    refreshes = param.Integer(
        default=0, constant=True, doc="refreshes that found the store's version moved"
    )
    updates = param.Integer(default=0, constant=True, doc="path values set so far")

    def __init__(self, store: StateStore, rate_hz: float = 20.0, **params: Any) -> None:
        if not isinstance(store, StateStore):
            raise InvalidInputError(f"ReactiveState needs a StateStore, got {type(store).__name__}")
        try:
            super().__init__(rate_hz=rate_hz, **params)
        except (ValueError, TypeError) as exc:  # param's bound checks (rate_hz=0)
            raise InvalidInputError(f"ReactiveState: {exc}") from None
        self._store = store
        self._bound: dict[str, PathValue] = {}
        # path -> the store's frozen node last copied into its PathValue: a frozen node never
        # changes, so the same node means the same value and nothing is copied or compared.
        self._seen_nodes: dict[str, Any] = {}
        self._seen_version = -1
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    # -- binding --------------------------------------------------------------------------------
    def bind(self, path: str) -> PathValue:
        """The PathValue following `path` (created, and filled with the current value, on first use)."""
        holder = self._bound.get(path)
        if holder is None:
            parse_path(path)  # a malformed path fails here, naming it
            with self._refresh_lock:
                holder = self._bound.get(path)
                if holder is None:
                    version, values = self._store._read_frozen((path,))
                    node = values[path]
                    holder = PathValue(path=path, value=_copy(node), seq=version, name=path)
                    holder._face = self  # a view bound to it keeps its refresher going
                    self._seen_nodes[path] = node
                    self._bound = {**self._bound, path: holder}
        return holder

    def parameter(self, path: str) -> param.Parameter:
        """The watchable `value` Parameter of `path`, for `pn.bind(fn, ...)` / `param.depends`."""
        return self.bind(path).param.value

    def rx(self, path: str) -> param.rx:
        """A reactive expression of the value at `path`."""
        return self.bind(path).param.value.rx()

    def value(self, path: str) -> Any:
        """The value of `path` as of the last refresh."""
        return self.bind(path).value

    def unbind(self, path: str) -> None:
        """Stop refreshing `path` (watchers on its PathValue simply stop firing)."""
        with self._refresh_lock:
            self._bound = {name: h for name, h in self._bound.items() if name != path}
            self._seen_nodes.pop(path, None)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(self._bound)

    # -- refreshing -----------------------------------------------------------------------------
    def refresh_now(self) -> int:
        """Bring every bound path up to the store's current version; return how many changed."""
        with self._refresh_lock:
            if self._store.version == self._seen_version:
                return 0
            bound = self._bound
            version, values = self._store._read_frozen(bound)
            seen = self._seen_nodes
            changed = []
            for path, holder in bound.items():
                node = values[path]
                if node is seen.get(path, _UNSEEN):
                    continue
                seen[path] = node
                new = _copy(node)  # values handed to params are private copies
                old = holder.value
                if new is not old and (type(new) is not type(old) or new != old):
                    changed.append((holder, new))
            with contextlib.ExitStack() as batch:
                # Every changed path first, then one round of watcher calls for the whole set.
                for holder, _ in changed:
                    batch.enter_context(param.parameterized.batch_call_watchers(holder))
                for holder, new in changed:
                    holder.param.update(value=new, seq=version)
            with param.edit_constant(self):
                self.param.update(
                    version=version,
                    refreshes=self.refreshes + 1,
                    updates=self.updates + len(changed),
                )
            self._seen_version = version
            return len(changed)

    def _refresh_logged(self) -> None:
        try:
            self.refresh_now()
        except Exception:
            self.failures += 1
            log.exception("reactive state refresh failed")

    def start(self) -> ReactiveState:
        """Start the refresher thread (idempotent while running)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        if self._stop.is_set():
            raise LifecycleError("this ReactiveState was stopped; build a new one to restart")
        self._thread = threading.Thread(
            target=_refresh_while_held,
            args=(weakref.ref(self), self._stop),
            name="tradelab-reactive-state",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the refresher thread and wait for it (a last refresh is not done)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> ReactiveState:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _refresh_while_held(face_ref: weakref.ref, stop: threading.Event) -> None:
    """The refresher thread: holds its face weakly, so a face nobody holds any more, nor a value
    bound from it (a notebook cell run again, a view thrown away), ends its thread instead of
    refreshing, and keeping a stopped session's store, for the kernel's life."""
    face = face_ref()
    while face is not None:
        period = 1.0 / face.rate_hz
        del face
        if stop.wait(period):
            return
        face = face_ref()
        if face is not None:
            face._refresh_logged()


def _copy(node: Any) -> Any:
    return None if node is MISSING else detached(node)
