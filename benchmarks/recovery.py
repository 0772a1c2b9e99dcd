"""Restart and replay speed of a journal with 1M events and a snapshot every 100K.

Figures (medians over rounds, all from one journal built in this run):
  restart_clean_ms         Engine.start() to `running` after a clean stop (snapshot at the end)
  recover_tail_100k_ms     open + verify + newest snapshot + replay of a 99,999-event tail
  full_replay_events_per_s fold of all events from seq 0 into a fresh store
  read_decode_events_per_s the read + decode part of that replay alone (no store)
  store_apply_events_per_s the store.apply_batch part alone (events already in memory)

Usage: .venv/bin/python benchmarks/recovery.py [--events 1000000] [--rounds 3] [--json]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from tradelab.benchmarking.options import bench_options, command
from tradelab.engine import Engine, build_store
from tradelab.journal import Journal, recover, replay_into
from tradelab.journal.event_rows import iter_event_batches

SYMBOLS = ("NIFTY", "NIFTY24DEC24000CE", "NIFTY24DEC24000PE", "NIFTY24DEC24500CE")


def build_journal(path: Path, events: int) -> None:
    """Mixed events through Engine.submit; a snapshot every 100K events (by the engine)."""
    with Engine(
        journal_path=str(path),
        snapshot_every_events=100_000,
        snapshot_every_seconds=0,
        segments_enabled=False,
    ) as engine:
        submit = engine.submit
        for i in range(events - 20):  # the engine's own lifecycle events make up the rest
            if i % 500 == 499:
                submit(
                    "order.submitted",
                    {"order_id": f"O{i}", "symbol": SYMBOLS[1], "side": "BUY", "quantity": 75},
                )
            else:
                submit(
                    "mark.updated", {"symbol": SYMBOLS[i & 3], "price": 24000.0 + (i % 997) * 0.5}
                )


def restart_clean(path: Path) -> float:
    engine = Engine(journal_path=str(path), snapshot_every_seconds=0, segments_enabled=False)
    t0 = time.perf_counter()
    engine.start()
    elapsed = time.perf_counter() - t0
    engine.stop()
    return elapsed


def recover_from(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    journal = Journal(path)
    report = recover(journal, build_store())
    elapsed = time.perf_counter() - t0
    journal.close()
    return elapsed, report.events_replayed


def full_replay(path: Path) -> tuple[float, float, float, int]:
    con = duckdb.connect(str(path), read_only=True)
    t0 = time.perf_counter()
    n = replay_into(build_store(), con)
    replay = time.perf_counter() - t0
    t0 = time.perf_counter()
    batches = list(iter_event_batches(con))
    read = time.perf_counter() - t0
    store = build_store()
    t0 = time.perf_counter()
    for batch in batches:
        store.apply_batch(batch)
    apply = time.perf_counter() - t0
    con.close()
    return n / replay, n / read, n / apply, n


@command(__doc__)
@bench_options(1_000_000, "Events in the journal built first.", rounds_default=3, n_name="--events")
def main(as_json: bool, rounds: int, events: int) -> dict:
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="tradelab-recovery-") as tmp:
        path = Path(tmp) / "big.duckdb"
        t0 = time.perf_counter()
        build_journal(path, events)
        build_s = time.perf_counter() - t0
        for _ in range(rounds):
            out.setdefault("restart_clean_ms", []).append(restart_clean(path) * 1e3)
        # Drop the snapshots of the clean stops: the newest left is the periodic one just short
        # of 100K events behind the end (the worst case a crash leaves).
        con = duckdb.connect(str(path))
        last = con.execute("SELECT max(seq) FROM events").fetchone()[0]
        con.execute("DELETE FROM snapshots WHERE last_seq > ?", [last - 95_000])
        con.close()
        tail = 0
        for _ in range(rounds):
            seconds, tail = recover_from(path)
            out.setdefault("recover_tail_ms", []).append(seconds * 1e3)
        for _ in range(rounds):
            replay, read, apply, n = full_replay(path)
            out.setdefault("full_replay_events_per_s", []).append(replay)
            out.setdefault("read_decode_events_per_s", []).append(read)
            out.setdefault("store_apply_events_per_s", []).append(apply)
    result = {name: statistics.median(values) for name, values in out.items()}
    result.update(events=n, tail_replayed=tail, rounds=rounds, build_events_per_s=events / build_s)
    if as_json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:28s} {value:14,.1f}")
    return result


if __name__ == "__main__":
    main()
