"""The Event record, topic specs and the registry: exact serialization and checked construction."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradelab.errors import InvalidInputError, UnknownTopicError
from tradelab.events import (
    DEFAULT_TOPICS,
    Event,
    TopicRegistry,
    TopicSpec,
    decode_event,
    encode_event,
    validate_payload,
)

# JSON-safe values as validate_payload allows them; lists only (a tuple comes back as a list).
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)  # wider ones are refused
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
payloads = st.dictionaries(text, values, max_size=6)
events = st.builds(
    Event,
    seq=st.integers(min_value=0, max_value=2**63 - 1),
    ts=st.integers(min_value=0, max_value=2**63 - 1),
    topic=st.sampled_from([spec.name for spec in DEFAULT_TOPICS]),
    key=text,
    payload=payloads,
    critical=st.booleans(),
    schema_version=st.integers(min_value=1, max_value=50),
)


@given(events)
def test_bytes_to_event_to_bytes_round_trips_exactly(event):
    data = encode_event(event)
    decoded = decode_event(data)
    assert encode_event(decoded) == data
    assert decoded == event


@given(payloads)
def test_every_generated_payload_passes_validation_and_survives_the_journal_format(payload):
    registry = TopicRegistry()
    event = registry.make_event("order.submitted", payload, key="ord-1", seq=3, ts=9)
    assert decode_event(encode_event(event)).payload == payload


def test_tuples_in_a_payload_come_back_as_lists():
    event = TopicRegistry().make_event("order.submitted", {"legs": (1, 2)})
    assert decode_event(encode_event(event)).payload == {"legs": [1, 2]}


def test_make_event_converts_numpy_values_as_submit_does_so_the_event_encodes():
    import numpy as np

    payload = {"qty": np.int64(3), "price": np.float64(1.5), "ok": np.bool_(True)}
    event = TopicRegistry().make_event("order.filled", payload)
    assert event.payload == {"qty": 3, "price": 1.5, "ok": True}
    assert type(event.payload["qty"]) is int and event.payload is not payload
    assert decode_event(encode_event(event)).payload == event.payload


def test_with_seq_stamps_a_copy_and_leaves_the_original_alone():
    event = Event(0, 5, "order.filled", "k", {"qty": 75})
    stamped = event.with_seq(12, ts=99)
    assert (stamped.seq, stamped.ts, stamped.payload) == (12, 99, {"qty": 75})
    assert (event.seq, event.ts) == (0, 5)
    assert event.with_seq(3).ts == 5


def test_events_are_immutable():
    event = Event(1, 1, "order.filled", "", {})
    with pytest.raises(AttributeError):
        event.seq = 2


def test_malformed_bytes_are_an_invalid_input_error():
    with pytest.raises(InvalidInputError, match="cannot decode event"):
        decode_event(b'{"seq": "one"}')


def test_unknown_topic_is_refused_with_its_name():
    with pytest.raises(UnknownTopicError, match="unknown topic 'order.teleported'") as info:
        TopicRegistry().make_event("order.teleported", {})
    assert str(info.value).startswith("unknown topic")  # readable, not KeyError's repr


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"when": object()}, "payload.when has a value of type object"),
        ({"ids": {1, 2}}, "payload.ids has a value of type set"),
        ({"raw": b"\x00"}, "payload.raw has a value of type bytes"),
        ({"legs": [{"strike": 24000, "at": complex(1, 2)}]}, "payload.legs[0].at"),
        ({1: "int key"}, "has key 1 of type int"),
    ],
)
def test_non_serializable_payload_is_refused_naming_where(payload, where):
    with pytest.raises(InvalidInputError, match=where.replace("[", r"\[").replace("]", r"\]")):
        TopicRegistry().make_event("order.submitted", payload)


def test_a_payload_that_is_not_a_mapping_is_refused():
    with pytest.raises(InvalidInputError, match="must be a mapping, got list"):
        validate_payload([("qty", 75)], "order.submitted")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("build", "where"),
    [
        (lambda x: {"ltp": x}, "payload.ltp"),
        (lambda x: {"legs": [1.0, x]}, r"payload.legs\[1\]"),
        (lambda x: {"greeks": {"iv": {"atm": x}}}, "payload.greeks.iv.atm"),
        (lambda x: {"legs": ({"px": x},)}, r"payload.legs\[0\].px"),
    ],
)
def test_nan_or_infinity_anywhere_in_a_payload_is_refused(bad, build, where):
    with pytest.raises(InvalidInputError, match=f"{where} is .*numbers must be finite"):
        TopicRegistry().make_event("mark.updated", build(bad))


@pytest.mark.parametrize(
    "name",
    [
        "trade",
        "Trade.executed",
        "trade..executed",
        "1trade.executed",
        "trade.executed.",
        "trade executed",
        "trade-x.y",
        "",
    ],
)
def test_bad_topic_names_are_refused(name):
    with pytest.raises(InvalidInputError, match="not dotted lower-case"):
        TopicSpec(name)


def test_topic_spec_rejects_critical_and_transient_together_and_bad_versions():
    with pytest.raises(InvalidInputError, match="both critical and transient"):
        TopicSpec("feed.raw", critical=True, transient=True)
    with pytest.raises(InvalidInputError, match="schema_version 0"):
        TopicSpec("feed.raw", schema_version=0)


def test_critical_defaults_to_the_registry_and_can_be_raised_but_not_lowered():
    registry = TopicRegistry()
    assert registry.make_event("trade.executed", {}).critical is True
    assert registry.make_event("order.submitted", {}).critical is False
    assert registry.make_event("order.submitted", {}, critical=True).critical is True
    assert registry.make_event("trade.executed", {}, critical=False).critical is True


def test_make_event_uses_the_topic_schema_version_and_checks_the_key():
    registry = TopicRegistry([TopicSpec("strategy.note", schema_version=3)])
    assert registry.make_event("strategy.note", {}).schema_version == 3
    with pytest.raises(InvalidInputError, match="key must be a str, got int 7"):
        registry.make_event("strategy.note", {}, key=7)


def test_registering_the_same_spec_twice_is_fine_but_a_conflicting_one_is_refused():
    registry = TopicRegistry([])
    spec = TopicSpec("strategy.note")
    registry.register(spec)
    registry.register(TopicSpec("strategy.note"))
    assert len(registry) == 1
    with pytest.raises(InvalidInputError, match="already registered"):
        registry.register(TopicSpec("strategy.note", critical=True))
    assert registry.get("strategy.note") == spec


def test_default_registry_knows_transient_and_critical_topics():
    registry = TopicRegistry()
    assert registry.is_transient("market.tick") and not registry.is_critical("market.tick")
    assert registry.is_critical("position.closed")
    assert "bus.handler_failed" in registry
    assert len({spec.name for spec in registry}) == len(DEFAULT_TOPICS)
