"""As-of state: the store at random points of a 1M-event journal, against a full replay from seq 0.

Figures (medians over all points of all rounds, one journal built in this run):
  full_replay_ms      the store at the last seq built by replaying every event from seq 0: the
                      baseline, measured in each round beside the points
  cold_ms / cold_max_ms   `Analytics.state_at(seq)` on a fresh Analytics: the newest journal
                      snapshot at or before seq (the engine writes one every 100K events) +
                      replay of the rest
  index_ms            `Analytics.index()`: one pass from seq 0 keeping a checkpoint every 10K
  indexed_ms / indexed_max_ms   `state_at(seq)` after `index()`
  segments_indexed_ms the same through the sealed segments (the file held read-write, as by a
                      running engine: no snapshot readable)
  seq_at_ms           `Analytics.seq_at(ts)`: a time on the exchange clock to its seq
  *_ratio             that figure / full_replay_ms

Usage: .venv/bin/python benchmarks/asof.py [--events 1000000] [--rounds 3] [--points 5] [--json]
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import click
import duckdb

from tradelab.analytics import Analytics
from tradelab.benchmarking.options import bench_options, command
from tradelab.engine import Engine, build_store
from tradelab.journal import replay_into

SYMBOLS = ("NIFTY", "NIFTY24DEC24000CE", "NIFTY24DEC24000PE", "NIFTY24DEC24500CE")
START_NS = 1_762_919_100_000_000_000  # 2025-11-12 09:15 IST


def build_journal(path: Path, events: int) -> None:
    """Marks of four symbols, an order every 500 events and a fill every 1,000 (so the book has
    positions to re-mark), through Engine.submit; the engine snapshots every 100K events."""
    with Engine(
        journal_path=str(path), snapshot_every_events=100_000, snapshot_every_seconds=0
    ) as engine:
        submit = engine.submit
        for i in range(events - 20):  # the engine's own lifecycle events make up the rest
            ts = START_NS + i * 20_000_000  # 50 events per exchange second
            if i % 1000 == 999:
                symbol = SYMBOLS[1 + (i // 1000) % 3]
                submit(
                    "trade.executed",
                    {
                        "trade_id": f"T{i}",
                        "order_id": f"O{i}",
                        "position_id": f"bench:{symbol}",
                        "strategy": "bench",
                        "symbol": symbol,
                        "side": "BUY" if (i // 3000) % 2 else "SELL",
                        "quantity": 75,
                        "price": 100.0 + i % 37,
                        "fee": 20.0,
                        "lot_size": 75,
                        "ts": ts,
                    },
                    key=f"bench:{symbol}",
                )
            elif i % 500 == 499:
                submit(
                    "order.submitted",
                    {"order_id": f"O{i}", "symbol": SYMBOLS[1], "side": "BUY", "quantity": 75},
                )
            else:
                submit(
                    "mark.updated",
                    {"symbol": SYMBOLS[i & 3], "price": 24000.0 + (i % 997) * 0.5, "ts": ts},
                )


def full_replay_ms(path: Path, upto: int) -> tuple[float, str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        store = build_store()
        t0 = time.perf_counter()
        replay_into(store, con, upto_seq=upto)
        return (time.perf_counter() - t0) * 1e3, store.state_hash()
    finally:
        con.close()


def timed_ms(fn, *args, **kwargs):
    t0 = time.perf_counter()
    value = fn(*args, **kwargs)
    return (time.perf_counter() - t0) * 1e3, value


@command(__doc__)
@bench_options(1_000_000, "Events in the journal built first.", rounds_default=3, n_name="--events")
@click.option("--points", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--seed", type=int, default=12, show_default=True)
def main(as_json: bool, rounds: int, events: int, points: int, seed: int) -> dict:
    rng = random.Random(seed)
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="tradelab-asof-") as tmp:
        path = Path(tmp) / "big.duckdb"
        t0 = time.perf_counter()
        build_journal(path, events)
        build_s = time.perf_counter() - t0
        last = Analytics(path).sql("SELECT max(seq) AS s FROM events")["s"][0]
        mismatches = 0
        for _ in range(rounds):
            # Interleaved: the baseline and the as-of points of one round run back to back.
            replay, _ = full_replay_ms(path, int(last))
            out.setdefault("full_replay_ms", []).append(replay)
            seqs = [rng.randint(1, int(last)) for _ in range(points)]
            for seq in seqs:
                ms, store = timed_ms(Analytics(path).state_at, seq)
                out.setdefault("cold_ms", []).append(ms)
            indexed = Analytics(path)
            out.setdefault("index_ms", []).append(timed_ms(indexed.index)[0])
            for seq in seqs:
                ms, store = timed_ms(indexed.state_at, seq)
                out.setdefault("indexed_ms", []).append(ms)
            # One point per round checked against a replay from seq 0 (outside the timings).
            mismatches += store.state_hash() != full_replay_ms(path, seq)[1]
            when = START_NS + rng.randint(0, events) * 20_000_000
            out.setdefault("seq_at_ms", []).append(timed_ms(Analytics(path).seq_at, when)[0])
        # The live road: the file held read-write here, as a running engine holds it.
        holder = duckdb.connect(str(path))
        try:
            live = Analytics(path)
            out["segments_index_ms"] = [timed_ms(live.index)[0]]
            for seq in (rng.randint(1, int(last)) for _ in range(points)):
                out.setdefault("segments_indexed_ms", []).append(timed_ms(live.state_at, seq)[0])
            assert live.asof.last["source"] == "segments", live.asof.last
        finally:
            holder.close()
    result = {name: statistics.median(values) for name, values in out.items()}
    baseline = result["full_replay_ms"]
    result.update(
        cold_max_ms=max(out["cold_ms"]),
        indexed_max_ms=max(out["indexed_ms"]),
        cold_ratio=result["cold_ms"] / baseline,
        indexed_ratio=result["indexed_ms"] / baseline,
        index_ratio=result["index_ms"] / baseline,
        events=int(last),
        points=len(out["cold_ms"]),
        rounds=rounds,
        hash_mismatches=mismatches,
        build_events_per_s=events / build_s,
    )
    if as_json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:20s} {value:14,.3f}")
    return result


if __name__ == "__main__":
    main()
