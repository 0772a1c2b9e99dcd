"""EventBus and topics: a registry's unknown topics refused, transient defaults, bad input and
settings named, and journaled topics kept off `publish` (they reach a bus only from the kernel)."""

from __future__ import annotations

import time

import pytest

from tests.test_bus import transient_registry
from tradelab.bus import HANDLER_FAILED, EventBus
from tradelab.errors import InvalidInputError, UnknownTopicError
from tradelab.events import Event, TopicRegistry, TopicSpec


@pytest.fixture
def bus():
    with EventBus(registry=transient_registry(), name="test") as b:
        yield b


def test_unknown_topic_with_a_registry_is_refused_and_records_nothing(bus):
    got: list = []
    bus.subscribe("*", got.append)
    with pytest.raises(UnknownTopicError, match="'order.teleported'"):
        bus.publish("order.teleported", {})
    with pytest.raises(UnknownTopicError, match="'order.teleported'"):
        bus.publish_event(Event(5, 1, "order.teleported", "", {}))
    assert got == [] and bus.history() == []
    assert bus.metrics()["events_total"] == 0


def test_subscribing_to_an_unknown_exact_topic_with_a_registry_is_refused(bus):
    with pytest.raises(UnknownTopicError, match="'order.fillled'"):
        bus.subscribe("order.fillled", lambda e: None)
    bus.subscribe("order.fil*", lambda e: None)  # globs may match topics registered later


def test_handler_failures_are_published_even_when_the_registry_lacks_the_bus_topic():
    registry = TopicRegistry([TopicSpec("order.filled", transient=True)])
    with EventBus(registry=registry) as bus:
        failures: list[Event] = []
        bus.subscribe(HANDLER_FAILED, failures.append)
        bus.subscribe("order.filled", lambda e: 1 / 0)
        bus.publish("order.filled", {})
        assert [f.payload["error_type"] for f in failures] == ["ZeroDivisionError"]


def test_topics_registered_later_are_accepted_by_the_bus():
    registry = TopicRegistry()
    with EventBus(registry=registry) as bus:
        got: list[Event] = []
        bus.subscribe("strategy.*", got.append)
        registry.register(TopicSpec("strategy.note", transient=True, schema_version=2))
        event = bus.publish("strategy.note", {"text": "IV crush"})
        assert got == [event] and event.schema_version == 2


def test_publish_builds_a_transient_event_with_the_registry_defaults():
    registry = TopicRegistry([TopicSpec("market.tick", transient=True, schema_version=3)])
    with EventBus(registry=registry) as bus:
        before = time.time_ns()
        event = bus.publish("market.tick", {"ltp": 75.5}, key="NIFTY24000CE")
        after = time.time_ns()
    assert event.seq == 0 and before <= event.ts <= after
    assert (event.topic, event.key, event.payload) == ("market.tick", "NIFTY24000CE", {"ltp": 75.5})
    assert event.critical is False and event.schema_version == 3


def test_publish_event_delivers_the_event_object_it_was_given(bus):
    got: list[Event] = []
    bus.subscribe("order.*", got.append)
    event = Event(41, 123, "order.accepted", "ord-1", {"qty": 75})
    bus.publish_event(event)
    assert got[0] is event


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.publish("Order Filled", {}), "not dotted lower-case"),
        (lambda b: b.publish(42, {}), "topic must be a str"),
        (lambda b: b.publish(["order.filled"], {}), "topic must be a str, got list"),
        (lambda b: b.publish("order.filled", [1, 2]), "must be a mapping, got list"),
        (lambda b: b.publish("order.filled", {}, key=7), "key must be a str, got int 7"),
        (lambda b: b.publish_event({"topic": "order.filled"}), "expects an Event, got dict"),
        (lambda b: b.subscribe("", print), "non-empty str"),
        (lambda b: b.subscribe("Order.*", print), "'Order.*' has characters"),
        (lambda b: b.subscribe("order", print), "not dotted lower-case"),
        (lambda b: b.subscribe("order.*", "not callable"), "must be callable, got str"),
        (lambda b: b.history(since_seq=-1), "since_seq -1"),
        (lambda b: b.history(limit="all"), "limit 'all'"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_it(call, message):
    with EventBus() as bus:
        with pytest.raises(InvalidInputError, match=message):
            call(bus)
        assert bus.history() == [] and bus.subscriptions() == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"history_size": -1}, "history_size -1"),
        ({"sample_every": 3}, "sample_every 3"),
        ({"rate_window_s": 0}, "rate_window_s 0"),
    ],
)
def test_bad_bus_settings_are_refused(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        EventBus(**kwargs)


@pytest.mark.parametrize(
    "publish",
    [
        lambda b: b.publish("trade.executed", {"trade_id": "T1"}),
        lambda b: b.publish_event(Event(0, 1, "trade.executed", "T1", {"trade_id": "T1"}, True)),
        lambda b: b.publish("order.filled", {"order_id": "O1"}),
        # The kernel's batch door too: an unstamped event there was never stored or journaled.
        lambda b: b.publish_events([Event(0, 1, "trade.executed", "T1", {"trade_id": "T1"}, True)]),
    ],
)
def test_journaled_topic_published_directly_is_refused_and_reaches_no_subscriber(publish):
    with EventBus(registry=TopicRegistry(), name="journaled") as bus:
        got: list[Event] = []
        bus.subscribe("*", got.append)
        for _ in range(2):  # the refusal also holds once the topic's route is cached
            with pytest.raises(InvalidInputError, match=r"is journaled.*engine\.submit"):
                publish(bus)
        bus.publish_events([Event(1, 1, "trade.executed", "T1", {"trade_id": "T1"}, True)])
        with pytest.raises(InvalidInputError, match="journaled"):
            publish(bus)
        assert [(e.seq, e.topic) for e in got] == [(1, "trade.executed")]
        assert bus.history() == got


def test_stamped_journaled_event_and_transient_topics_still_pass_on_a_registry_bus():
    with EventBus(registry=TopicRegistry(), name="journaled") as bus:
        got: list[Event] = []
        bus.subscribe("*", got.append)
        bus.publish_event(Event(7, 1, "order.filled", "O1", {"order_id": "O1"}))
        bus.publish("market.tick", {"ltp": 1.0})
        bus.publish("engine.event_rejected", {"topic": "order.filled"})
        assert [(e.seq, e.topic) for e in got] == [
            (7, "order.filled"),
            (0, "market.tick"),
            (0, "engine.event_rejected"),
        ]


def test_without_a_registry_the_bus_cannot_tell_journaled_topics_and_delivers_them():
    with EventBus(name="plain") as bus:
        got: list[Event] = []
        bus.subscribe("*", got.append)
        bus.publish("trade.executed", {"trade_id": "T1"})
        assert [e.topic for e in got] == ["trade.executed"]
