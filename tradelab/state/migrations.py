"""Schema migrations: upcast old snapshots and old events one version step at a time.

A `MigrationRegistry` is built once (at engine construction) and then only read, so any thread
may use it. Each upcaster turns version N into N+1; loading v1 data into v3 code runs v1->v2->v3.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from tradelab.errors import InvalidInputError, SchemaVersionError
from tradelab.events import Event, TopicRegistry
from tradelab.state.snapshot import StateSnapshot, plain_copy

StateUpcaster = Callable[[dict[str, Any]], dict[str, Any]]
PayloadUpcaster = Callable[[dict[str, Any]], dict[str, Any]]


class MigrationRegistry:
    """Upcasters for snapshot state (by schema version) and event payloads (by topic + version).

    `snapshot_version` is the state schema this code writes. Event targets come from `topics`
    (each TopicSpec's schema_version) when given, else from the upcasters registered.
    """

    def __init__(self, *, snapshot_version: int = 1, topics: TopicRegistry | None = None) -> None:
        if type(snapshot_version) is not int or snapshot_version < 1:
            raise InvalidInputError(
                f"snapshot_version must be an int >= 1, got {snapshot_version!r}"
            )
        self.snapshot_version = snapshot_version
        self._topics = topics
        self._snapshot_steps: dict[int, StateUpcaster] = {}
        self._event_steps: dict[str, dict[int, PayloadUpcaster]] = {}

    def register_snapshot_upcaster(self, from_version: int, fn: StateUpcaster) -> None:
        """`fn(state_at_from_version) -> state_at_from_version_plus_1` (may build a new dict)."""
        _check_step(from_version, self._snapshot_steps, "snapshots")
        self._snapshot_steps[from_version] = fn

    def register_event_upcaster(self, topic: str, from_version: int, fn: PayloadUpcaster) -> None:
        """`fn(payload_at_from_version) -> payload_at_from_version_plus_1` for one topic."""
        steps = self._event_steps.setdefault(topic, {})
        _check_step(from_version, steps, f"topic {topic!r}")
        steps[from_version] = fn

    # -- snapshots --------------------------------------------------------------------------------
    def upcast_snapshot(self, snapshot: StateSnapshot, target: int | None = None) -> StateSnapshot:
        """The snapshot at `target` (default `snapshot_version`); the input is left untouched."""
        target = self.snapshot_version if target is None else target
        version = snapshot.schema_version
        if version > target:
            raise SchemaVersionError(
                f"snapshot at seq {snapshot.seq} has schema version {version}, newer than this "
                f"code's version {target}; upgrade tradelab to read it"
            )
        if version == target:
            return snapshot
        state = _run_chain(
            plain_copy(snapshot.state),  # upcasters may mutate their argument safely
            version,
            target,
            self._snapshot_steps,
            missing=lambda v: (
                f"no snapshot upcaster from schema version {v} to {v + 1} (snapshot at seq "
                f"{snapshot.seq} is v{snapshot.schema_version}, code is v{target})"
            ),
            returned=lambda v, kind: (
                f"snapshot upcaster v{v}->v{v + 1} returned {kind}, expected the new state dict"
            ),
        )
        return StateSnapshot(
            seq=snapshot.seq,
            schema_version=target,
            state=state,
            meta=snapshot.meta,
            fold=snapshot.fold,
        )

    # -- events -----------------------------------------------------------------------------------
    def event_version(self, topic: str) -> int:
        """The payload schema version this code expects for `topic`."""
        if self._topics is not None and topic in self._topics:
            return self._topics.get(topic).schema_version
        steps = self._event_steps.get(topic)
        return max(steps) + 1 if steps else 1

    def upcast_event(self, event: Event, target: int | None = None) -> Event:
        """The event with its payload upcast to `target` (default `event_version(topic)`)."""
        steps = self._event_steps.get(event.topic)
        if target is None:
            if steps is None and self._topics is None:
                return event  # fast path: nothing known about this topic
            target = self.event_version(event.topic)
        version = event.schema_version
        if version == target:
            return event
        if version > target:
            raise SchemaVersionError(
                f"event seq {event.seq} topic {event.topic!r} has schema version {version}, "
                f"newer than this code's version {target}; upgrade tradelab to read it"
            )
        payload = _run_chain(
            plain_copy(event.payload),
            version,
            target,
            steps or {},
            missing=lambda v: (
                f"no upcaster for topic {event.topic!r} from schema version {v} to {v + 1} "
                f"(event seq {event.seq} is v{event.schema_version}, code is v{target})"
            ),
            returned=lambda v, kind: (
                f"upcaster for topic {event.topic!r} v{v}->v{v + 1} returned {kind}, expected "
                "the new payload dict"
            ),
        )
        return msgspec.structs.replace(event, payload=payload, schema_version=target)


def _run_chain(
    value: dict[str, Any],
    version: int,
    target: int,
    steps: Mapping[int, Callable[[dict[str, Any]], Any]],
    *,
    missing: Callable[[int], str],
    returned: Callable[[int, str], str],
) -> dict[str, Any]:
    """Apply the upcasters `version` -> `target` one step at a time; a missing step or a step
    that does not return a dict is a SchemaVersionError with the caller's wording."""
    while version < target:
        step = steps.get(version)
        if step is None:
            raise SchemaVersionError(missing(version))
        value = step(value)
        if not isinstance(value, dict):
            raise SchemaVersionError(returned(version, type(value).__name__))
        version += 1
    return value


def _check_step(from_version: int, steps: dict[int, Any], what: str) -> None:
    if type(from_version) is not int or from_version < 1:
        raise InvalidInputError(
            f"from_version for {what} must be an int >= 1, got {from_version!r}"
        )
    if from_version in steps:
        raise InvalidInputError(
            f"an upcaster for {what} from version {from_version} is already registered"
        )
