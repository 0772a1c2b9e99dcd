"""EventBus behaviour on one thread: routing, order, isolation, re-entrancy, history, metrics."""

from __future__ import annotations

import logging

import pytest

from tradelab.bus import HANDLER_FAILED, EventBus, Subscription
from tradelab.errors import InvalidInputError, LifecycleError
from tradelab.events import DEFAULT_TOPICS, Event, TopicRegistry, TopicSpec


def transient_registry() -> TopicRegistry:
    """The default topic names, all transient: routing tests publish them directly, which a
    bus refuses for journaled topics (those reach a bus only from the engine's kernel)."""
    return TopicRegistry(TopicSpec(spec.name, transient=True) for spec in DEFAULT_TOPICS)


@pytest.fixture
def bus():
    with EventBus(registry=transient_registry(), name="test") as b:
        yield b


def recorder(log: list, label: str):
    def handler(event: Event) -> None:
        log.append((label, event.topic, event.payload.get("i")))

    handler.__qualname__ = f"recorder[{label}]"
    return handler


def test_exact_subscriber_gets_only_its_own_topic(bus):
    got: list = []
    bus.subscribe("order.filled", recorder(got, "a"))
    bus.publish("order.submitted", {"i": 1})
    bus.publish("order.filled", {"i": 2})
    assert got == [("a", "order.filled", 2)]


def test_prefix_wildcard_matches_every_topic_under_the_prefix_and_nothing_else(bus):
    got: list = []
    bus.subscribe("trade.*", recorder(got, "w"))
    bus.publish("trade.executed", {"i": 1})
    bus.publish("trade.logged", {"i": 2})
    bus.publish("position.updated", {"i": 3})
    bus.publish("order.filled", {"i": 4})
    assert got == [("w", "trade.executed", 1), ("w", "trade.logged", 2)]


def test_star_receives_every_topic(bus):
    got: list = []
    bus.subscribe("*", recorder(got, "all"))
    for i, topic in enumerate(["market.tick", "risk.halted", "engine.state_changed"]):
        bus.publish(topic, {"i": i})
    assert [t for _, t, _ in got] == ["market.tick", "risk.halted", "engine.state_changed"]


def test_handlers_run_in_subscription_order_whether_exact_or_wildcard(bus):
    got: list = []
    bus.subscribe("*", recorder(got, "first"))
    bus.subscribe("order.filled", recorder(got, "second"))
    bus.subscribe("order.*", recorder(got, "third"))
    bus.subscribe("order.filled", recorder(got, "fourth"))
    bus.publish("order.filled", {"i": 7})
    assert [label for label, _, _ in got] == ["first", "second", "third", "fourth"]


def test_wildcard_added_after_a_topic_was_cached_still_receives_it(bus):
    got: list = []
    bus.publish("order.filled", {"i": 1})  # caches the (empty) route of order.filled
    bus.subscribe("order.*", recorder(got, "late"))
    bus.publish("order.filled", {"i": 2})
    assert got == [("late", "order.filled", 2)]


def test_unsubscribe_stops_delivery_and_a_second_unsubscribe_is_a_no_op(bus):
    got: list = []
    sub = bus.subscribe("order.*", recorder(got, "a"))
    other = bus.subscribe("order.*", recorder(got, "b"))
    assert isinstance(sub, Subscription)
    bus.publish("order.filled", {"i": 1})
    assert sub.unsubscribe() is True
    assert sub.unsubscribe() is False
    bus.publish("order.filled", {"i": 2})
    assert bus.unsubscribe(other) is True
    bus.publish("order.filled", {"i": 3})
    assert got == [("a", "order.filled", 1), ("b", "order.filled", 1), ("b", "order.filled", 2)]


def test_unsubscribing_a_subscription_of_another_bus_is_refused(bus):
    with EventBus() as other:
        foreign = other.subscribe("*", lambda e: None)
        with pytest.raises(InvalidInputError, match="not a subscription of bus 'test'"):
            bus.unsubscribe(foreign)
    assert foreign.active


def test_subscribing_during_delivery_takes_effect_from_the_next_publish(bus):
    got: list = []
    late = recorder(got, "late")

    def subscribes_another(event: Event) -> None:
        got.append(("early", event.topic, event.payload["i"]))
        if event.payload["i"] == 1:
            bus.subscribe("order.filled", late)

    bus.subscribe("order.filled", subscribes_another)
    bus.publish("order.filled", {"i": 1})
    bus.publish("order.filled", {"i": 2})
    assert got == [
        ("early", "order.filled", 1),
        ("early", "order.filled", 2),
        ("late", "order.filled", 2),
    ]


def test_unsubscribing_during_delivery_still_lets_the_current_event_through(bus):
    got: list = []
    victim = None

    def removes_victim(event: Event) -> None:
        victim.unsubscribe()

    bus.subscribe("order.filled", removes_victim)
    victim = bus.subscribe("order.filled", recorder(got, "victim"))
    bus.publish("order.filled", {"i": 1})
    bus.publish("order.filled", {"i": 2})
    assert got == [("victim", "order.filled", 1)]


def test_raising_handler_does_not_stop_delivery_to_the_others(bus):
    got: list = []
    failures: list[Event] = []

    def broken(event: Event) -> None:
        raise ValueError(f"strike price {event.payload['i']} is bad")

    bus.subscribe("order.filled", recorder(got, "before"))
    bus.subscribe("order.filled", broken, name="broken-handler")
    bus.subscribe("order.filled", recorder(got, "after"))
    bus.subscribe(HANDLER_FAILED, failures.append)
    bus.publish("order.filled", {"i": 3})
    assert got == [("before", "order.filled", 3), ("after", "order.filled", 3)]
    assert len(failures) == 1
    assert failures[0].key == "broken-handler"
    assert failures[0].payload == {
        "topic": "order.filled",
        "seq": 0,
        "handler": "broken-handler",
        "subscription_id": 2,
        "error_type": "ValueError",
        "error": "strike price 3 is bad",
    }
    metrics = bus.metrics()
    assert metrics["handler_failures_total"] == 1
    assert metrics["handler_failures"] == {"broken-handler": 1}
    assert [h["failures"] for h in metrics["handlers"]] == [0, 1, 0, 0]


def test_handler_failure_is_logged_with_its_traceback(bus, caplog):
    def broken(event: Event) -> None:
        raise RuntimeError("feed went away")

    bus.subscribe("market.tick", broken, name="tick-consumer")
    with caplog.at_level(logging.ERROR, logger="tradelab.bus"):
        bus.publish("market.tick", {"ltp": 1.0})
    assert len(caplog.records) == 1
    record = caplog.records[0]
    assert "tick-consumer" in record.getMessage() and "market.tick" in record.getMessage()
    assert record.exc_info and record.exc_info[0] is RuntimeError


def test_failure_inside_a_handler_failed_handler_is_logged_and_counted_only(bus, caplog):
    calls: list[str] = []

    def broken(event: Event) -> None:
        raise ValueError("first")

    def broken_alarm(event: Event) -> None:
        calls.append(event.topic)
        raise ValueError("alarm is broken too")

    bus.subscribe("order.filled", broken, name="broken")
    bus.subscribe(HANDLER_FAILED, broken_alarm, name="alarm")
    with caplog.at_level(logging.ERROR, logger="tradelab.bus"):
        bus.publish("order.filled", {})
    assert calls == [HANDLER_FAILED]  # the alarm's own failure was not re-published
    metrics = bus.metrics()
    assert metrics["handler_failures"] == {"broken": 1, "alarm": 1}
    assert metrics["events_per_topic"] == {"order.filled": 1, HANDLER_FAILED: 1}
    assert len(caplog.records) == 2


def test_same_handler_subscribed_twice_is_called_twice_and_failures_are_charged_to_each():
    calls: list[int] = []

    def flaky(event: Event) -> None:
        calls.append(event.payload["i"])
        raise KeyError("position")

    with EventBus() as bus:
        first = bus.subscribe("order.filled", flaky, name="first")
        second = bus.subscribe("order.*", flaky, name="second")
        bus.publish("order.filled", {"i": 1})
        assert calls == [1, 1]
        assert (first.failures, second.failures) == (1, 1)


def test_publish_from_a_handler_is_delivered_after_the_event_reached_every_handler(bus):
    got: list = []

    def fills_then_updates(event: Event) -> None:
        got.append(("filler", event.topic, event.payload["i"]))
        if event.topic == "order.filled":
            bus.publish("position.updated", {"i": event.payload["i"]})
            bus.publish("trade.logged", {"i": event.payload["i"]})

    bus.subscribe("*", fills_then_updates)
    bus.subscribe("*", recorder(got, "watcher"))
    bus.publish("order.filled", {"i": 1})
    assert got == [
        ("filler", "order.filled", 1),
        ("watcher", "order.filled", 1),
        ("filler", "position.updated", 1),
        ("watcher", "position.updated", 1),
        ("filler", "trade.logged", 1),
        ("watcher", "trade.logged", 1),
    ]
    assert bus.metrics()["reentrant_queued"] == 2
    # Every subscriber saw the same order, and so does the history.
    assert [e.topic for e in bus.history()] == ["order.filled", "position.updated", "trade.logged"]


def test_mapping_payloads_are_copied_into_a_dict(bus):
    from types import MappingProxyType

    event = bus.publish("order.filled", MappingProxyType({"qty": 75}))
    assert type(event.payload) is dict and event.payload == {"qty": 75}


def test_history_ring_keeps_only_the_last_history_size_events():
    with EventBus(history_size=3) as bus:
        for i in range(5):
            bus.publish("market.tick", {"i": i})
        assert [e.payload["i"] for e in bus.history()] == [2, 3, 4]
        assert bus.metrics()["history_len"] == 3


def test_history_filters_by_pattern_since_seq_and_limit(bus):
    for seq, topic in enumerate(
        ["order.submitted", "order.filled", "trade.executed", "order.cancelled"], start=1
    ):
        bus.publish_event(Event(seq, seq, topic, "", {}))
    bus.publish("market.tick", {})  # transient: seq 0
    assert [e.seq for e in bus.history("order.*")] == [1, 2, 4]
    assert [e.seq for e in bus.history(since_seq=2)] == [3, 4]
    assert [e.seq for e in bus.history(since_seq=0)] == [1, 2, 3, 4]
    assert [e.topic for e in bus.history()][-1] == "market.tick"
    assert [e.seq for e in bus.history("order.*", limit=2)] == [2, 4]
    assert bus.history("order.*", since_seq=1, limit=0) == []
    assert [e.seq for e in bus.history("trade.executed")] == [3]


def test_metrics_count_events_per_topic_and_sample_handler_times():
    with EventBus(sample_every=4) as bus:
        sub = bus.subscribe("market.*", lambda e: None, name="ticks")
        for _ in range(10):
            bus.publish("market.tick", {})
        bus.publish("market.bar", {})
        metrics = bus.metrics()
    assert metrics["events_per_topic"] == {"market.tick": 10, "market.bar": 1}
    assert metrics["events_total"] == 11
    assert metrics["rate_per_s_lifetime"] > 0 and metrics["rate_per_s_recent"] > 0
    (handler,) = metrics["handlers"]
    # Sampled: publishes 0, 4, 8 of market.tick and publish 0 of market.bar.
    assert handler["name"] == "ticks" and handler["sampled_calls"] == 4
    assert handler["time_ns_p50"] <= handler["time_ns_p99"] <= handler["time_ns_max"]
    assert sum(handler["time_ns_histogram"].values()) == 4
    assert sub.stats()["sampled_calls"] == 4


def test_metrics_is_a_plain_json_serializable_dict(bus):
    import json

    bus.subscribe("*", lambda e: None)
    bus.publish("order.filled", {})
    assert json.loads(json.dumps(bus.metrics()))["events_total"] == 1


def test_publish_and_subscribe_after_close_raise_lifecycle_error():
    bus = EventBus()
    got: list = []
    bus.subscribe("order.*", got.append)
    bus.publish("order.filled", {})
    bus.close()
    bus.close()  # idempotent
    with pytest.raises(LifecycleError, match="closed"):
        bus.publish("order.filled", {})
    with pytest.raises(LifecycleError, match="closed"):
        bus.subscribe("order.*", got.append)
    assert len(got) == 1 and bus.closed


def test_publish_events_delivers_a_batch_exactly_as_one_publish_event_per_event(bus):
    seen: list[tuple[str, int]] = []
    bus.subscribe("mark.*", lambda e: seen.append(("mark", e.seq)))
    bus.subscribe("*", lambda e: seen.append(("all", e.seq)))

    def raises(event: Event) -> None:
        raise RuntimeError("boom")

    bus.subscribe("trade.executed", raises)
    # A handler's own publish is queued behind the event being delivered, also in a batch.
    bus.subscribe(
        "order.filled", lambda e: bus.publish_event(Event(e.seq + 100, 1, "mark.updated", "", {}))
    )
    batch = [
        Event(1, 1, "mark.updated", "", {"symbol": "NIFTY", "price": 1.0}),
        Event(2, 2, "trade.executed", "T1", {"trade_id": "T1"}, True),
        Event(3, 3, "order.filled", "O1", {"order_id": "O1"}),
        Event(4, 4, "mark.updated", "", {"symbol": "NIFTY", "price": 2.0}),
    ]
    bus.publish_events(batch)
    assert seen == [
        ("mark", 1),
        ("all", 1),
        ("all", 2),
        ("all", 0),  # bus.handler_failed for the raising handler, queued behind its event
        ("all", 3),
        ("mark", 103),
        ("all", 103),
        ("mark", 4),
        ("all", 4),
    ]
    assert [e.seq for e in bus.history(since_seq=0)] == [1, 2, 3, 103, 4]
    assert bus.metrics()["handler_failures_total"] == 1


def _bus():
    reg = TopicRegistry(TopicSpec(s.name, transient=True) for s in DEFAULT_TOPICS)
    return EventBus(registry=reg, name="w")


def test_isolation_holds_on_the_unsampled_publish_path():
    got, failures = [], []
    with _bus() as bus:
        bus.subscribe("order.filled", lambda e: got.append(("before", e.payload["i"])))
        bus.subscribe("order.filled", lambda e: 1 / 0, name="broken")
        bus.subscribe("order.filled", lambda e: got.append(("after", e.payload["i"])))
        bus.subscribe(HANDLER_FAILED, failures.append)
        for i in range(5):
            bus.publish("order.filled", {"i": i})
    assert [i for who, i in got if who == "after"] == [0, 1, 2, 3, 4]
    assert len(failures) == 5


def test_isolation_holds_for_stamped_events_published_in_batches():
    # publish_events is the engine kernel's path for every applied batch.
    got = []
    with _bus() as bus:
        bus.subscribe("order.filled", lambda e: 1 / 0, name="broken")
        bus.subscribe("order.filled", lambda e: got.append(e.seq))
        events = [
            Event(seq=n, ts=n, topic="order.filled", key="", payload={"i": n}) for n in range(1, 6)
        ]
        bus.publish_events(events[:1])  # the topic's first event: the sampled path
        bus.publish_events(events[1:])  # the rest: the unsampled path
    assert got == [1, 2, 3, 4, 5]
