"""Path watchers of the StateStore: glob patterns, change capture during a batch, isolated delivery.

`capture`/`collect`/`discard` run on the writer thread under the store's lock; `deliver` runs on
the writer thread after the lock is released. `add`/`remove` may be called from any thread (the
watch list is replaced, never mutated, so a delivery in progress sees a consistent list).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from tradelab.errors import InvalidInputError, interrupts_the_user
from tradelab.state.paths import (
    DELETE,
    MISSING,
    Segments,
    expand_pattern,
    join_path,
    parse_pattern,
    prefix_matches,
)
from tradelab.state.tree import CowTree, detached

log = logging.getLogger(__name__)

WatchCallback = Callable[[str, Any, Any, int], Any]
_ids = itertools.count(1)


class Watch:
    """Handle returned by `StateStore.watch`; `unwatch()` stops further calls (idempotent)."""

    __slots__ = ("pattern", "segments", "callback", "id", "_owner")

    def __init__(self, pattern: str, callback: WatchCallback, owner: WatcherSet) -> None:
        self.pattern = pattern
        self.segments: Segments = parse_pattern(pattern)
        self.callback = callback
        self.id = next(_ids)
        self._owner = owner

    @property
    def active(self) -> bool:
        return self in self._owner.watches

    def unwatch(self) -> None:
        self._owner.remove(self)

    def __repr__(self) -> str:
        return f"Watch({self.pattern!r}, active={self.active})"


class WatcherSet:
    def __init__(self) -> None:
        self.watches: tuple[Watch, ...] = ()
        self.failures = 0
        self.delivered = 0
        self._edit_lock = threading.Lock()
        # watch id -> {concrete path: value before the batch}, in order of first touch
        self._pending: dict[int, dict[Segments, Any]] = {}

    def add(self, pattern: str, callback: WatchCallback) -> Watch:
        if not callable(callback):
            raise InvalidInputError(
                f"watch callback for {pattern!r} must be callable, got {type(callback).__name__}"
            )
        watch = Watch(pattern, callback, self)
        with self._edit_lock:
            self.watches = (*self.watches, watch)
        return watch

    def remove(self, watch: Watch) -> None:
        with self._edit_lock:
            self.watches = tuple(w for w in self.watches if w is not watch)

    def capture(self, tree: CowTree, segments: Segments, value: Any) -> None:
        """Before `segments` is written: remember the old value of every watched path it affects."""
        for watch in self.watches:
            pattern = watch.segments
            if not prefix_matches(pattern, segments):
                continue
            pending = self._pending.setdefault(watch.id, {})
            depth = len(pattern)
            if len(segments) >= depth:
                concrete = segments[:depth]
                if concrete not in pending:
                    pending[concrete] = tree.hand_out(tree.lookup(concrete))
                continue
            # The write replaces an ancestor of the watched paths: every match below it, in the
            # old value or in the new one, may change.
            rest = pattern[len(segments) :]
            old_subtree = tree.hand_out(tree.lookup(segments))
            for concrete, old in expand_pattern(old_subtree, rest, segments):
                pending.setdefault(concrete, old)
            if value is not DELETE:
                for concrete, _new in expand_pattern(value, rest, segments):
                    pending.setdefault(concrete, MISSING)

    def discard(self) -> None:
        self._pending.clear()

    def collect(self, tree: CowTree) -> list[tuple[Watch, str, Any, Any]]:
        """After a committed batch: (watch, path, new, old) for every watched path that changed."""
        if not self._pending:
            return []
        by_id = {watch.id: watch for watch in self.watches}
        out = []
        for watch_id, pending in self._pending.items():
            watch = by_id.get(watch_id)
            if watch is None:
                continue
            for concrete, old in pending.items():
                try:
                    new = tree.hand_out(tree.lookup(concrete))
                except Exception:  # the path now runs through a leaf: it no longer exists
                    new = MISSING
                if new is old or (new is not MISSING and old is not MISSING and new == old):
                    continue
                out.append((watch, join_path(concrete), new, old))
        self._pending.clear()
        return out

    def deliver(self, notifications: list[tuple[Watch, str, Any, Any]], seq: int) -> None:
        """Call each watcher; one that raises is logged and counted, and the rest still run.

        Each gets private copies of the values: a watcher mutating them cannot reach the store.
        """
        for watch, path, new, old in notifications:
            if not watch.active:
                continue
            try:
                watch.callback(
                    path,
                    None if new is MISSING else detached(new),
                    None if old is MISSING else detached(old),
                    seq,
                )
                self.delivered += 1
            except BaseException as exc:
                # SystemExit / KeyboardInterrupt isolated as any failure (on the engine's kernel
                # it would leave the event applied but never journaled), but on the main thread
                # it is the user interrupting, and goes on up (as a bus handler's).
                if interrupts_the_user(exc):
                    raise
                self.failures += 1
                log.exception("state watcher %r failed for %s at seq %d", watch.pattern, path, seq)
