"""Soak: an Engine (default config: the writer process) under a steady submit rate for minutes.

Every --sample seconds it records the writer's and the engine's RSS (/proc/<pid>/status VmRSS),
the DuckDB WAL's size and the ack log's size, and the worst critical-ack latency since the last
sample. Printed: the table of samples, then the growth per minute of each size (least-squares
slope over the second half of the run, after warm-up), the peak of each and the ack latencies.
The WAL is checkpointed at 8 MB (~50 s at 2K events/s): run 5+ minutes to see several.

Load: `mark.updated` on 8 symbols at --rate events/s (paced on the clock in 10 ms slices) from
one producer thread, and one critical `pnl.session_reset` a second from another thread, which
blocks until durable (its latency is the ack figure).

Usage: .venv/bin/python benchmarks/soak.py [--minutes 3] [--rate 2000] [--sample 5]
       [--thread-writer] [--json]
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click
import psutil

from tradelab.benchmarking import format_table, machine_info, percentiles
from tradelab.benchmarking.options import command, json_option, positive_float
from tradelab.engine import Engine
from tradelab.journal.acklog import acklog_dir, log_files

SYMBOLS = [f"SYM{i}" for i in range(8)]


def rss_mb(pid: int) -> float | None:
    """Resident set size (VmRSS) of a process in MB; None once it is gone."""
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return None


def size_mb(paths: list[Path]) -> float:
    total = 0
    for path in paths:
        with contextlib.suppress(FileNotFoundError):  # a log file retired meanwhile
            total += path.stat().st_size
    return total / (1 << 20)


def slope_per_minute(samples: list[dict[str, Any]], key: str) -> float | None:
    """Least-squares growth per minute over the second half of the samples (after warm-up)."""
    half = [s for s in samples[len(samples) // 2 :] if s[key] is not None]
    if len(half) < 2:
        return None
    try:
        return statistics.linear_regression(
            [s["t_s"] / 60 for s in half], [s[key] for s in half]
        ).slope
    except statistics.StatisticsError:  # every sample at the same time
        return None


def produce(engine: Engine, rate: float, stop: threading.Event, counts: dict[str, int]) -> None:
    slice_s = 0.01
    per_slice = rate * slice_s
    started = time.monotonic()
    owed = 0.0
    n = 0
    while not stop.is_set():
        owed += per_slice
        while owed >= 1:
            owed -= 1
            n += 1
            symbol = SYMBOLS[n % len(SYMBOLS)]
            engine.submit("mark.updated", {"symbol": symbol, "price": 100.0 + (n % 1000) * 0.05})
        counts["marks"] = n
        next_at = started + (n / rate)
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, slice_s))


def criticals(engine: Engine, stop: threading.Event, acks: list[float]) -> None:
    day = 0
    while not stop.wait(1.0):
        day += 1
        t0 = time.perf_counter()
        engine.submit("pnl.session_reset", {"session_date": f"day-{day}"}, timeout=60)
        acks.append((time.perf_counter() - t0) * 1000)


def run(
    *, minutes: float, rate: float, sample_s: float, thread_writer: bool, progress: bool
) -> dict[str, Any]:
    """Run the soak; with `progress`, print each sample to stderr as it is taken."""
    with tempfile.TemporaryDirectory(prefix="tradelab-soak-") as tmp:
        path = Path(tmp) / "soak.duckdb"
        engine = Engine(journal_path=str(path), writer_process=not thread_writer).start()
        metrics = engine.metrics()
        writer_pid = metrics["writer_pid"] or os.getpid()
        wal = [Path(str(path) + ".wal")]
        acks: list[float] = []
        counts = {"marks": 0}
        stop = threading.Event()
        threads = [
            threading.Thread(target=produce, args=(engine, rate, stop, counts), daemon=True),
            threading.Thread(target=criticals, args=(engine, stop, acks), daemon=True),
        ]
        samples: list[dict[str, Any]] = []
        started = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            end = started + minutes * 60
            seen_acks = 0
            while True:
                now = time.monotonic()
                new_acks = acks[seen_acks:]
                seen_acks += len(new_acks)
                m = engine.metrics()
                samples.append(
                    {
                        "t_s": round(now - started, 1),
                        "events": m["version"],
                        "durable": m["durable_seq"],
                        "writer_rss_mb": rss_mb(writer_pid),
                        "engine_rss_mb": rss_mb(os.getpid()),
                        "wal_mb": size_mb(wal),
                        "acklog_mb": size_mb(log_files(acklog_dir(path))),
                        "ack_max_ms": max(new_acks) if new_acks else None,
                    }
                )
                if progress:
                    print(
                        "  ".join(f"{k}={v:.1f}" for k, v in samples[-1].items() if v is not None),
                        file=sys.stderr,
                        flush=True,
                    )
                if now >= end:
                    break
                time.sleep(min(sample_s, max(0.0, end - now)))
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
            engine.stop(timeout=120)
    elapsed_min = samples[-1]["t_s"] / 60 or 1.0
    growth = {
        f"{key}_per_min": slope_per_minute(samples, key)
        for key in ("writer_rss_mb", "engine_rss_mb", "wal_mb", "acklog_mb")
    }
    # A checkpoint or a retired log file makes a saw-tooth: the peak is the bound that matters.
    peaks = {
        f"{key}_max": max((s[key] for s in samples if s[key] is not None), default=None)
        for key in ("writer_rss_mb", "wal_mb", "acklog_mb")
    }
    p50, p99 = percentiles(acks, 50, 99) if acks else (None, None)
    return {
        "layout": "thread" if thread_writer else "process",
        "minutes": minutes,
        "rate_offered": rate,
        "events_per_s": samples[-1]["events"] / (elapsed_min * 60),
        "samples": samples,
        **growth,
        **peaks,
        "critical_acks": len(acks),
        "ack_p50_ms": p50,
        "ack_p99_ms": p99,
        "ack_max_ms": max(acks, default=None),
        "machine": machine_info(),
    }


@command(__doc__)
@positive_float("--minutes", 3.0, "Length of the soak.")
@positive_float("--rate", 2000.0, "mark.updated events/s offered.")
@positive_float("--sample", 5.0, "Seconds between samples.")
@click.option("--thread-writer", is_flag=True, help="writer_process=False.")
@json_option
def main(minutes: float, rate: float, sample: float, thread_writer: bool, as_json: bool) -> None:
    result = run(
        minutes=minutes,
        rate=rate,
        sample_s=sample,
        thread_writer=thread_writer,
        progress=not as_json,
    )
    if as_json:
        print(json.dumps(result, indent=2))
        return
    keys = list(result["samples"][0])
    print(format_table(keys, [[s[k] for k in keys] for s in result["samples"]]))
    print()
    rows = [[k, v] for k, v in result.items() if k not in ("samples", "machine")]
    print(format_table(["figure", "value"], rows))


if __name__ == "__main__":
    main()
