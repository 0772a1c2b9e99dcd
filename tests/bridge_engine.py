"""The bridge tests' engine, a storm of marks to feed it, and a check that a replica is in step."""

from __future__ import annotations

from tradelab.engine import Engine


def _engine(tmp_path, **kw) -> Engine:
    kw.setdefault("snapshot_every_seconds", 0)
    kw.setdefault("snapshot_every_events", 0)
    return Engine(journal_path=str(tmp_path / "lab.duckdb"), **kw)


def _storm(engine: Engine, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        engine.submit("mark.updated", {"symbol": f"S{i % 40}", "price": 100.0 + i})


def _in_step(replica, engine: Engine, timeout: float = 20.0) -> None:
    seq = engine.flush()
    assert replica.wait_for_seq(seq, timeout), replica.metrics()
    assert replica.seq == engine.store.version
    assert replica.store.state_hash() == engine.store.state_hash()
