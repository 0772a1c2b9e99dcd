"""The copy-on-write tree of plain dicts behind StateStore, with an undo log for atomic batches.

Not thread-safe by itself: the owning StateStore serialises every call under its lock.

Why copy-on-write with ownership: readers (snapshots, frozen roots, watchers, reducers) hold
references into the tree, so a node they have seen must never change. A node the store created
since anyone last looked is 'owned' and is updated in place (the fast path for repeated writes);
any other node is shallow-copied on the way down, once. Ownership is recorded as
`id(node) -> (node, parent)`: a node counts as owned only when reached from the very parent that
created it, so a copied parent never lends in-place rights to children it shares with its original.
Containers cross the tree's boundary only as `detached` copies: in through `adopt`, out to
callers outside the store, so nobody else can ever mutate a node. The one exception on the way
in is a value a `fresh_values` reducer built for the write (views.py): nobody else holds it, so
it is stored as it is; it is not owned, so a later write below it copies it first.
"""

from __future__ import annotations

from typing import Any

from tradelab.errors import StateError
from tradelab.state.paths import DELETE, MISSING, Segments, check_plain, join_path

_ROOT_PARENT = object()
_SCALARS = frozenset((str, int, bool, type(None)))


class _NotPlain(Exception):
    """Raised inside `detached` when a value is not plain data (the caller explains)."""


def detached(value: Any) -> Any:
    """A deep copy of plain data that shares no mutable container with `value`.

    Scalars, and tuples holding only scalars, are immutable and come back as they are. Raises
    `_NotPlain` for anything else than str/int/finite float/bool/None/list/tuple/str-keyed dict.
    """
    kind = type(value)
    if kind is dict:
        out = value.copy()  # C-speed shallow copy; only container members are replaced below
        for key, child in value.items():
            if type(key) is not str:
                raise _NotPlain
            child_kind = type(child)
            if child_kind in _SCALARS:
                continue
            if child_kind is float:
                if child - child != 0.0:  # NaN or infinity
                    raise _NotPlain
                continue
            out[key] = detached(child)
        return out
    if kind in _SCALARS:
        return value
    if kind is float:
        if value - value != 0.0:
            raise _NotPlain
        return value
    if kind is not list and kind is not tuple:
        raise _NotPlain
    items = None
    for index, child in enumerate(value):
        child_kind = type(child)
        if child_kind in _SCALARS:
            continue
        if child_kind is float:
            if child - child != 0.0:
                raise _NotPlain
            continue
        if items is None:
            items = list(value)
        items[index] = detached(child)
    if kind is list:
        return list(value) if items is None else items
    return value if items is None else tuple(items)


def _detached_sequence(value: list | tuple, current: list | tuple) -> list | tuple:
    """`detached(value)`, but members that are members of `current` are kept as they are."""
    n = len(value) - 1
    if 0 < n <= len(current):
        # The common case, a bounded history: the current one's tail, then one new member.
        # Compared with ==, which passes identical members at C speed (`is` member by member
        # cost ~5 us for 200 bars); a member equal to the current one but not it is the same
        # plain data, so the current one (the tree's own) is kept in its place.
        kind = type(value)
        head, tail = value[:n], current[len(current) - n :]
        if type(tail) is not kind:
            tail = kind(tail)
        if head == tail:
            return tail + kind((detached(value[n]),))
    held = {id(m) for m in current}
    items = [m if id(m) in held else detached(m) for m in value]
    return items if type(value) is list else tuple(items)


class CowTree:
    __slots__ = ("root", "_owned", "_undo", "_epoch", "_parents")

    def __init__(self, root: dict[str, Any] | None = None) -> None:
        self.root: dict[str, Any] = {} if root is None else root
        self._owned: dict[int, tuple[dict, object]] = {}
        self._undo: list[tuple[dict | None, str | None, Any]] = []
        # Fast path for repeated writes to the same path: path -> (epoch, owned parent node).
        # `_epoch` moves whenever any node loses ownership or leaves the tree, which is exactly
        # when a cached parent could stop being the live, owned node at that path.
        self._epoch = 0
        self._parents: dict[Segments, tuple[int, dict]] = {}

    # -- reading ---------------------------------------------------------------------------------
    def lookup(self, segments: Segments) -> Any:
        """The value at `segments`, or MISSING; walking through a non-dict leaf is a StateError."""
        node: Any = self.root
        for depth, segment in enumerate(segments):
            if type(node) is not dict:
                raise StateError(
                    f"state path {join_path(segments)!r} goes through "
                    f"{join_path(segments[:depth])!r}, which holds a {type(node).__name__}, not a "
                    "dict"
                )
            node = node.get(segment, MISSING)
            if node is MISSING:
                return MISSING
        return node

    def hand_out(self, value: Any) -> Any:
        """Mark a node as seen by someone outside, so it is never changed in place again."""
        if type(value) is dict and self._owned.pop(id(value), None) is not None:
            self._epoch += 1
        return value

    def freeze(self) -> dict[str, Any]:
        """Make the whole current tree immutable (O(1)) and return its root."""
        if self._owned:
            self._owned = {}
            self._epoch += 1
        return self.root

    def adopt(self, value: Any, path: Any, segments: Segments | None = None) -> Any:
        """A private deep copy of the container a reducer wants to store at `path`, checked to
        be plain data (a StateError names the offending element).

        Why a copy: the container may come from an event payload, and the same Event is
        published on the bus after the store applied it, where a subscriber may mutate it; or
        it may hold nodes the reducer read through the view, which would then sit at two
        places. The tree must be the only holder of every container in it.
        One exception, given `segments`: a list or tuple replacing one at the same path keeps
        the very members it shares with it (a bounded history: the last N bars plus one). They
        are already the tree's alone, and no path reaches into a sequence, so nothing ever
        changes them in place; copying them made every bar cost a copy of the whole history.
        """
        try:
            kind = type(value)
            if segments is not None and (kind is tuple or kind is list):
                current = self.lookup(segments)
                if type(current) in (tuple, list) and current:
                    return _detached_sequence(value, current)
            return detached(value)
        except _NotPlain:
            check_plain(value, f"path {path!r}")  # raises, naming the offending element
            raise  # pragma: no cover - check_plain and detached agree on what is plain

    # -- writing ---------------------------------------------------------------------------------
    def write(self, segments: Segments, value: Any) -> Any:
        """Set (or, for DELETE, remove) the value at `segments`; return the old value or MISSING.

        Every container assignment is logged so `rollback` can restore the exact previous tree.
        """
        if value is not DELETE:
            hit = self._parents.get(segments)
            if hit is not None and hit[0] == self._epoch:
                node = hit[1]
                segment = segments[-1]
                old = node.get(segment, MISSING)
                self._undo.append((node, segment, old))
                node[segment] = value
                if type(old) is dict and self._owned.pop(id(old), None) is not None:
                    self._epoch += 1  # `old` and everything below it leave the tree
                return old
        elif self.lookup(segments) is MISSING:
            return MISSING  # nothing to remove; do not create empty parents
        owned = self._owned
        undo = self._undo
        node = self.root
        entry = owned.get(id(node))
        if entry is None or entry[0] is not node:
            copy = node.copy()
            undo.append((None, None, node))
            self.root = copy
            owned[id(copy)] = (copy, _ROOT_PARENT)
            node = copy
        last = len(segments) - 1
        for depth in range(last):
            segment = segments[depth]
            child = node.get(segment, MISSING)
            if child is MISSING:
                fresh: dict[str, Any] = {}
            elif type(child) is dict:
                entry = owned.get(id(child))
                if entry is not None and entry[0] is child and entry[1] is node:
                    node = child
                    continue
                if entry is not None:
                    # It leaves the tree; a cached parent inside it can only exist if it had
                    # an entry, so only then must the parent cache be invalidated.
                    del owned[id(child)]
                    self._epoch += 1
                fresh = child.copy()
            else:
                raise StateError(
                    f"cannot write state path {join_path(segments)!r}: "
                    f"{join_path(segments[: depth + 1])!r} holds a {type(child).__name__}, not a "
                    "dict"
                )
            undo.append((node, segment, child))
            node[segment] = fresh
            owned[id(fresh)] = (fresh, node)
            node = fresh
        segment = segments[last]
        old = node.get(segment, MISSING)
        undo.append((node, segment, old))
        if value is DELETE:
            del node[segment]
        else:
            node[segment] = value
        if type(old) is dict and owned.pop(id(old), None) is not None:
            self._epoch += 1  # `old` and everything below it leave the tree
        if len(self._parents) > 65_536:
            self._parents.clear()
        self._parents[segments] = (self._epoch, node)
        return old

    def commit(self) -> None:
        """Forget the undo log: the writes since the last commit/rollback are final."""
        self._undo.clear()

    def rollback(self) -> None:
        """Restore the tree exactly as it was at the last commit."""
        undo = self._undo
        for parent, segment, old in reversed(undo):
            if parent is None:
                self.root = old
            elif old is MISSING:
                parent.pop(segment, None)
            else:
                parent[segment] = old
        undo.clear()
        # Nodes created by the failed writes are garbage now; start a clean ownership generation.
        self._owned = {}
        self._epoch += 1
