"""Push latency: wall-clock time from an event entering the server to its text in a real browser.

Targets (served in this process by `pn.serve(..., threaded=True)`, viewed by Chromium):
  floor      a bare Panel text pane (class `tl-floor-seq`) whose text a thread sets to a counter
             once per event: what Panel alone costs per pushed event
  floor_20hz the same pane set by a thread at most 20 times a second to the latest counter: the
             floor of any coalescing display (the console's coalescer ticks at 10-20 Hz)
  console    the live console (`tradelab.ui.console.build_console`) over a Lab; events are
             `mark.updated` submitted to its engine; its `tl-last-seq` shows the last applied seq
`--target floor` runs both floors; `--target console` the floors and the console, in one run.
Latency of an event: from `time.time()` just before it is submitted to the first DOM change
(a MutationObserver; the browser clock calibrated against this process's) showing its seq or a
later one. Scenarios: 10 events/s, then a storm (--storm-rate for --seconds); 1 then 5 sessions,
each a browser context of its own. Each reports p50/p95/p99 over every event on every page, the
storm's first vs last window p50 (lag growth), the longest browser frame gap
(requestAnimationFrame), how long the pages took to show the last event once the storm ended,
and what made the long frames: Chromium's long animation frames of every page (count per page;
the 5 longest with their script attribution, script / forced layout / render ms:
`long_tasks_top`) and the 5 longest frame gaps with the long frames that overlap them
(`frame_gaps_top`; none overlapping: the renderer was not scheduled); then this (server)
process's RSS across --cycles session open/close cycles.

Usage: PYTHONPATH=. .venv/bin/python benchmarks/push_latency.py [--target floor|console]
       [--seconds 60] [--steady-seconds 10] [--storm-rate 1000] [--cycles 100] [--quick] [--json]
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from typing import Any

import click

from tradelab.benchmarking import format_table, machine_info
from tradelab.benchmarking.browser import (
    CHROMIUM_ARGS,
    close_page,
    figures,
    open_page,
    shown_seq,
    start_recording,
    stop_recording,
)
from tradelab.benchmarking.options import CONTEXT_SETTINGS, json_option
from tradelab.benchmarking.push_targets import (
    REAP_AFTER_MS,
    CoalescedFloorTarget,
    ConsoleTarget,
    FloorTarget,
    Target,
    rss_mb,
)

# The targets: p99 during the storm (1 / 5 sessions), frame gap, RSS growth.
GOALS = {"storm_1": 100.0, "storm_5": 150.0, "frame_gap_ms": 100.0, "rss_growth_mb": 20.0}


def run_scenario(target: Target, pages: list, rate: float, seconds: float) -> dict[str, Any]:
    offsets = start_recording(pages)
    errors_before = target.push_errors
    first = max(target.submitted_ms, default=0) + 1
    k, started = first, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        due = first + int(elapsed * rate)
        while k <= due:
            target.push(k)
            k += 1
        time.sleep(min(0.001, 1.0 / rate))
    achieved = (k - first) / (time.monotonic() - started)
    produced_until_ms = time.time() * 1e3
    deadline = time.monotonic() + 30  # the pages catch up, or are reported behind
    while time.monotonic() < deadline:
        last = target.seq_of(k - 1)
        if last is not None and all(s is not None and s >= last for s in shown_seq(pages)):
            break
        time.sleep(0.01)
    submitted = {n: target.submitted_ms[n] for n in range(first, k)}
    result = figures(
        stop_recording(pages),
        offsets,
        submitted,
        target.seq_of,
        seconds=seconds,
        achieved=achieved,
        produced_until_ms=produced_until_ms,
    )
    result["push_errors"] = target.push_errors - errors_before
    return result


def wait_reaped(target: Target) -> None:
    """Until Bokeh has discarded every closed session (or a little past its reaping delay)."""
    deadline = time.monotonic() + REAP_AFTER_MS / 1e3 + 5.0
    while target.live_sessions() and time.monotonic() < deadline:
        time.sleep(0.2)


def session_cycles(target: Target, browser: Any, cycles: int) -> dict[str, Any]:
    """RSS of this (server) process across `cycles` session open/close cycles, after a warm-up."""
    warmup = max(1, cycles // 10)
    start = warm = rss_mb()
    for i in range(cycles):
        if i == warmup:
            wait_reaped(target)
            warm = rss_mb()
        close_page(open_page(browser, target.url, target.css_class))
    wait_reaped(target)
    end = rss_mb()
    return {
        "cycles": cycles,
        "rss_start_mb": start,
        "rss_after_warmup_mb": warm,
        "rss_end_mb": end,
        "rss_growth_mb": end - warm,
        "live_sessions_after": target.live_sessions(),
    }


def measure(target: Target, browser: Any, plan: dict[str, Any]) -> dict[str, Any]:
    target.start()
    out: dict[str, Any] = {}
    try:
        pages: list = []
        for sessions in (1, 5):
            while len(pages) < sessions:
                pages.append(open_page(browser, target.url, target.css_class))
            for name, rate, seconds in (
                ("steady", plan["steady_rate"], plan["steady_seconds"]),
                ("storm", plan["storm_rate"], plan["seconds"]),
            ):
                out[f"{name}_{sessions}"] = run_scenario(target, pages, rate, seconds)
        for page in pages:
            close_page(page)
        out["cycles"] = session_cycles(target, browser, plan["cycles"])
    finally:
        target.stop()
    return out


def table(results: dict[str, Any]) -> str:
    rows = []
    for target, scenarios in results["targets"].items():
        for scenario, f in scenarios.items():
            if scenario == "cycles":
                growth = f"RSS {f['rss_growth_mb']:+.1f} MB, {f['live_sessions_after']} live"
                rows.append([target, f"{f['cycles']} open/close", *[""] * 6, growth])
                continue
            trend = f"{f['first_window_p50_ms']:.0f} -> {f['last_window_p50_ms']:.0f}"
            rows.append(
                [
                    target,
                    scenario,
                    f["events_per_s"],
                    f["p50_ms"],
                    f["p95_ms"],
                    f["p99_ms"],
                    trend,
                    f["max_frame_gap_ms"],
                    f"drain {f['drain_ms'] or 0:.0f} ms, unseen {f['unseen']}",
                ]
            )
    headers = ["target", "scenario", "ev/s", "p50 ms", "p95 ms", "p99 ms", "p50 first->last",
               "frame gap ms", ""]  # fmt: skip
    return format_table(headers, rows)


@click.command(help=(__doc__ or "").splitlines()[0], context_settings=CONTEXT_SETTINGS)
@click.option(
    "--target",
    type=click.Choice(["floor", "console"]),
    default="console",
    show_default=True,
    help="console: the console and the floors; floor: the floors only.",
)
@click.option("--seconds", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Length of each storm.")  # fmt: skip
@click.option("--steady-seconds", type=click.FloatRange(min=1), default=10.0,
              show_default=True, help="Length of each 10 events/s run.")  # fmt: skip
@click.option("--storm-rate", type=click.FloatRange(min=1), default=1000.0, show_default=True,
              help="Events per second in the storm.")  # fmt: skip
@click.option("--cycles", type=click.IntRange(min=1), default=100, show_default=True,
              help="Session open/close cycles for the RSS figure.")  # fmt: skip
@click.option("--quick", is_flag=True, help="Short runs: storm 5 s, steady 2 s, 6 cycles.")
@json_option
def main(
    target: str,
    seconds: float,
    steady_seconds: float,
    storm_rate: float,
    cycles: int,
    quick: bool,
    as_json: bool,
) -> None:
    from playwright.sync_api import sync_playwright

    if quick:
        seconds, steady_seconds, cycles = 5.0, 2.0, 6
    plan = {"seconds": seconds, "steady_seconds": steady_seconds, "steady_rate": 10.0,
            "storm_rate": storm_rate, "cycles": cycles}  # fmt: skip
    chromium = shutil.which("chromium")
    if chromium is None:
        raise click.ClickException("no chromium on PATH (apt-get install chromium)")
    kinds = [("floor", FloorTarget), ("floor_20hz", CoalescedFloorTarget)]
    if target == "console":
        # First, in a fresh process: its RSS figure is not read over the floors' heap (the
        # per-event floor's storm backlog grows this process by hundreds of MB).
        kinds.insert(0, ("console", ConsoleTarget))
    built = [(name, cls()) for name, cls in kinds]  # a missing console fails before measuring
    # Closed pages' sockets outlive their last pushes: Bokeh's warning for each is noise here.
    logging.getLogger("bokeh.server.views.ws").setLevel(logging.ERROR)
    # Panel logs to stdout; keep stdout for the report (--json must parse).
    for handler in logging.getLogger("panel").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    results: dict[str, Any] = {"benchmark": "push_latency", "machine": machine_info(),
                               "plan": plan, "goals": GOALS, "targets": {}}  # fmt: skip
    results["load_average_before"] = os.getloadavg()
    started = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for name, instance in built:
                results["targets"][name] = measure(instance, browser, plan)
        finally:
            browser.close()
    results["load_average_after"] = os.getloadavg()
    results["run_seconds"] = time.monotonic() - started
    measured = results["targets"]
    if "console" in measured:  # ratios to the floor measured in the same run
        results["console_vs_floor_20hz_p99"] = {
            s: _ratio(measured["console"][s]["p99_ms"], measured["floor_20hz"][s]["p99_ms"])
            for s in measured["console"]
            if s != "cycles"
        }
    print(json.dumps(results, indent=2) if as_json else table(results))


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


if __name__ == "__main__":
    sys.exit(main())
