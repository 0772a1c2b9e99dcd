"""A replica fed from the bus gets every journaled event, whatever transient ticks come between."""

from tests.bridge_engine import _engine, _in_step
from tradelab.bridge import BridgeServer, connect


def test_transient_ticks_among_journaled_events_do_not_cost_a_bus_fed_replica_any_event(tmp_path):
    with (
        _engine(tmp_path, writer_process=False) as engine,
        BridgeServer(engine) as server,
        connect(server.url) as replica,
    ):
        seen: list[int] = []
        replica.subscribe("mark.*", lambda event: seen.append(event.seq))
        for i in range(2_000):
            engine.submit("mark.updated", {"symbol": f"S{i % 10}", "price": float(i + 1)})
            if i % 3 == 0:  # a quote the journal never holds (seq 0)
                engine.publish_transient("market.tick", {"symbol": "S0", "last": 1.0}, key="S0")
        _in_step(replica, engine)
        assert server.hub.metrics()["feed"] == "bus events"
        assert len(seen) == 2_000 and seen == list(range(seen[0], seen[0] + 2_000))
        assert replica.store.get("market.marks.S9") == engine.store.get("market.marks.S9")
