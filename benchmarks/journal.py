"""Journal throughput and critical-ack latency through `Engine.submit`, beside the disk floors.

Figures (medians over interleaved rounds, all measured in this run):
  floor_fdatasync_4k_us      one 4 KB pwrite + fdatasync
  floor_duckdb_commit_us     one single-row DuckDB INSERT (autocommit)
  append_events_per_s        sustained submit -> durable (flush) of mixed events, 1 % critical,
                             from one producer thread while the kernel applies them
  critical_ack_p50_ms/p99    submit() -> return of a critical event, during that storm
  two_producers_*            the same mix from a feed thread (ordinary) and a broker thread
                             (critical) at once, both flat out. The broker's criticals are a
                             chain of blocking submits, so the run lasts at least
                             n_critical x ack latency: events/s <= 100 / ack (about 110K/s at
                             a 0.9 ms ack), whatever the engine's capacity
  paced_*                    capacity at an offered rate (--paced-rate, default 100K/s) with
                             1 % critical from --brokers broker threads, each critical paced
                             on the clock like live fills: the durable rate reached (equal to
                             the offered rate when the engine keeps up) and the ack latencies

Every engine figure is measured for each writer layout (`--layouts`, all by default):
  thread   the journal writer on a thread of the engine's process (writer_process=False)
  process  the writer in a process of its own (the default)
  pinned   that, plus pin_cpus=True: the engine's threads kept off the writer's CPU

Usage: .venv/bin/python benchmarks/journal.py [--events 200000] [--rounds 3]
       [--paced-rate 100000] [--paced-seconds 3] [--brokers 8] [--layouts thread,process,pinned]
       [--json]
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import click
import duckdb

from tradelab.benchmarking import percentiles
from tradelab.benchmarking.options import bench_options, command, positive_float
from tradelab.engine import Engine


def floor_fdatasync(directory: Path, n: int = 200) -> float:
    path = directory / "floor.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    block = b"x" * 4096
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return statistics.median(times) * 1e6


def floor_duckdb_commit(directory: Path, n: int = 200) -> float:
    path = directory / "floor.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (a BIGINT, b VARCHAR)")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        con.execute("INSERT INTO t VALUES (?, ?)", [i, "x"])
        times.append(time.perf_counter() - t0)
    con.close()
    return statistics.median(times) * 1e6


def trade_payload(i: int) -> dict:
    return {
        "position_id": "bench:NIFTY24DEC24000CE",
        "strategy": "bench",
        "symbol": "NIFTY24DEC24000CE",
        "lot_size": 75,
        "quantity": 75,
        "side": "BUY" if i % 2 == 0 else "SELL",
        "price": 100.0 + (i % 50) * 0.05,
        "fee": 20.0,
        "trade_id": f"T{i}",
    }


SYMBOLS = ("NIFTY", "NIFTY24DEC24000CE", "NIFTY24DEC24000PE", "NIFTY24DEC24500CE")


def ack_percentiles_ms(acks: list[float]) -> dict[str, float]:
    """p50 and p99 of critical acknowledgement times (seconds in, milliseconds out)."""
    p50, p99 = percentiles(acks, 50, 99)
    return {"ack_p50_ms": p50 * 1e3, "ack_p99_ms": p99 * 1e3}


def run_until_durable(engine: Engine, threads: list[threading.Thread]) -> None:
    """Run the producer threads to the end, then wait until all they submitted is durable."""
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.flush()


# How the journal writer runs: on a thread of the engine's process, in a process of its own,
# or in its own process with the engine's threads kept off its CPU (EngineConfig.pin_cpus).
LAYOUTS = {
    "thread": {"writer_process": False},
    "process": {"writer_process": True},
    "pinned": {"writer_process": True, "pin_cpus": True},
}


def start_engine(path: Path, layout: str) -> Engine:
    engine = Engine(
        journal_path=str(path),
        snapshot_every_events=0,
        snapshot_every_seconds=0,
        **LAYOUTS[layout],
    )
    return engine.start()


def append_storm(directory: Path, events: int, layout: str, critical_every: int = 100) -> dict:
    """One producer thread submits `events` (1/critical_every critical); wait until all durable."""
    engine = start_engine(directory / f"storm-{layout}.duckdb", layout)
    submit = engine.submit
    acks = []
    t0 = time.perf_counter()
    for i in range(events):
        if i % critical_every == critical_every - 1:
            s = time.perf_counter()
            submit("trade.executed", trade_payload(i), key=f"T{i}")
            acks.append(time.perf_counter() - s)
        else:
            submit("mark.updated", {"symbol": SYMBOLS[i & 3], "price": 24000.0 + (i % 997) * 0.5})
    engine.flush()
    elapsed = time.perf_counter() - t0
    groups = engine.metrics()["groups_committed"]
    engine.stop()
    return {
        "events_per_s": events / elapsed,
        **ack_percentiles_ms(acks),
        "groups": groups,
    }


def append_two_producers(
    directory: Path, events: int, layout: str, critical_every: int = 100
) -> dict:
    """A feed thread submits the ordinary 99 %, a broker thread the critical 1 %, concurrently.

    This is how the engine is fed live (ticks/marks vs fills); the feed never waits on a commit.
    """

    engine = start_engine(directory / f"storm2-{layout}.duckdb", layout)
    n_critical = events // critical_every
    acks: list[float] = []

    def feed() -> None:
        submit = engine.submit
        for i in range(events - n_critical):
            submit("mark.updated", {"symbol": SYMBOLS[i & 3], "price": 24000.0 + (i % 997) * 0.5})

    def broker() -> None:
        submit = engine.submit
        for i in range(n_critical):
            s = time.perf_counter()
            submit("trade.executed", trade_payload(i), key=f"T{i}")
            acks.append(time.perf_counter() - s)

    t0 = time.perf_counter()
    run_until_durable(engine, [threading.Thread(target=feed), threading.Thread(target=broker)])
    elapsed = time.perf_counter() - t0
    engine.stop()
    return {
        "events_per_s": events / elapsed,
        **ack_percentiles_ms(acks),
    }


def append_paced(
    directory: Path,
    rate: float,
    seconds: float,
    layout: str,
    brokers: int = 8,
    critical_every: int = 100,
) -> dict:
    """Offer `rate` events/s for `seconds`: a feed thread submits the ordinary events on a
    clock schedule, `brokers` threads the critical 1/critical_every, each blocking on its ack.

    Returns the durable rate actually reached (all submitted events over the time until the
    last one is durable) and the ack latencies; a broker that falls behind its schedule
    submits its next critical at once (it never skips one), so lost pace shows as lower rate.
    """

    engine = start_engine(directory / f"paced-{layout}.duckdb", layout)
    total = int(rate * seconds)
    n_critical = total // critical_every
    n_ordinary = total - n_critical
    acks: list[float] = []
    t0 = time.perf_counter()

    def feed() -> None:
        submit = engine.submit
        sent = 0
        while sent < n_ordinary:
            due = min(n_ordinary, int((time.perf_counter() - t0) * rate * (n_ordinary / total)))
            if due <= sent:
                time.sleep(0.0002)
                continue
            for i in range(sent, due):
                submit("mark.updated", {"symbol": SYMBOLS[i & 3], "price": 24000.0 + i % 997})
            sent = due

    def broker(b: int) -> None:
        submit = engine.submit
        mine = range(b, n_critical, brokers)
        interval = critical_every / rate  # one critical per `critical_every` events offered
        for i in mine:
            delay = t0 + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            s = time.perf_counter()
            submit("trade.executed", trade_payload(i), key=f"T{i}")
            acks.append(time.perf_counter() - s)

    threads = [threading.Thread(target=feed)]
    threads += [threading.Thread(target=broker, args=(b,)) for b in range(brokers)]
    run_until_durable(engine, threads)
    elapsed = time.perf_counter() - t0
    engine.stop()
    return {
        "offered_per_s": rate,
        "durable_per_s": total / elapsed,
        **ack_percentiles_ms(acks),
    }


def parse_layouts(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    """--layouts: comma-separated names from LAYOUTS, at least one."""
    layouts = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in layouts if name not in LAYOUTS]
    if unknown or not layouts:
        raise click.BadParameter(
            f"{value!r} names unknown layout(s) {unknown}; choose from {', '.join(LAYOUTS)}"
        )
    return layouts


@command(__doc__)
@bench_options(200_000, "Events per run (1 % critical).", rounds_default=3, n_name="--events")
@positive_float("--paced-rate", 100_000.0, "Events/s offered in the paced run.")
@positive_float("--paced-seconds", 3.0, "Length of the paced run.")
@click.option(
    "--brokers",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Broker threads submitting criticals in the paced run.",
)
@click.option(
    "--layouts",
    default=",".join(LAYOUTS),
    show_default=True,
    callback=parse_layouts,
    help="Comma-separated writer layouts to measure: " + ", ".join(LAYOUTS),
)
def main(
    as_json: bool,
    rounds: int,
    events: int,
    paced_rate: float,
    paced_seconds: float,
    brokers: int,
    layouts: list[str],
) -> dict:
    per_round: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        per_round.setdefault(name, []).append(value)

    with tempfile.TemporaryDirectory(prefix="tradelab-bench-") as tmp:
        for r in range(rounds):
            directory = Path(tmp) / f"round{r}"
            directory.mkdir()
            # Interleaved: each round measures the floors and every layout back to back.
            record("floor_fdatasync_4k_us", floor_fdatasync(directory))
            record("floor_duckdb_commit_us", floor_duckdb_commit(directory))
            for layout in layouts:
                storm = append_storm(directory, events, layout)
                record(f"{layout}.append_events_per_s", storm["events_per_s"])
                record(f"{layout}.critical_ack_p50_ms", storm["ack_p50_ms"])
                record(f"{layout}.critical_ack_p99_ms", storm["ack_p99_ms"])
                record(f"{layout}.commit_groups", storm["groups"])
                two = append_two_producers(directory, events, layout)
                record(f"{layout}.two_producers_events_per_s", two["events_per_s"])
                record(f"{layout}.two_producers_ack_p50_ms", two["ack_p50_ms"])
                record(f"{layout}.two_producers_ack_p99_ms", two["ack_p99_ms"])
                paced = append_paced(directory, paced_rate, paced_seconds, layout, brokers)
                record(f"{layout}.paced_durable_per_s", paced["durable_per_s"])
                record(f"{layout}.paced_ack_p50_ms", paced["ack_p50_ms"])
                record(f"{layout}.paced_ack_p99_ms", paced["ack_p99_ms"])
    result = {name: statistics.median(values) for name, values in per_round.items()}
    result["events"] = events
    result["rounds"] = rounds
    result["critical_fraction"] = 0.01
    result["paced_offered_per_s"] = paced_rate
    result["paced_brokers"] = brokers
    if "thread" in layouts:
        for layout in layouts:
            result[f"{layout}.paced_vs_thread"] = (
                result[f"{layout}.paced_durable_per_s"] / result["thread.paced_durable_per_s"]
            )
    if as_json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:36s} {value:14,.2f}")
    return result


if __name__ == "__main__":
    main()
