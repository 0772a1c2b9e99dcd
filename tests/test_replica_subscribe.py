"""A replica's subscriptions: what the engine never sends it (a misspelt topic, a transient
one) is refused, naming it, as the engine's own bus refuses an unknown topic."""

from __future__ import annotations

import pytest

from tradelab.bridge import BridgeServer, connect
from tradelab.engine import Engine
from tradelab.errors import InvalidInputError, UnknownTopicError
from tradelab.events import TopicSpec


def test_a_replica_refuses_a_topic_it_is_never_sent_and_takes_the_engines_own(tmp_path):
    engine = Engine(journal_path=str(tmp_path / "lab.duckdb"), snapshot_every_seconds=0)
    engine.registry.register(TopicSpec("test.blob", description="a topic of the engine's own"))
    with engine, BridgeServer(engine) as server, connect(server.url) as replica:
        with pytest.raises(UnknownTopicError, match="'trade.execute'; did you mean 'trade.exe"):
            replica.subscribe("trade.execute", print)
        with pytest.raises(UnknownTopicError, match="registered since is known after a reconnect"):
            replica.subscribe("late.topic", print)
        with pytest.raises(InvalidInputError, match="'market.tick' is transient"):
            replica.subscribe("market.tick", print)
        seen = []
        replica.subscribe("test.blob", seen.append)  # registered on this engine: sent
        replica.subscribe("trade.*", print)
        replica.subscribe("bus.handler_failed", print)  # the replica's own bus publishes it
        engine.submit("test.blob", {"n": 1}, wait=True)
        assert replica.wait_for_seq(engine.flush(), 20)
    assert [event.payload for event in seen] == [{"n": 1}]


def test_a_star_subscriber_gets_the_journals_events_only_not_its_own_failures(tmp_path):
    # The replica's bus reports a failing handler as bus.handler_failed (seq 0): "*" handed
    # it to the failing handler itself, twice the calls and out of seq order.
    engine = Engine(journal_path=str(tmp_path / "lab.duckdb"), snapshot_every_seconds=0)
    with engine, BridgeServer(engine) as server, connect(server.url) as replica:
        seen, failures = [], []

        def raises(event):
            seen.append(event)
            raise RuntimeError("on purpose")

        replica.subscribe("*", raises)
        replica.subscribe("bus.handler_failed", failures.append)  # asked for by name: it comes
        for i in range(3):
            engine.submit("mark.updated", {"symbol": "A", "price": float(i)})
        assert replica.wait_for_seq(engine.flush(), 20)
    assert seen and all(event.seq for event in seen)
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    assert failures


def test_a_replicas_handlers_keep_the_names_the_bus_gives_them(tmp_path):
    # Every one was named after the internal wrapper (journaled_only.<locals>.journaled).
    import functools

    from tradelab.bus.subscription import handler_name

    def counted(event, into):
        into.append(event)

    handler = functools.partial(counted, into=[])
    engine = Engine(journal_path=str(tmp_path / "lab.duckdb"), snapshot_every_seconds=0)
    with engine, BridgeServer(engine) as server, connect(server.url) as replica:
        replica.subscribe("trade.*", handler)
        names = [sub.name for sub in replica.bus.subscriptions()]
    assert handler_name(handler) in names
    assert not any("journaled" in name for name in names)
