"""Replicas attached to a running engine through the bridge (tradelab.connect), each replica in
a process of its own as a notebook on another machine would be.

Figures (medians over rounds, all measured in this run):
  lag_p50_ms / lag_p99_ms   one replica, the engine paced at --rate events/s for --seconds:
                            from the kernel's stamp (event.ts) to the replica having applied it
  catch_up_resume_s         a replica cut off (CuttableLink) while --missed events were made
                            durable, then let back: from the link's restore to the replica at
                            the engine's seq (the events come from the server's history)
  catch_up_resume_replica_cpu_s   CPU seconds the replica's process spent catching up
  catch_up_snapshot_s       the same with a history shorter than the gap: a fresh snapshot
  throughput_*              engine flat out (--events submits, until durable) with no bridge;
                            with the bridge and nothing connected; with --replicas protocol
                            readers (one process, discarding frames: what serving N replicas
                            costs the engine's process; --idle-readers runs that process at
                            SCHED_IDLE); with --replicas full replicas, one
                            process each on this host. cost_* = 1 - rate / rate with no bridge
  engine_cpu_us_per_event_* CPU of the engine's process (kernel, submitter, bridge server) per
                            event, storm start to every replica in step; cpu_cost_* = that /
                            that with no bridge - 1 (steadier than rates on a shared machine)
  paired_cost_* / paired_cpu_cost_*   the same costs taken within each round (that round's
                            case against that round's no-bridge run), median and range over
                            rounds: drift between rounds cancels out
  bridge_server_cpu_us_per_event_*   of which the bridge server's thread (its event loop)

Usage: .venv/bin/python benchmarks/replica.py [--rounds 5] [--rate 1000] [--seconds 5]
       [--missed 100000] [--events 100000] [--replicas 10] [--throughput-only]
       [--no-full-replicas] [--idle-readers] [--json]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from tradelab.benchmarking import format_table, machine_info, median, percentiles
from tradelab.benchmarking.options import command, count_option, json_option, rounds_option
from tradelab.benchmarking.replicas import (
    BACKOFF,
    Replicas,
    idle_reader_process,
    reader_process,
)
from tradelab.bridge import BridgeServer
from tradelab.bridge.faults import CuttableLink
from tradelab.engine import Engine


def _engine(directory: Path, name: str) -> Engine:
    return Engine(journal_path=str(directory / f"{name}.duckdb")).start()


def _storm(engine: Engine, n: int, start: int = 0) -> None:
    submit = engine.submit
    for i in range(start, start + n):
        submit("mark.updated", {"symbol": f"S{i % 40}", "price": 100.0 + i})


def measure_lag(directory: Path, replicas: Replicas, rate: int, seconds: float, round_: int):
    engine = _engine(directory, f"lag-{round_}")
    try:
        with BridgeServer(engine) as server:
            replicas.ask("connect", (server.url, True), count=1)
            interval, n = 1.0 / rate, int(rate * seconds)
            next_at = time.perf_counter()
            for i in range(n):
                engine.submit("mark.updated", {"symbol": f"S{i % 40}", "price": 100.0 + i})
                next_at += interval
                pause = next_at - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            replicas.ask("wait", engine.flush(), count=1)
            (lags_ns,) = replicas.ask("lags", count=1)
            replicas.ask("close", count=1)
    finally:
        engine.stop()
    p50, p99 = percentiles([lag / 1e6 for lag in lags_ns], 50, 99)
    return {"events": len(lags_ns), "lag_p50_ms": p50, "lag_p99_ms": p99}


def measure_catch_up(directory: Path, replicas: Replicas, missed: int, history: int, name: str):
    engine = _engine(directory, name)
    try:
        with (
            BridgeServer(engine, history_events=history) as server,
            CuttableLink("127.0.0.1", server.port) as link,
        ):
            replicas.ask("connect", (link.url, False), count=1)
            replicas.ask("wait", engine.flush(), count=1)
            link.cut()
            _storm(engine, missed)
            target = engine.flush()
            restored = time.time()
            link.restore()
            ((in_step, done, metrics),) = replicas.ask("wait", target, count=1)
            replicas.ask("close", count=1)
    finally:
        engine.stop()
    return {
        "in_step": in_step,
        "seconds": done - restored,
        "replica_cpu_s": metrics["cpu_s"],
        "snapshots": metrics["snapshots_loaded"],
    }


def _hub_in_step(server: BridgeServer, seq: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while any(c["cursor"] < seq for c in server.hub.metrics()["per_client"]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"readers not at seq {seq} within {timeout} s")
        time.sleep(0.005)


def _thread_cpu(server: BridgeServer | None) -> float:
    """CPU seconds of the bridge server's thread so far (its event loop: all the bridge does
    in the engine's process but the kernel's queueing); 0 without a server."""
    thread = server._thread if server is not None else None
    if thread is None or thread.ident is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def measure_throughput(
    directory: Path,
    children: Replicas,
    readers: Replicas,
    n_readers: int,
    events: int,
    case: str,
    name: str,
) -> dict[str, float]:
    """Events/s flat out until durable, for `case`: "no_bridge", "bridge_0", "readers"
    (len(readers) protocol readers in one process) or "replicas" (one process each)."""
    engine = _engine(directory, name)
    server = BridgeServer(engine).start() if case != "no_bridge" else None
    try:
        if case == "replicas":
            children.ask("connect", (server.url, False))
            children.ask("wait", engine.flush())
        elif case == "readers":
            readers.ask("connect", (server.url, n_readers))
            _hub_in_step(server, engine.flush())
        first = engine.flush()
        server_cpu_started = _thread_cpu(server)
        cpu_started = time.process_time()
        started = time.perf_counter()
        _storm(engine, events)
        last = engine.flush()
        elapsed = time.perf_counter() - started
        flushed_at = time.time()
        drained = 0.0
        if case == "replicas":
            answers = children.ask("wait", last)
            assert all(in_step for in_step, _, _ in answers)
            drained = max(0.0, max(done for _, done, _ in answers) - flushed_at)
        elif case == "readers":
            _hub_in_step(server, last)
            drained = time.time() - flushed_at
        # The engine's process (kernel, submitter, bridge server; not the replicas), through
        # the last frame taken by every replica: what serving them cost it, whatever the load.
        cpu = time.process_time() - cpu_started
        server_cpu = _thread_cpu(server) - server_cpu_started
        if case == "replicas":
            children.ask("close")
        elif case == "readers":
            readers.ask("close")
    finally:
        if server is not None:
            server.stop()
        engine.stop()
    return {
        "events_per_s": (last - first) / elapsed,
        "in_step_after_s": drained,
        "engine_cpu_us_per_event": cpu * 1e6 / (last - first),
        "bridge_server_cpu_us_per_event": server_cpu * 1e6 / (last - first),
    }


@command(__doc__)
@json_option
@rounds_option(5)
@count_option("--rate", 1_000, "Paced events per second for the lag figure.")
@count_option("--seconds", 5, "Length of each paced run.")
@count_option("--missed", 100_000, "Events a cut-off replica catches up on.")
@count_option("--events", 100_000, "Events per flat-out throughput run.")
@count_option("--replicas", 10, "Replicas attached in the throughput case.")
@click.option(
    "--throughput-only", is_flag=True, help="Only the flat-out cases (no lag, no catch-up)."
)
@click.option(
    "--no-full-replicas",
    is_flag=True,
    help="Skip the case of full replicas on this host (their CPU is taken from the engine's).",
)
@click.option(
    "--idle-readers",
    is_flag=True,
    help="Run the protocol readers at the idle scheduling class (SCHED_IDLE): on this host "
    "they then take only CPU the engine and its writer leave, as on other machines.",
)
def main(
    as_json: bool,
    rounds: int,
    rate: int,
    seconds: int,
    missed: int,
    events: int,
    replicas: int,
    throughput_only: bool,
    no_full_replicas: bool,
    idle_readers: bool,
) -> None:
    children = Replicas(0 if throughput_only and no_full_replicas else replicas)
    readers = Replicas(1, target=idle_reader_process if idle_readers else reader_process)
    lag, resume, snapshot = [], [], []
    cases = ("no_bridge", "bridge_0", "readers") + (() if no_full_replicas else ("replicas",))
    throughput: dict[str, list] = {case: [] for case in cases}
    try:
        with tempfile.TemporaryDirectory(prefix="tradelab-replica-bench-") as tmp:
            directory = Path(tmp)
            for r in range(rounds):  # interleaved: drift hits every case alike
                if not throughput_only:
                    lag.append(measure_lag(directory, children, rate, seconds, r))
                    resume.append(
                        measure_catch_up(
                            directory, children, missed, missed + 50_000, f"resume-{r}"
                        )
                    )
                    snapshot.append(
                        measure_catch_up(directory, children, missed, missed // 10, f"snap-{r}")
                    )
                lead = r % len(cases)
                for case in cases[lead:] + cases[:lead]:  # each case leads a round in turn
                    throughput[case].append(
                        measure_throughput(
                            directory, children, readers, replicas, events, case, f"{case}-{r}"
                        )
                    )
    finally:
        children.close()
        readers.close()

    def med(rows: list[dict[str, Any]], name: str) -> float | None:
        return median([row[name] for row in rows]) if rows else None

    def paired(case: str, name: str) -> dict[str, float]:
        """`case` against the no-bridge run of the same round: median and range over rounds."""
        costs = [
            row[name] / base_row[name] - 1
            if name.endswith("per_event")
            else 1 - row[name] / base_row[name]
            for row, base_row in zip(throughput[case], throughput["no_bridge"], strict=True)
        ]
        return {"median": median(costs), "min": min(costs), "max": max(costs)}

    base = med(throughput["no_bridge"], "events_per_s")
    cpu_base = med(throughput["no_bridge"], "engine_cpu_us_per_event")
    rate_of = {case: med(rows, "events_per_s") for case, rows in throughput.items()}
    attached = [case for case in cases if case != "no_bridge"]
    figures = {
        "lag_p50_ms": med(lag, "lag_p50_ms"),
        "lag_p99_ms": med(lag, "lag_p99_ms"),
        "catch_up_resume_s": med(resume, "seconds"),
        "catch_up_resume_replica_cpu_s": med(resume, "replica_cpu_s"),
        "catch_up_snapshot_s": med(snapshot, "seconds"),
        **{f"throughput_{case}_per_s": rate for case, rate in rate_of.items()},
        # 1 - rate / rate with no bridge: the share of the engine's throughput each case costs
        **{f"cost_{case}": 1 - rate_of[case] / base for case in attached},
        **{f"paired_cost_{case}": paired(case, "events_per_s") for case in attached},
        **{
            f"engine_cpu_us_per_event_{case}": med(rows, "engine_cpu_us_per_event")
            for case, rows in throughput.items()
        },
        # engine_cpu_us_per_event / that with no bridge - 1: the CPU each case adds to the
        # engine's process (steadier than the rates when the machine is shared)
        **{
            f"cpu_cost_{case}": med(throughput[case], "engine_cpu_us_per_event") / cpu_base - 1
            for case in attached
        },
        **{f"paired_cpu_cost_{case}": paired(case, "engine_cpu_us_per_event") for case in attached},
        **{
            f"bridge_server_cpu_us_per_event_{case}": med(
                throughput[case], "bridge_server_cpu_us_per_event"
            )
            for case in attached
        },
        "readers_in_step_after_s": med(throughput["readers"], "in_step_after_s"),
        "replicas_in_step_after_s": med(throughput.get("replicas", []), "in_step_after_s"),
    }
    result = {
        "benchmark": "replica",
        "config": {
            "rounds": rounds,
            "rate": rate,
            "seconds": seconds,
            "missed": missed,
            "events": events,
            "replicas": replicas,
            "throughput_only": throughput_only,
            "full_replicas": not no_full_replicas,
            "idle_readers": idle_readers,
            "backoff_seconds": BACKOFF,
        },
        "figures": figures,
        "samples": {"lag": lag, "resume": resume, "snapshot": snapshot, "throughput": throughput},
        "machine": machine_info(),
    }
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    rows = [
        [f"replica lag p50 / p99 at {rate}/s (ms)", figures["lag_p50_ms"], figures["lag_p99_ms"]],
        [
            f"catch-up of {missed} missed events: resume / snapshot (s)",
            figures["catch_up_resume_s"],
            figures["catch_up_snapshot_s"],
        ],
        ["engine flat out, no bridge (events/s)", base, None],
        *(
            [f"engine flat out, {case} (events/s) / cost", rate_of[case], figures[f"cost_{case}"]]
            for case in attached
        ),
        *(
            [
                f"{case}: cost paired by round, median / max",
                figures[f"paired_cost_{case}"]["median"],
                figures[f"paired_cost_{case}"]["max"],
            ]
            for case in attached
        ),
        ["engine process CPU per event, no bridge (us)", cpu_base, None],
        *(
            [
                f"engine process CPU per event, {case} (us) / added",
                figures[f"engine_cpu_us_per_event_{case}"],
                figures[f"cpu_cost_{case}"],
            ]
            for case in attached
        ),
        *(
            [
                f"bridge server thread CPU per event, {case} (us)",
                figures[f"bridge_server_cpu_us_per_event_{case}"],
                None,
            ]
            for case in attached
        ),
    ]
    print(format_table(["figure", "a", "b"], rows))


if __name__ == "__main__":
    main()
