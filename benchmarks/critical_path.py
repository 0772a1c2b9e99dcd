"""The critical path: one producer, one critical event at a time, beside its peers on one disk.

Figures (medians over interleaved rounds; every contender writes to the same temp dir):
  engine.*    `Engine.submit("trade.executed", ..., key=...)` from one thread, each call returning
              once the event is durable (default EngineConfig: writer process + ack log), built
              as benchmarks/journal.py builds it: real DuckDB journal, no snapshots
  sqlite.*    the event-store peer: SQLite in WAL mode with synchronous=FULL, one INSERT of a
              similar JSON row and one commit per event
  floor.*     one append of one encoded event's size (plus the ack log's record header) and
              os.fdatasync per event, on a file held open: what the ack log does per critical
  floor_in_place.*  the same records written over a preallocated, already synced file: its size
              never changes, so fdatasync has no file metadata to commit (SQLite's reused WAL)
  stream.*    the critical ack inside a paced stream: --feeders threads submit `mark.updated`
              at (1 - 1 %) of --stream-rate, one thread a critical event every
              100 / --stream-rate s (2.5 ms at 40K/s), so 1 % are critical
  stream_floor.*  the same stream with its 1 % replaced by floor_in_place's record and sync,
              timed at the same cadence from the same kind of thread: what the machine's sync
              alone costs under that load (the CPU the stream takes delays every wake-up)
  *_vs_floor  median of per-round ratios to the floor measured in the same round
Each contender reports acks/s (one producer, back to back) and submit latency p50 / p99 / max.

Usage: PYTHONPATH=. .venv/bin/python benchmarks/critical_path.py [--events 2000] [--rounds 5]
       [--stream-rate 40000] [--stream-seconds 3] [--feeders 2] [--engine KEY=VALUE ...] [--json]
"""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click
import msgspec

# Helpers shared with the journal benchmark (this directory is on sys.path when run as a script).
from journal import LAYOUTS, SYMBOLS, trade_payload

from tradelab.benchmarking import percentiles
from tradelab.benchmarking.options import (
    bench_options,
    command,
    engine_option,
    positive_float,
    tuned_collector_option,
)
from tradelab.engine import Engine
from tradelab.events import Event

ACKLOG_RECORD_HEADER = 28  # tradelab.journal.acklog: magic, crc32, first seq, last seq, length
WARMUP = 50  # events per contender before timing: page cache, DuckDB and SQLite warm


def latency_figures(seconds: list[float]) -> dict[str, float]:
    """p50 / p99 / max of per-event latencies (seconds in, milliseconds out)."""
    p50, p99 = percentiles(seconds, 50, 99)
    return {"p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3, "max_ms": max(seconds) * 1e3}


def encoded_event_size(i: int = 0) -> int:
    """Bytes one critical trade event takes in the ack log: its JSON batch + record header."""
    event = Event(10**6 + i, time.time_ns(), "trade.executed", f"T{i}", trade_payload(i), True, 1)
    return len(msgspec.json.encode([event])) + ACKLOG_RECORD_HEADER


def timed_loop(n: int, one: Callable[[int], None]) -> dict[str, float]:
    """Run `one(i)` for WARMUP + n events; acks/s and latency figures of the last n."""
    for i in range(WARMUP):
        one(i)
    times = []
    t0 = time.perf_counter()
    for i in range(WARMUP, WARMUP + n):
        s = time.perf_counter()
        one(i)
        times.append(time.perf_counter() - s)
    elapsed = time.perf_counter() - t0
    return {"acks_per_s": n / elapsed, **latency_figures(times)}


def start_engine(path: Path, overrides: dict) -> Engine:
    """The engine under test: as benchmarks/journal.py's "process" layout, plus `overrides`."""
    settings = {"snapshot_every_events": 0, "snapshot_every_seconds": 0, **LAYOUTS["process"]}
    return Engine(journal_path=str(path), **{**settings, **overrides}).start()


def run_engine(directory: Path, n: int, overrides: dict) -> dict[str, float]:
    engine = start_engine(directory / "critical.duckdb", overrides)
    submit = engine.submit
    try:
        return timed_loop(n, lambda i: submit("trade.executed", trade_payload(i), key=f"T{i}"))
    finally:
        engine.stop()


def run_sqlite(directory: Path, n: int) -> dict[str, float]:
    """One committed INSERT per event, as a SQLite event-store recorder writes an event."""
    con = sqlite3.connect(str(directory / "events.sqlite"))
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute(
        "CREATE TABLE IF NOT EXISTS stored_events (seq INTEGER PRIMARY KEY, ts INTEGER,"
        " topic TEXT, key TEXT, critical INTEGER, schema_version INTEGER, payload TEXT)"
    )
    con.commit()
    encode = msgspec.json.encode

    def one(i: int) -> None:
        payload = encode(trade_payload(i)).decode()
        con.execute(
            "INSERT INTO stored_events VALUES (?, ?, ?, ?, ?, ?, ?)",
            (i + 1, time.time_ns(), "trade.executed", f"T{i}", 1, 1, payload),
        )
        con.commit()

    try:
        return timed_loop(n, one)
    finally:
        con.close()


def run_floor(directory: Path, n: int, size: int) -> dict[str, float]:
    """Append `size` bytes and fdatasync, per event, to a file kept open (as the ack log is)."""
    fd = os.open(directory / "floor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    record = b"x" * size

    def one(_: int) -> None:
        os.write(fd, record)
        os.fdatasync(fd)

    try:
        return timed_loop(n, one)
    finally:
        os.close(fd)


def run_floor_in_place(directory: Path, n: int, size: int) -> dict[str, float]:
    """The same records written over a file already written with zeros and synced, as SQLite
    reuses its WAL: the file's size never changes, so fdatasync has no metadata to commit."""
    fd = os.open(directory / "floor-in-place.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, bytes(size * (WARMUP + n) + 4096))
    os.fsync(fd)
    record = b"x" * size

    def one(i: int) -> None:
        os.pwrite(fd, record, i * size)
        os.fdatasync(fd)

    try:
        return timed_loop(n, one)
    finally:
        os.close(fd)


def in_place_sync(path: Path, size: int, count: int) -> tuple[Callable[[int], None], int]:
    """One record of `size` bytes written over a preallocated, synced file and fdatasync'd:
    the ack log's own work for a critical event, nothing else. Returns (call, fd)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, bytes(size * count + 4096))
    os.fsync(fd)
    record = b"x" * size

    def one(i: int) -> None:
        os.pwrite(fd, record, (i % count) * size)
        os.fdatasync(fd)

    return one, fd


def run_stream(
    directory: Path,
    rate: float,
    seconds: float,
    feeders: int,
    overrides: dict,
    floor_size: int = 0,
) -> dict[str, float]:
    """A paced stream of `rate` events/s, 1 % critical from one thread; its critical acks.

    With `floor_size`, the critical thread does not submit its 1 %: it times the floor in place
    (one record written and fdatasync'd, `in_place_sync`) at the same cadence while the feeders
    stream into the engine: the sync's own latency on this machine under the stream's load."""
    engine = start_engine(directory / "stream.duckdb", overrides)
    critical_interval = 100.0 / rate
    feeder_rate = rate * 0.99 / feeders
    acks: list[float] = []
    sent = [0] * feeders
    floor_fd = None
    if floor_size:
        one, floor_fd = in_place_sync(directory / "stream-floor.log", floor_size, 4096)
    else:
        submit_critical = engine.submit

        def one(i: int) -> None:
            submit_critical("trade.executed", trade_payload(i), key=f"T{i}")

    t0 = time.perf_counter() + 0.05  # every thread starts on the same clock
    end = t0 + seconds

    def feed(f: int) -> None:
        submit = engine.submit
        done = 0
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            due = int((now - t0) * feeder_rate)
            if due <= done:
                time.sleep(0.0002)
                continue
            for i in range(done, due):
                submit("mark.updated", {"symbol": SYMBOLS[i & 3], "price": 24000.0 + i % 997})
            done = due
        sent[f] = done

    def critical() -> None:
        i = 0
        while True:
            due = t0 + i * critical_interval
            if due >= end:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            s = time.perf_counter()
            one(i)
            acks.append(time.perf_counter() - s)
            i += 1

    threads = [threading.Thread(target=feed, args=(f,)) for f in range(feeders)]
    threads.append(threading.Thread(target=critical))
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        submitted = sum(sent) + (0 if floor_size else len(acks))
        offered = submitted / (time.perf_counter() - t0)
        engine.flush()
        durable = submitted / (time.perf_counter() - t0)
    finally:
        engine.stop()
        if floor_fd is not None:
            os.close(floor_fd)
    return {
        "offered_per_s": offered,
        "durable_per_s": durable,
        "criticals": len(acks),
        **latency_figures(acks),
    }


ROWS = (  # (label, key prefix)
    ("engine: Engine.submit, critical", "engine"),
    ("SQLite WAL, synchronous=FULL, commit/event", "sqlite"),
    ("floor: append + fdatasync", "floor"),
    ("  same, written in place (preallocated file)", "floor_in_place"),
)


def print_table(result: dict) -> None:
    print(
        f"critical path, one producer ({result['events']} events x {result['rounds']} rounds,"
        f" medians; floor record {result['floor_record_bytes']} B)"
    )
    print(
        f"{'contender':44s} {'acks/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'max ms':>7s}"
        f" {'p50/floor':>9s} {'p99/floor':>9s}"
    )
    for label, key in ROWS:
        print(
            f"{label:44s} {result[key + '.acks_per_s']:8,.0f} {result[key + '.p50_ms']:7.3f}"
            f" {result[key + '.p99_ms']:7.3f} {result[key + '.max_ms']:7.2f}"
            f" {result[key + '.p50_vs_floor']:9.2f} {result[key + '.p99_vs_floor']:9.2f}"
        )
    print(
        f"stream: {result['stream_rate']:,.0f}/s offered, 1 % critical ->"
        f" reached {result['stream.offered_per_s']:,.0f}/s submitted,"
        f" {result['stream.durable_per_s']:,.0f}/s durable;"
        f" critical ack p50 {result['stream.p50_ms']:.3f} ms, p99 {result['stream.p99_ms']:.3f} ms,"
        f" max {result['stream.max_ms']:.2f} ms"
    )
    print(
        f"stream floor (the same stream; the 1 % replaced by the floor in place, timed):"
        f" p50 {result['stream_floor.p50_ms']:.3f} ms, p99 {result['stream_floor.p99_ms']:.3f} ms,"
        f" max {result['stream_floor.max_ms']:.2f} ms; engine / floor: p50"
        f" {result['stream.p50_vs_floor']:.2f}x, p99 {result['stream.p99_vs_floor']:.2f}x"
    )
    print(
        f"targets: engine p50 <= 1.3x floor: {result['engine.p50_vs_floor']:.2f}x;"
        f" engine p99 <= 1.5 ms: {result['engine.p99_ms']:.2f} ms;"
        f" stream p99 <= 2 ms: {result['stream.p99_ms']:.2f} ms"
    )


@command(__doc__)
@bench_options(2000, "Critical events per contender.", n_name="--events")
@positive_float("--stream-rate", 40_000.0, "Events/s offered in the stream run.")
@positive_float("--stream-seconds", 3.0, "Length of the stream run.")
@click.option(
    "--feeders",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Threads submitting the stream's ordinary events.",
)
@engine_option
@tuned_collector_option
def main(
    as_json: bool,
    rounds: int,
    events: int,
    stream_rate: float,
    stream_seconds: float,
    feeders: int,
    engine_overrides: dict,
) -> dict:
    size = encoded_event_size()
    per_round: dict[str, list[float]] = {}

    def record(prefix: str, figures: dict[str, float]) -> None:
        for name, value in figures.items():
            per_round.setdefault(f"{prefix}.{name}", []).append(value)

    with tempfile.TemporaryDirectory(prefix="tradelab-bench-") as tmp:
        for r in range(rounds):
            directory = Path(tmp) / f"round{r}"
            directory.mkdir()
            # Interleaved: engine, SQLite and the floor in turn, then the stream, each round.
            measured = {
                "engine": run_engine(directory, events, engine_overrides),
                "sqlite": run_sqlite(directory, events),
                "floor": run_floor(directory, events, size),
                "floor_in_place": run_floor_in_place(directory, events, size),
            }
            for key, figures in measured.items():
                record(key, figures)
                floor = measured["floor"]
                record(
                    key,
                    {
                        "p50_vs_floor": figures["p50_ms"] / floor["p50_ms"],
                        "p99_vs_floor": figures["p99_ms"] / floor["p99_ms"],
                    },
                )
            stream = run_stream(directory, stream_rate, stream_seconds, feeders, engine_overrides)
            stream_floor = run_stream(
                directory, stream_rate, stream_seconds, feeders, engine_overrides, size
            )
            stream["p50_vs_floor"] = stream["p50_ms"] / stream_floor["p50_ms"]
            stream["p99_vs_floor"] = stream["p99_ms"] / stream_floor["p99_ms"]
            record("stream", stream)
            record("stream_floor", stream_floor)
    result: dict = {name: statistics.median(values) for name, values in per_round.items()}
    result.update(
        events=events,
        rounds=rounds,
        floor_record_bytes=size,
        stream_rate=stream_rate,
        stream_seconds=stream_seconds,
        feeders=feeders,
        engine=engine_overrides,
        collector_thresholds=gc.get_threshold(),  # --tuned-collector: (50000, 20, 20)
    )
    if as_json:
        print(json.dumps(result))
    else:
        print_table(result)
    return result


if __name__ == "__main__":
    main()
