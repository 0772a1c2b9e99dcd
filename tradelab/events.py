"""The event record every part of tradelab speaks, the registry of topics, and serialization.

`Event` is immutable (a frozen msgspec Struct); JSON bytes round-trip exactly. Construction is
cheap and unchecked so the bus hot path pays nothing; `TopicRegistry.make_event` /
`validate_payload` are the checked entry points used wherever input comes from outside.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from tradelab.errors import InvalidInputError, UnknownTopicError
from tradelab.payloads import (  # noqa: F401 (re-exported: the payload API lives beside Event)
    MAX_PAYLOAD_DEPTH,
    encode_submitted,
    validate_payload,
)

TOPIC_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class Event(msgspec.Struct, frozen=True):
    """One change of state. `seq` is assigned by the engine (0 = not journaled, e.g. transient).

    `ts` is UTC nanoseconds since the epoch; `payload` is a JSON-serializable mapping that must not
    be mutated after the event is built.
    """

    seq: int
    ts: int
    topic: str
    key: str
    payload: dict[str, Any]
    critical: bool = False
    schema_version: int = 1

    @property
    def time(self) -> datetime:
        """`ts` as an aware UTC datetime (microsecond precision; `ts` keeps the nanoseconds)."""
        return datetime.fromtimestamp(self.ts / 1e9, tz=UTC)

    def with_seq(self, seq: int, ts: int | None = None) -> Event:
        """A copy stamped with the engine's seq (and ts, when given)."""
        return msgspec.structs.replace(self, seq=seq, ts=self.ts if ts is None else ts)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    """JSON bytes of an event; `decode_event(encode_event(e)) == e` and re-encoding is identical."""
    return _encoder.encode(event)


def decode_event(data: bytes | str) -> Event:
    """Parse JSON bytes written by `encode_event`; a malformed record is an `InvalidInputError`."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidInputError(f"cannot decode event: {exc}") from None


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """JSON bytes of a payload alone (the journal stores payloads in their own column)."""
    return _encoder.encode(payload)


def now_ns() -> int:
    """Wall-clock UTC time in nanoseconds: the `ts` of a new event."""
    return time.time_ns()


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """What the system knows of one topic.

    critical: the submitter blocks until the event is durable.
    transient: published on the bus only; never journaled, never applied to the store.
    """

    name: str
    critical: bool = False
    transient: bool = False
    schema_version: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        if not TOPIC_PATTERN.match(self.name):
            raise InvalidInputError(
                f"topic {self.name!r} is not dotted lower-case (expected e.g. 'trade.executed')"
            )
        if self.critical and self.transient:
            raise InvalidInputError(f"topic {self.name!r} cannot be both critical and transient")
        if self.schema_version < 1:
            raise InvalidInputError(
                f"topic {self.name!r} has schema_version {self.schema_version}; expected >= 1"
            )


# The topics tradelab itself uses. Each engine builds its own TopicRegistry from these.
DEFAULT_TOPICS: tuple[TopicSpec, ...] = (
    # trading book
    TopicSpec("trade.executed", critical=True, description="a fill changed a position"),
    TopicSpec("trade.logged", description="a trade was written to the trade log"),
    TopicSpec("trade.exit_updated", description="stop/target of an open trade changed"),
    TopicSpec("position.updated", description="a position's qty, average or P&L changed"),
    TopicSpec("position.closed", critical=True, description="a position went flat"),
    TopicSpec("pnl.session_reset", critical=True, description="daily P&L reset at session open"),
    TopicSpec(
        "trading.history_trimmed",
        description="a session opened: finished orders and fills of older sessions left the "
        "live book (the journal keeps them)",
    ),
    # orders (broker lifecycle)
    TopicSpec("order.submitted", description="an order was sent to the broker"),
    TopicSpec("order.accepted", description="the broker accepted an order"),
    TopicSpec("order.partially_filled", description="part of an order filled"),
    TopicSpec("order.filled", description="an order filled completely"),
    TopicSpec("order.cancelled", description="an order was cancelled"),
    TopicSpec("order.rejected", description="an order was refused, with the reason"),
    TopicSpec(
        "order.denied", description="a pre-trade risk check refused an order; it was not sent"
    ),
    TopicSpec("broker.disconnected", description="the broker connection dropped"),
    TopicSpec("broker.reconnected", description="the broker connection came back"),
    TopicSpec(
        "broker.degraded",
        description="broker calls keep failing after retries; the session runs degraded",
    ),
    TopicSpec("broker.recovered", description="broker calls succeed again after a degradation"),
    # market data
    TopicSpec("market.tick", transient=True, description="a raw quote; never journaled"),
    TopicSpec("market.bar", description="a closed OHLCV bar"),
    TopicSpec("market.session_opened", description="the exchange session opened"),
    TopicSpec("market.session_closed", description="the exchange session closed"),
    TopicSpec("mark.updated", description="a coalesced mark price for unrealized P&L"),
    # strategies
    TopicSpec("signal.detected", description="a strategy saw an entry or exit signal"),
    TopicSpec("signal.cleared", description="an active signal expired or was consumed"),
    TopicSpec("runner.started", description="the strategy runner started"),
    TopicSpec("runner.stopped", description="the strategy runner stopped"),
    TopicSpec("runner.state_changed", description="the runner's lifecycle state changed"),
    TopicSpec("runner.params_changed", description="a strategy's parameters were changed"),
    TopicSpec("operator.command", description="an operator's console command and its outcome"),
    # risk
    TopicSpec("risk.daily_loss_breached", critical=True, description="daily loss limit hit"),
    TopicSpec("risk.state_changed", description="risk limits or utilisation changed"),
    TopicSpec("risk.halted", critical=True, description="trading halted"),
    TopicSpec("risk.resumed", critical=True, description="trading resumed"),
    # reconciliation
    TopicSpec("reconciliation.started", description="a broker reconciliation run began"),
    TopicSpec("reconciliation.mismatch", description="the book and the broker disagree"),
    TopicSpec("reconciliation.fixed", critical=True, description="a mismatch was corrected"),
    TopicSpec("reconciliation.completed", description="a reconciliation run ended"),
    # engine, journal, bus
    TopicSpec("engine.state_changed", description="the engine's lifecycle state changed"),
    TopicSpec("snapshot.taken", description="a state snapshot was written"),
    TopicSpec(
        "metrics.sampled",
        description="the engine's key figures (seq, events/s, queue, journal latency), sampled",
    ),
    TopicSpec("snapshot.rejected", description="a snapshot failed verification and was skipped"),
    TopicSpec("journal.damage_detected", description="recovery found a damaged or short tail"),
    TopicSpec("journal.recovered", description="recovery finished; the report is the payload"),
    TopicSpec("bus.handler_failed", transient=True, description="a bus subscriber raised"),
    TopicSpec(
        "engine.event_rejected",
        transient=True,
        description="a reducer refused a submitted event; it was not journaled",
    ),
)


class TopicRegistry:
    """The set of topics an engine accepts. Build one per engine; extend it with `register`."""

    def __init__(self, specs: Iterable[TopicSpec] = DEFAULT_TOPICS) -> None:
        self._specs: dict[str, TopicSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: TopicSpec) -> TopicSpec:
        """Add a topic; registering the same spec twice is fine, a conflicting one is an error."""
        existing = self._specs.get(spec.name)
        if existing is not None and existing != spec:
            raise InvalidInputError(
                f"topic {spec.name!r} is already registered as {existing}; cannot re-register "
                f"as {spec}"
            )
        self._specs[spec.name] = spec
        return spec

    def __contains__(self, topic: object) -> bool:
        return topic in self._specs

    def __iter__(self):
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, topic: str) -> TopicSpec:
        try:
            return self._specs[topic]
        except KeyError:
            raise UnknownTopicError(
                f"unknown topic {topic!r}; register it first (known: "
                f"{', '.join(sorted(self._specs)[:8])}, ...)"
            ) from None

    def is_critical(self, topic: str) -> bool:
        return self.get(topic).critical

    def is_transient(self, topic: str) -> bool:
        return self.get(topic).transient

    def make_event(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        key: str = "",
        critical: bool | None = None,
        seq: int = 0,
        ts: int | None = None,
    ) -> Event:
        """A checked event: known topic, JSON-safe finite payload, str key; its payload a
        fresh plain dict, converted as the engine's submit converts it (numpy scalars, str
        and float subclasses, other mappings: see payloads._plain), so it encodes as is.

        `critical` defaults to the topic's registered default; it can be raised, not lowered.
        """
        spec, body, is_critical = self.check(topic, payload, key=key, critical=critical)
        body = encode_submitted(body, topic)[1]
        key = key if type(key) is str else str.__str__(key)  # plain, as the engine journals it
        return Event(
            seq,
            now_ns() if ts is None else ts,
            spec.name,
            key,
            body,
            is_critical,
            spec.schema_version,
        )

    def check(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        key: str = "",
        critical: bool | None = None,
    ) -> tuple[TopicSpec, dict[str, Any], bool]:
        """What `make_event` checks, without building the Event: (spec, payload dict, critical).

        For a caller (the engine kernel) that stamps the Event itself later, once.
        """
        spec = self._specs.get(topic) if type(topic) is str else None
        if spec is None:
            spec = self.get(topic)
        if type(key) is not str and not isinstance(key, str):
            raise InvalidInputError(f"event key must be a str, got {type(key).__name__} {key!r}")
        if not key.isascii():
            _check_key_text(key, topic)
        body = validate_payload(payload, topic)
        if critical is None or spec.critical:
            return spec, body, spec.critical
        return spec, body, bool(critical)


def _check_key_text(key: str, topic: str) -> None:
    """A key is journaled as text: one UTF-8 cannot encode (a lone surrogate) is refused here,
    before anything is applied, not in the writer after the store took the event."""
    try:
        key.encode()
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"event key {key!r} of topic {topic!r} is not valid Unicode (a lone surrogate?); "
            "text must encode as UTF-8"
        ) from None
