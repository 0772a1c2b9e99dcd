"""Soak: an Engine (default config: the writer process) under a steady submit rate for minutes.

Every --sample seconds it records the writer's and the engine's RSS (/proc/<pid>/status VmRSS),
the DuckDB WAL's size and the ack log's size, and the worst critical-ack latency since the last
sample. Printed: the table of samples, then the growth per minute of each size (least-squares
slope over the second half of the run, after warm-up), the peak of each and the ack latencies.
The WAL is checkpointed at 32 MB (~3.5 min at 2K events/s): run 5+ minutes to see one.

Load: `mark.updated` on 8 symbols at --rate events/s (paced on the clock in 10 ms slices) from
one producer thread, and one critical `pnl.session_reset` a second from another thread, which
blocks until durable (its latency is the ack figure).

Usage: .venv/bin/python benchmarks/soak.py [--minutes 3] [--rate 2000] [--sample 5]
       [--thread-writer] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tradelab.benchmarking import format_table, machine_info, median
from tradelab.engine import Engine
from tradelab.journal.acklog import acklog_dir, log_files

SYMBOLS = [f"SYM{i}" for i in range(8)]


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
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
    xs = [s["t_s"] / 60 for s in half]
    ys = [s[key] for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else None


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


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tradelab-soak-") as tmp:
        path = Path(tmp) / "soak.duckdb"
        engine = Engine(journal_path=str(path), writer_process=not args.thread_writer).start()
        metrics = engine.metrics()
        writer_pid = metrics["writer_pid"] or os.getpid()
        wal = [Path(str(path) + ".wal")]
        acks: list[float] = []
        counts = {"marks": 0}
        stop = threading.Event()
        threads = [
            threading.Thread(target=produce, args=(engine, args.rate, stop, counts), daemon=True),
            threading.Thread(target=criticals, args=(engine, stop, acks), daemon=True),
        ]
        samples: list[dict[str, Any]] = []
        started = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            end = started + args.minutes * 60
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
                if not args.json:
                    print(
                        "  ".join(f"{k}={v:.1f}" for k, v in samples[-1].items() if v is not None),
                        file=sys.stderr,
                        flush=True,
                    )
                if now >= end:
                    break
                time.sleep(min(args.sample, max(0.0, end - now)))
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
            engine.stop(timeout=120)
    minutes = samples[-1]["t_s"] / 60 or 1.0
    growth = {
        f"{key}_per_min": slope_per_minute(samples, key)
        for key in ("writer_rss_mb", "engine_rss_mb", "wal_mb", "acklog_mb")
    }
    # A checkpoint or a retired log file makes a saw-tooth: the peak is the bound that matters.
    peaks = {
        f"{key}_max": max((s[key] for s in samples if s[key] is not None), default=None)
        for key in ("writer_rss_mb", "wal_mb", "acklog_mb")
    }
    ordered = sorted(acks)
    return {
        "layout": "thread" if args.thread_writer else "process",
        "minutes": args.minutes,
        "rate_offered": args.rate,
        "events_per_s": samples[-1]["events"] / (minutes * 60),
        "samples": samples,
        **growth,
        **peaks,
        "critical_acks": len(acks),
        "ack_p50_ms": median(ordered) if ordered else None,
        "ack_p99_ms": ordered[int(0.99 * (len(ordered) - 1))] if ordered else None,
        "ack_max_ms": ordered[-1] if ordered else None,
        "machine": machine_info(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="mark events/s offered")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--thread-writer", action="store_true", help="writer_process=False")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    keys = list(result["samples"][0])
    print(format_table(keys, [[s[k] for k in keys] for s in result["samples"]]))
    print()
    rows = [[k, v] for k, v in result.items() if k not in ("samples", "machine")]
    print(format_table(["figure", "value"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
