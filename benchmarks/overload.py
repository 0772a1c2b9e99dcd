"""Overload: two threads flood a running Engine with ordinary events while a third submits a
critical event every 10 ms; does the critical path stay fast and memory bounded?

Figures per variant (`flood`: the two flooders submit `mark.updated` as fast as they can;
`quiet`: no flooders, the critical thread alone), from one run of --seconds each:
  critical_p50_ms / p99 / max   submit() -> return of the critical events (paced every 10 ms;
                                a submit that outlives the pace delays the next one)
  critical_timeouts             critical submits that were not durable within --ack-timeout
  engine_rss_growth_mb          peak VmRSS of this process minus its VmRSS at the start of the run
  writer_rss_growth_mb          the same for the writer process (metrics()["writer_pid"])
  durable_per_s                 events committed per second: growth of metrics()["durable_seq"]
                                over the run, sampled every 0.1 s (first second skipped)
  submitted_per_s               what the flooders got accepted (submit returned)
  overload_refusals             OverloadError raised to the flooders (bounded-queue engines)
  stop_seconds                  how long engine.stop() took, called as soon as the flooders
                                returned (drain + snapshot + close); a stop
                                that outlives --stop-timeout is reported as such and the writer
                                process is then killed so the run can end
  queue_* / producer_wait_s     the engine's own queue metrics, where it reports them
  critical_priority_wait*       ordinary submits that stepped aside for a critical in flight
  journal_critical_ack_p99_ms   the writer side of a critical ack (frame sent -> released), and
  writer_pending_high_water,    the writer's bound on events queued for DuckDB: most ever
  writer_backpressure_s         queued, time its feeding thread waited for room (engine metrics)
Safety cap: the flood is aborted (`aborted_rss` true) when this process's RSS grows by more than
--rss-cap-mb: an engine with an unbounded submit queue grew by ~0.15 GB per second of flood.

Usage: PYTHONPATH=. .venv/bin/python benchmarks/overload.py [--seconds 60] [--no-flood | --flood-only]
       [--rss-cap-mb 1500] [--stop-timeout 60] [--engine KEY=VALUE ...] [--json]
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import psutil
from journal import SYMBOLS, trade_payload

from tradelab.benchmarking import percentiles
from tradelab.benchmarking.options import (
    command,
    engine_option,
    json_option,
    positive_float,
    tuned_collector_option,
)
from tradelab.engine import Engine
from tradelab.errors import JournalError, TradelabError

try:
    from tradelab.errors import OverloadError
except ImportError:  # an engine without a bounded submit queue never refuses

    class OverloadError(TradelabError):  # type: ignore[no-redef]
        """Stand-in: never raised."""


CRITICAL_EVERY_S = 0.010
SAMPLE_EVERY_S = 0.1
WRITER_TRACE_S = 10.0


def rss_mb(pid: int | None = None) -> float:
    """Resident set size (VmRSS) of a process, this one by default, in MB (0 when it is gone)."""
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return 0.0


def run_variant(
    directory: Path,
    *,
    flood: bool,
    seconds: float,
    rss_cap_mb: float,
    stop_timeout: float,
    ack_timeout: float,
    engine_overrides: dict | None = None,
) -> dict:
    engine = Engine(
        journal_path=str(directory / f"overload-{'flood' if flood else 'quiet'}.duckdb"),
        snapshot_every_events=0,
        snapshot_every_seconds=0,
        **(engine_overrides or {}),
    ).start()
    writer_pid = engine.metrics().get("writer_pid")
    stop_flood = threading.Event()
    end_run = threading.Event()
    refusals = [0, 0]
    accepted = [0, 0]
    acks: list[float] = []
    timeouts = [0]

    def flooder(f: int) -> None:
        submit = engine.submit
        i = 0
        while not stop_flood.is_set():
            try:
                submit("mark.updated", {"symbol": SYMBOLS[i & 3], "price": 24000.0 + i % 997})
                i += 1
            except OverloadError:
                refusals[f] += 1
        accepted[f] = i

    def critical() -> None:
        submit = engine.submit
        t0 = time.perf_counter()
        i = 0
        while not end_run.is_set():
            delay = t0 + i * CRITICAL_EVERY_S - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            s = time.perf_counter()
            try:
                submit("trade.executed", trade_payload(i), key=f"T{i}", timeout=ack_timeout)
                acks.append(time.perf_counter() - s)
            except JournalError:  # not durable within ack_timeout
                timeouts[0] += 1
            except TradelabError:  # the engine stopped accepting: the run is over
                return
            i += 1

    rss0, writer_rss0 = rss_mb(), rss_mb(writer_pid) if writer_pid else 0.0
    peak, writer_peak = rss0, writer_rss0
    samples: list[tuple[float, int]] = []
    metrics: dict = {}
    threads = [threading.Thread(target=critical, daemon=True)]
    if flood:
        threads += [threading.Thread(target=flooder, args=(f,), daemon=True) for f in (0, 1)]
    aborted = False
    writer_trace: list[float] = []  # the writer's peak RSS in each WRITER_TRACE_S of the run
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    while (now := time.perf_counter()) - t0 < seconds:
        time.sleep(SAMPLE_EVERY_S)
        metrics = engine.metrics()
        samples.append((now - t0, metrics.get("durable_seq", 0)))
        peak = max(peak, rss_mb())
        if writer_pid:
            writer_rss = rss_mb(writer_pid)
            writer_peak = max(writer_peak, writer_rss)
            bucket = int((now - t0) // WRITER_TRACE_S)
            writer_trace.extend([0.0] * (bucket + 1 - len(writer_trace)))
            writer_trace[bucket] = max(writer_trace[bucket], writer_rss)
        if peak - rss0 > rss_cap_mb:
            aborted = True
            break
    run_seconds = time.perf_counter() - t0
    stop_flood.set()
    end_run.set()
    for t in threads[1:]:
        t.join()  # a flooder's submit never blocks for long
    peak = max(peak, rss_mb())
    metrics = engine.metrics()
    # Durable rate over the run, the first second skipped (start-up of the flood).
    window = [s for s in samples if s[0] >= 1.0] or samples
    durable_rate = (
        (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
        if len(window) > 1
        else float("nan")
    )
    queued_at_stop = metrics.get("queue_depth", metrics.get("queued", 0))
    stopper = threading.Thread(target=engine.stop, daemon=True)
    s = time.perf_counter()
    stopper.start()
    stopper.join(stop_timeout)
    stop_seconds = time.perf_counter() - s
    stop_timed_out = stopper.is_alive()
    threads[0].join(0 if stop_timed_out else ack_timeout)
    critical_alive = threads[0].is_alive()  # still blocked in a submit
    if stop_timed_out and writer_pid:
        # The run must end: the engine's kernel is still draining. Kill its writer (our child)
        # so the temp dir can go; the engine's threads are daemons and die with this process.
        # Its kernel would then log every batch it can no longer send: expected, so silenced.
        logging.getLogger("tradelab").setLevel(logging.CRITICAL)
        os.kill(writer_pid, signal.SIGKILL)
    p50, p99 = percentiles(acks, 50, 99)
    return {
        "flood": flood,
        "run_seconds": run_seconds,
        "aborted_rss": aborted,
        "criticals": len(acks),
        "critical_timeouts": timeouts[0],
        "critical_still_waiting": critical_alive,
        "critical_p50_ms": p50 * 1e3,
        "critical_p99_ms": p99 * 1e3,
        "critical_max_ms": max(acks, default=float("nan")) * 1e3,
        "engine_rss_start_mb": rss0,
        "engine_rss_growth_mb": peak - rss0,
        "writer_rss_start_mb": writer_rss0,
        "writer_rss_growth_mb": writer_peak - writer_rss0,
        "writer_rss_peak_by_10s_mb": writer_trace,
        "durable_per_s": durable_rate,
        "submitted_per_s": sum(accepted) / run_seconds,
        "overload_refusals": sum(refusals),
        "queued_at_stop": queued_at_stop,
        "queue_high_water": metrics.get("queue_high_water"),
        "producer_wait_s": metrics.get("producer_wait_seconds"),
        "engine_overload_refusals": metrics.get("overload_refusals"),
        # Flooders' submits that stepped aside for a critical in flight (engines that do).
        "critical_priority_waits": metrics.get("critical_priority_waits"),
        "critical_priority_wait_s": metrics.get("critical_priority_wait_seconds"),
        "stop_seconds": stop_seconds,
        "stop_timed_out": stop_timed_out,
        # The writer side of a critical ack (frame sent -> released), as the engine measured it.
        "journal_critical_ack_p99_ms": (metrics.get("journal_critical_ack_latency") or {}).get(
            "p99_ms"
        ),
        "writer_pending_high_water": metrics.get("writer_pending_high_water"),
        "writer_backpressure_s": metrics.get("writer_backpressure_seconds"),
    }


def print_table(results: dict[str, dict]) -> None:
    rows = (
        ("critical ack p50 ms", "critical_p50_ms", "{:.2f}"),
        ("critical ack p99 ms", "critical_p99_ms", "{:.2f}"),
        ("critical ack max ms", "critical_max_ms", "{:.1f}"),
        ("criticals acked / timed out", None, None),
        ("engine RSS growth MB", "engine_rss_growth_mb", "{:.0f}"),
        ("writer RSS growth MB", "writer_rss_growth_mb", "{:.0f}"),
        ("durable events/s", "durable_per_s", "{:,.0f}"),
        ("flooders' accepted submits/s", "submitted_per_s", "{:,.0f}"),
        ("OverloadError refusals", "overload_refusals", "{}"),
        ("queued when the run ended", "queued_at_stop", "{}"),
        ("queue high water", "queue_high_water", "{}"),
        ("producer wait s", "producer_wait_s", "{}"),
        ("stepped aside for a critical", "critical_priority_waits", "{}"),
        ("run s (aborted at the RSS cap?)", None, None),
        ("engine.stop() s", None, None),
    )
    names = list(results)
    print(f"{'figure':34s}" + "".join(f"{n:>22s}" for n in names))
    for label, key, fmt in rows:
        cells = []
        for n in names:
            r = results[n]
            if label.startswith("criticals"):
                cell = f"{r['criticals']} / {r['critical_timeouts']}"
            elif label.startswith("run s"):
                cell = f"{r['run_seconds']:.1f} ({'yes' if r['aborted_rss'] else 'no'})"
            elif label.startswith("engine.stop"):
                cell = f"{r['stop_seconds']:.1f}" + (" TIMED OUT" if r["stop_timed_out"] else "")
            else:
                value = r[key]
                cell = "-" if value is None else fmt.format(value)
            cells.append(f"{cell:>22s}")
        print(f"{label:34s}" + "".join(cells))


@command(__doc__)
@positive_float("--seconds", 60.0, "Length of each variant's run.")
@click.option("--no-flood", is_flag=True, help="Only the critical thread.")
@click.option("--flood-only", is_flag=True, help="Only the flood variant (no quiet run).")
@positive_float("--rss-cap-mb", 1500.0, "Abort the flood when this process's RSS grew by this.")
@positive_float("--stop-timeout", 60.0, "engine.stop() longer than this is reported TIMED OUT.")
@positive_float("--ack-timeout", 30.0, "Timeout of each critical submit.")
@engine_option
@tuned_collector_option
@json_option
def main(
    seconds: float,
    no_flood: bool,
    flood_only: bool,
    rss_cap_mb: float,
    stop_timeout: float,
    ack_timeout: float,
    engine_overrides: dict,
    as_json: bool,
) -> dict:
    # Quiet first: a flood may leave a stopping engine behind it.
    variants = [False] if no_flood else [True] if flood_only else [False, True]
    results: dict[str, dict] = {}
    stop_timed_out = False
    tmp = tempfile.TemporaryDirectory(prefix="tradelab-bench-")
    for flood in variants:
        results["flood" if flood else "quiet"] = r = run_variant(
            Path(tmp.name),
            flood=flood,
            seconds=seconds,
            rss_cap_mb=rss_cap_mb,
            stop_timeout=stop_timeout,
            ack_timeout=ack_timeout,
            engine_overrides=engine_overrides,
        )
        stop_timed_out |= r["stop_timed_out"]
    if as_json:
        # --tuned-collector: (50000, 20, 20)
        collector = gc.get_threshold()
        print(
            json.dumps(
                {"seconds": seconds, "engine": engine_overrides, "collector": collector, **results}
            )
        )
    else:
        print_table(results)
    sys.stdout.flush()
    tmp.cleanup()
    if stop_timed_out:
        os._exit(3)  # an engine is still stopping on its threads; do not wait for it
    return results


if __name__ == "__main__":
    main()
