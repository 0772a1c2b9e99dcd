"""Folding events into a StateStore: the reducer loop, all-or-nothing and one-by-one units, and
the path metadata of what they wrote.

A mixin of `StateStore` (its state: `_lock`, `_tree`, `_view`, `_meta`, `_version`, `_plans`,
`_watchers`, `migrations`, `_writes_refused` (why a read-only store refuses writes), the counters (`apply_seconds`: time spent applying, reducers
included) and the read-request handshake).
Thread model: only the store's ONE writer thread calls these; watchers are called on it after
the change set is complete and the lock is released.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from time import perf_counter
from typing import Any

from tradelab.errors import LifecycleError, SequenceError, StateError, TradelabError
from tradelab.events import Event
from tradelab.state.paths import DELETE, PATH_CACHE, check_plain, parse_path
from tradelab.state.tree import CowTree
from tradelab.state.watchers import WatcherSet

_SCALARS = frozenset((str, int, bool, type(None)))


class ApplyMixin:
    @property
    def version(self) -> int:
        """Seq of the last applied event (0 before any)."""
        return self._version

    def apply(self, event: Event) -> None:
        """Apply one event whose seq is `version + 1`; on any failure the store is unchanged."""
        self._check_writable()
        self._apply_batch((event,))

    def apply_batch(self, events: Iterable[Event]) -> None:
        """Apply consecutive events as one atomic change set (watchers see it once)."""
        self._check_writable()
        self._apply_batch(events)

    def _apply_batch(self, events: Iterable[Event]) -> None:
        batch = tuple(events)
        if batch:
            notifications, _, _ = self._apply(batch, each=False, upcast=True)
            if notifications:
                self._watchers.deliver(notifications, self._version)

    def apply_each(
        self, events: Sequence[Event], *, upcast: bool = True
    ) -> tuple[int, TradelabError | None]:
        """Apply consecutive events in order, each atomically on its own; stop at the first
        that fails. Returns (how many were applied, the error of the one that failed or None).

        The failing event and those after it leave no trace; watchers see the applied ones as
        one change set. `upcast=False` skips the migrations: only for events stamped from the
        very topic registry the migrations target (the engine's own live events).
        """
        self._check_writable()
        return self._apply_each(events, upcast)

    def _apply_each(
        self, events: Sequence[Event], upcast: bool = True
    ) -> tuple[int, TradelabError | None]:
        if not events:
            return 0, None
        notifications, applied, error = self._apply(events, each=True, upcast=upcast)
        if notifications:
            self._watchers.deliver(notifications, self._version)
        return applied, error

    def _check_writable(self) -> None:
        if self._writes_refused:
            raise LifecycleError(self._writes_refused)

    def _apply(self, events: Sequence[Event], each: bool, upcast: bool):
        started = perf_counter()
        try:
            with self._lock:
                result = self._apply_locked(events, each, upcast)
                if self._read_request:
                    self._read_request = False
                    self._published = (self._version, self._tree.freeze())
                    self._read_ready.set()
            return result
        finally:  # a metric: where an engine's kernel time goes (benchmarks/backtest.py)
            self.apply_seconds += perf_counter() - started

    def _apply_locked(self, events: Sequence[Event], each: bool, upcast: bool):
        """(notifications, events applied, error). Not `each`: all or nothing, errors raise.
        `each`: every event is its own unit; the first failure is rolled back and returned."""
        tree, view, write, adopt = self._tree, self._view, self._tree.write, self._tree.adopt
        cached_path = PATH_CACHE.get
        watchers = self._watchers if self._watchers.watches else None
        capture = watchers.capture if watchers is not None else None
        upcast_event = self.migrations.upcast_event if upcast and self.migrations else None
        plans_of = self._plans.get
        # (segments, change, deleted) of every write, recorded in the path metadata at the end
        touched: list[tuple[tuple[str, ...], tuple[int, int, str], bool]] = []
        append = touched.append
        version = self._version
        applied = 0
        error: TradelabError | None = None
        for event in events:
            mark = len(touched)
            try:
                seq = event.seq
                if seq != version + 1:
                    raise SequenceError(_sequence_message(event, version))
                if upcast_event is not None:
                    event = upcast_event(event)
                plans = plans_of(event.topic)
                if plans:
                    change = (seq, event.ts, event.topic)
                    # fresh: its containers were built for this write, nothing to copy in
                    for reducer, fresh in plans:
                        try:
                            for path, value in reducer(view, event):
                                segments = cached_path(path) if type(path) is str else None
                                if segments is None:
                                    segments = parse_path(path)
                                kind = type(value)
                                if kind is float:
                                    if value - value != 0.0:  # NaN or infinity
                                        check_plain(value, f"path {path!r}")
                                elif kind not in _SCALARS and value is not DELETE and not fresh:
                                    value = adopt(value, path, segments)
                                if capture is not None:
                                    capture(tree, segments, value)
                                write(segments, value)
                                append((segments, change, value is DELETE))
                        except Exception as exc:
                            self._reducer_failures += 1
                            raise StateError(
                                f"reducer {_name(reducer)} for topic {event.topic!r} failed at "
                                f"seq {seq}: {_reason(exc, event)}; the store is unchanged (version "
                                f"{version if each else self._version})"
                            ) from exc
            except TradelabError as exc:
                if not each:
                    _undo_all(tree, watchers)
                    raise
                # Undo this event only (the ones before it are committed). Its captured watch
                # paths now compare equal to their old values, so they notify nothing.
                tree.rollback()
                del touched[mark:]
                error = exc
                break
            except BaseException:
                if not each:
                    _undo_all(tree, watchers)
                    raise
                tree.rollback()
                del touched[mark:]
                self._finish(touched, version, applied)
                if watchers is not None:
                    watchers.discard()
                raise
            if each and len(events) > 1:  # one event: _finish commits it
                tree.commit()
            version = seq
            applied += 1
        self._finish(touched, version, applied)
        return (watchers.collect(tree) if watchers is not None else []), applied, error

    def _finish(self, touched: list, version: int, applied: int) -> None:
        """Make the applied writes final: path metadata, version, counters."""
        self._tree.commit()
        if touched:
            self._meta.record_run(touched)
        self._version = version
        self._events_applied += applied
        self._batches += 1


def _undo_all(tree: CowTree, watchers: WatcherSet | None) -> None:
    tree.rollback()
    if watchers is not None:
        watchers.discard()


def _sequence_message(event: Event, version: int) -> str:
    if event.seq <= version:
        return (
            f"event seq {event.seq} (topic {event.topic!r}) was already applied; the store is "
            f"at version {version} and expects seq {version + 1}"
        )
    return (
        f"event seq {event.seq} (topic {event.topic!r}) leaves a gap; the store is at version "
        f"{version} and expects seq {version + 1}"
    )


def _reason(exc: Exception, event: Event) -> str:
    """Why a reducer failed; a KeyError of a field the payload lacks names it (a bare
    "'position_id'" does not say a field is missing)."""
    payload = event.payload
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(payload, Mapping):
        field = exc.args[0]
        if isinstance(field, str) and field not in payload:
            given = ", ".join(sorted(str(k) for k in payload)) or "none"
            return f"its payload has no field {field!r}, which the reducer needs (given: {given})"
    return str(exc)


def _name(reducer: Any) -> str:
    return getattr(reducer, "__qualname__", None) or repr(reducer)
