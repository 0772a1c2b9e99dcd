"""Point-in-time copies of the state tree, their stored bytes, and the canonical state hash.

A `StateSnapshot` owns its own plain dicts (independent of later changes to the store); it is
immutable by convention and safe to hand to any thread. Copies and stored bytes keep every dict's
insertion order, so a restored store iterates exactly as the live one did; only the hash uses
the canonical form (sorted keys, shortest-repr floats): equal state, equal sha256, any process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import msgspec

from tradelab.errors import InvalidInputError, StateError

SNAPSHOT_FORMAT = "tradelab.state-snapshot/1"

_canonical = msgspec.json.Encoder(order="sorted")
# Insertion order: dicts come back iterating as they did when written. Reducers may depend on
# that order (e.g. summing floats over positions), so copies and snapshots must not sort.
_in_order = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def canonical_json(value: Any) -> bytes:
    """Sorted-key JSON bytes of plain data: the one serialization hashes are taken over."""
    return _encode(_canonical, value)


def ordered_json(value: Any) -> bytes:
    """JSON bytes of plain data with every dict in insertion order (what snapshots store)."""
    return _encode(_in_order, value)


def _encode(encoder: msgspec.json.Encoder, value: Any) -> bytes:
    try:
        return encoder.encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise StateError(f"state is not plain JSON data: {exc}") from None


def state_sha256(state: Any) -> str:
    """sha256 hex of the canonical JSON of `state` (equal state => equal hash, any process)."""
    return hashlib.sha256(canonical_json(state)).hexdigest()


def plain_copy(state: Any) -> Any:
    """A deep copy made of fresh dicts/lists (tuples become lists, exactly as after a JSON trip);
    every dict keeps its insertion order."""
    return _decoder.decode(ordered_json(state))


@dataclass(frozen=True, slots=True, eq=False)
class StateSnapshot:
    """The whole state after event `seq`, written by schema `schema_version`.

    `state` is plain nested dicts; `meta` is the per-path change record (see tradelab.state.meta)
    in plain lists, or None when unknown. Treat both as read-only.
    """

    seq: int
    schema_version: int
    state: dict[str, Any]
    meta: list | None = None
    # The version of the reducers that folded it (StateStore.fold_version): a snapshot folded
    # by other reducers is not this code's fold of the same events, so recovery passes it by.
    fold: int = 1
    _hash: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if type(self.seq) is not int or self.seq < 0:
            raise InvalidInputError(f"snapshot seq must be an int >= 0, got {self.seq!r}")
        if type(self.schema_version) is not int or self.schema_version < 1:
            raise InvalidInputError(
                f"snapshot schema_version must be an int >= 1, got {self.schema_version!r}"
            )
        if not isinstance(self.state, dict):
            raise InvalidInputError(
                f"snapshot state must be a dict, got {type(self.state).__name__}"
            )

    def sha256(self) -> str:
        """Canonical hash of `state` alone; equals `StateStore.state_hash()` at this seq."""
        if not self._hash:
            self._hash.append(state_sha256(self.state))
        return self._hash[0]

    def to_bytes(self) -> bytes:
        """JSON of the whole snapshot (format tag, seq, schema_version, state, meta), every dict
        in insertion order so `from_bytes` restores the exact iteration order of the live state.

        These bytes are not canonical (equal state built in another order gives other bytes): a
        hash of them is an integrity check of what was stored; compare states with `sha256()`.
        """
        return ordered_json(
            {
                "format": SNAPSHOT_FORMAT,
                "seq": self.seq,
                "schema_version": self.schema_version,
                "fold": self.fold,
                "state": self.state,
                "meta": self.meta,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes | str) -> StateSnapshot:
        """Parse bytes written by `to_bytes` (also older, sorted-key ones); anything else is an
        InvalidInputError. Dicts come back in the order of the bytes."""
        try:
            body = _decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise InvalidInputError(f"cannot decode state snapshot: {exc}") from None
        if not isinstance(body, dict) or body.get("format") != SNAPSHOT_FORMAT:
            found = body.get("format") if isinstance(body, dict) else type(body).__name__
            raise InvalidInputError(
                f"not a state snapshot: format is {found!r}, expected {SNAPSHOT_FORMAT!r}"
            )
        missing = [name for name in ("seq", "schema_version", "state") if name not in body]
        if missing:
            raise InvalidInputError(f"state snapshot lacks field(s) {', '.join(missing)}")
        return cls(
            seq=body["seq"],
            schema_version=body["schema_version"],
            state=body["state"],
            meta=body.get("meta"),
            fold=body.get("fold", 1),  # written before folds were numbered: the first
        )
