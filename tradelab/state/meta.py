"""Per-path change metadata (seq, event time, source topic) for staleness and provenance.

Kept as a tree parallel to the state: each node holds the change that set exactly this path
('direct') and the newest change at or below it ('newest'); setting a path drops its children's
records because the whole value was replaced. A write is noted in a dict (its path's last set);
the next read walks the noted sets in, one walk of each path's depth, then reads in one walk.
Not thread-safe by itself: the StateStore serialises access under its lock.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from tradelab.errors import InvalidInputError
from tradelab.state.paths import Segments

# A node is [direct, newest, children]; direct/newest are (seq, ts_ns, topic) tuples or None.
_DIRECT, _NEWEST, _CHILDREN = 0, 1, 2


class PathMeta(NamedTuple):
    """The newest change that affected a path: its event seq, event time (UTC ns) and topic."""

    seq: int
    ts: int
    source: str


class MetaTree:
    __slots__ = ("root", "_epoch", "_chains", "_pending")

    def __init__(self, root: list | None = None) -> None:
        self.root: list = [None, None, None] if root is None else root
        # Fast path for repeated changes to one path: path -> (epoch, nodes from root to it).
        # `_epoch` moves whenever a node leaves the tree, the only way a cached chain goes bad.
        self._epoch = 0
        self._chains: dict[Segments, tuple[int, list[list]]] = {}
        # Sets not yet walked into the tree: path -> change, in the order of their last set.
        self._pending: dict[Segments, tuple[int, int, str]] = {}

    def record(self, segments: Segments, change: tuple[int, int, str], deleted: bool) -> None:
        if not deleted:
            hit = self._chains.get(segments)
            if hit is not None and hit[0] == self._epoch:
                chain = hit[1]
                for node in chain:
                    node[_NEWEST] = change
                node[_DIRECT] = change
                if node[_CHILDREN] is not None:
                    node[_CHILDREN] = None
                    self._epoch += 1
                return
        self._record_slow(segments, change, deleted)

    def record_run(self, touched: list) -> None:
        """Take a run of writes `(segments, change, deleted)`; only the last set of each path
        is ever walked into the tree, when the tree is next read (`lookup`, `to_plain`).

        Between two deletes, replaying just the last set of every path, in the order of those
        last sets, leaves this tree exactly as replaying every set would: a node's newest change,
        its own change and whether a parent's set dropped it depend only on which last set came
        after which. So sets wait in `_pending` (a path's newer set moves it to the end) and a
        delete first settles them: a mark rewriting the same few paths event after event costs
        a dict update each, not a walk of the path.
        """
        pending = self._pending
        pop = pending.pop
        for segments, change, deleted in touched:
            if deleted:
                self._settle()
                self.record(segments, change, True)
            else:
                pop(segments, None)  # to the end: the order of last sets is what counts
                pending[segments] = change
        if len(pending) > 65_536:
            self._settle()

    def _settle(self) -> None:
        pending = self._pending
        if pending:
            record = self.record
            for segments, change in pending.items():
                record(segments, change, False)
            pending.clear()

    def _record_slow(self, segments: Segments, change: tuple[int, int, str], deleted: bool) -> None:
        node = self.root
        chain = [node]
        node[_NEWEST] = change
        last = len(segments) - 1
        for depth, segment in enumerate(segments):
            children = node[_CHILDREN]
            if children is None:
                if deleted:
                    return
                children = node[_CHILDREN] = {}
            if deleted and depth == last:
                if children.pop(segment, None) is not None:
                    self._epoch += 1
                return
            child = children.get(segment)
            if child is None:
                child = children[segment] = [None, change, None]
            else:
                child[_NEWEST] = change
            node = child
            chain.append(node)
        node[_DIRECT] = change
        if node[_CHILDREN] is not None:
            node[_CHILDREN] = None
            self._epoch += 1
        if len(self._chains) > 65_536:
            self._chains.clear()
        self._chains[segments] = (self._epoch, chain)

    def lookup(self, segments: Segments) -> PathMeta | None:
        """The newest change at, below, or (by replacing the whole value) above `segments`."""
        self._settle()
        node = self.root
        inherited = node[_DIRECT]
        for segment in segments:
            children = node[_CHILDREN]
            node = None if children is None else children.get(segment)
            if node is None:
                return None if inherited is None else PathMeta(*inherited)
            if node[_DIRECT] is not None:
                inherited = node[_DIRECT]
        newest = node[_NEWEST]
        return None if newest is None else PathMeta(*newest)

    def to_plain(self) -> list:
        self._settle()
        return _plain(self.root)

    @classmethod
    def from_plain(cls, data: Any) -> MetaTree:
        return cls(_unplain(data))


def load_meta(plain: Any, seq: int) -> MetaTree:
    """The MetaTree of a snapshot taken at `seq`, or an InvalidInputError naming the flaw."""
    try:
        return MetaTree.from_plain(plain)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"snapshot at seq {seq} has malformed path metadata: {exc}"
        ) from None


def _plain(node: list) -> list:
    # Children in name order: the store records a batch's paths in the order of their last
    # change, so insertion order depends on batch boundaries while the metadata does not.
    children = node[_CHILDREN]
    return [
        None if node[_DIRECT] is None else list(node[_DIRECT]),
        None if node[_NEWEST] is None else list(node[_NEWEST]),
        None if children is None else {name: _plain(children[name]) for name in sorted(children)},
    ]


def _unplain(node: Any) -> list:
    direct, newest, children = node
    return [
        None if direct is None else tuple(direct),
        None if newest is None else tuple(newest),
        None if children is None else {name: _unplain(child) for name, child in children.items()},
    ]
