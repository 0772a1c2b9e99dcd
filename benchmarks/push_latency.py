"""Push latency: wall-clock time from an event entering the server to its text in a real browser.

Targets (both served in this process by `pn.serve(..., threaded=True)`, viewed by Chromium):
  floor    a bare Panel text pane (class `tl-floor-seq`) whose text a thread sets to a counter
           once per event: what Panel alone costs
  console  the live console (`tradelab.ui.console.build_console`) over a Lab; events are
           `mark.updated` submitted to its engine; the page's `tl-last-seq` shows the last
           applied seq. Runs the floor too, in the same run, as the baseline.
Latency of an event: from `time.time()` just before it is submitted to the first DOM change
(seen by a MutationObserver, `performance.timeOrigin + performance.now()`, calibrated against
this process's clock) showing its seq or a later one, so a coalesced update counts for every
event it covers. Each scenario (10 events/s, then a storm of --storm-rate; 1 then 5 sessions)
reports p50/p95/p99/max over every event and every page, the storm's first vs last window
(does lag grow?), the longest browser frame gap (requestAnimationFrame) during the storm, the
time the page took to show the last event once the storm ended; then server RSS across
--cycles session open/close cycles.

Usage: PYTHONPATH=. .venv/bin/python benchmarks/push_latency.py [--target floor|console]
       [--seconds 60] [--steady-seconds 10] [--storm-rate 1000] [--cycles 100] [--quick] [--json]
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from bisect import bisect_left
from itertools import accumulate
from typing import Any

import click
import psutil

from tradelab.benchmarking import format_table, machine_info, percentiles
from tradelab.benchmarking.options import CONTEXT_SETTINGS, json_option

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Several pages of one browser are all "visible": do not throttle the hidden ones.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
FLOOR_CLASS, CONSOLE_CLASS = "tl-floor-seq", "tl-last-seq"
REAP_AFTER_MS = 5000

# Installs the recorder in a page: finds the element of class `cls` through Bokeh's shadow roots,
# records [seq, wall ms] on each change of its integer text, and frame gaps while recording.
RECORDER_JS = """
(cls) => {
  const find = (root) => {
    const hit = root.querySelector('.' + cls);
    if (hit) return hit;
    for (const node of root.querySelectorAll('*')) {
      if (node.shadowRoot) { const f = find(node.shadowRoot); if (f) return f; }
    }
    return null;
  };
  const text = (node) => {
    if (node.nodeType === Node.TEXT_NODE) return node.data;
    if (['STYLE', 'SCRIPT', 'LINK'].includes(node.nodeName)) return '';
    let out = '';
    if (node.shadowRoot) out += text(node.shadowRoot);
    for (const child of node.childNodes) out += text(child);
    return out;
  };
  const el = find(document);
  if (!el) return false;
  const found = text(el).match(/\\d+/g);
  if (!found) return false;
  const tl = window.__tl = window.__tl || {seen: [], gaps: [], last: null, recording: false};
  const read = () => {
    const now = performance.timeOrigin + performance.now();
    const m = text(el).match(/\\d+/g);
    if (!m) return;
    const seq = parseInt(m[m.length - 1]);
    if (seq !== tl.last) { tl.last = seq; tl.seen.push([seq, now]); }
  };
  const options = {subtree: true, childList: true, characterData: true};
  const observer = new MutationObserver(read);
  observer.observe(el, options);
  const watchShadows = (node) => {
    if (node.shadowRoot) { observer.observe(node.shadowRoot, options); watchShadows(node.shadowRoot); }
    for (const child of node.children || []) watchShadows(child);
  };
  watchShadows(el);
  read();
  let previous = null;
  const frame = (t) => {
    if (previous !== null && tl.recording) tl.gaps.push(t - previous);
    previous = t;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  return true;
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


class Target:
    """A served app, a way to push one event, and how to map event number -> shown seq."""

    css_class = FLOOR_CLASS

    def __init__(self) -> None:
        import panel as pn

        self.pn = pn
        self.port = free_port()
        self.server_id = uuid.uuid4().hex
        self.submitted: dict[int, float] = {}  # event number -> submit wall time (s)

    def app(self) -> Any:
        raise NotImplementedError

    def push(self, k: int) -> None:
        raise NotImplementedError

    def seq_of(self, k: int) -> int | None:
        return k

    def start(self) -> None:
        with contextlib.redirect_stdout(sys.stderr):  # keep --json output clean
            self._serve()

    def _serve(self) -> None:
        self.thread = self.pn.serve(
            {"app": self.app()},
            port=self.port,
            address="127.0.0.1",
            threaded=True,
            show=False,
            server_id=self.server_id,
            # Reap closed sessions sooner than Bokeh's 15-17 s, so the open/close cycles measure
            # what they leave (not much sooner: a slow page must still connect in time).
            check_unused_sessions_milliseconds=1000,
            unused_session_lifetime_milliseconds=REAP_AFTER_MS,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}", timeout=5).read()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/app"

    def live_sessions(self) -> int:
        server = self.pn.state._servers[self.server_id][0]
        return len(server.get_sessions())

    def stop(self) -> None:
        self.thread.stop()


class FloorTarget(Target):
    def app(self) -> Any:
        # One pane shared by every session: a param set from a thread reaches all of them.
        self.pane = self.pn.pane.Str("0", css_classes=[FLOOR_CLASS])
        return self.pane

    def push(self, k: int) -> None:
        self.submitted[k] = time.time()
        self.pane.object = str(k)


class ConsoleTarget(Target):
    css_class = CONSOLE_CLASS

    def __init__(self) -> None:
        super().__init__()
        try:
            from tradelab.ui.config import ConsoleConfig
            from tradelab.ui.console import build_console
            from tradelab.ui.host import ConsoleHost
        except ImportError as exc:
            raise click.ClickException(
                f"--target console needs the console (tradelab.ui.host / console / config): "
                f"{exc}; measure the floor with --target floor"
            ) from None
        self._console = (ConsoleConfig, build_console, ConsoleHost)
        self.seqs: dict[int, int] = {}

    def start(self) -> None:
        from tradelab.lab import Lab

        config_cls, self._build, host_cls = self._console
        self.tmp = tempfile.mkdtemp(prefix="tl-push-")
        # A quiet market (the storm is ours), no strategy: every seq shown is ours or a mark.
        self.lab = Lab(
            journal_path=os.path.join(self.tmp, "lab.duckdb"),
            ticks_per_second=5,
            strategy="none",
        ).start()
        self.host = host_cls(self.lab, config_cls()).start()
        self.lab.engine.bus.subscribe("mark.updated", self._on_mark, name="push-latency")
        super().start()

    def _on_mark(self, event: Any) -> None:  # kernel thread: one dict write
        k = event.payload.get("bench_k")
        if k is not None:
            self.seqs[k] = event.seq

    def app(self) -> Any:
        return lambda: self._build(self.host)

    def push(self, k: int) -> None:
        price = 100.0 + (k % 200) * 0.05
        payload = {"symbol": f"BENCH{k % 10}", "price": price, "bid": price, "ask": price}
        self.submitted[k] = time.time()
        self.lab.engine.submit(
            "mark.updated", {**payload, "last": price, "ts": time.time_ns(), "bench_k": k}
        )

    def seq_of(self, k: int) -> int | None:
        return self.seqs.get(k)

    def stop(self) -> None:
        super().stop()
        stop = getattr(self.host, "stop", None)
        if stop is not None:
            stop()
        self.lab.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def open_page(browser: Any, target: Target) -> Any:
    """A session in a browser context of its own: its own window, so Chromium does not throttle
    it as a background tab (in one context, only the front tab renders at 60 Hz)."""
    page = browser.new_context().new_page()
    page.goto(target.url, wait_until="domcontentloaded")
    deadline = time.monotonic() + 60
    while not page.evaluate(RECORDER_JS, target.css_class):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no .{target.css_class} with a number on {target.url}")
        time.sleep(0.05)
    return page


def close_page(page: Any) -> None:
    page.context.close()


def clock_offset_ms(page: Any) -> float:
    """Browser wall clock minus this process's, from the tightest of a few round trips."""
    best = (float("inf"), 0.0)
    for _ in range(7):
        before = time.time() * 1e3
        browser = page.evaluate("performance.timeOrigin + performance.now()")
        after = time.time() * 1e3
        best = min(best, (after - before, browser - (before + after) / 2))
    return best[1]


def run_scenario(target: Target, pages: list, rate: float, seconds: float) -> dict[str, Any]:
    offsets = [clock_offset_ms(p) for p in pages]
    for page in pages:
        page.evaluate("window.__tl.seen = []; window.__tl.gaps = []; window.__tl.recording = true")
    first_k = max(target.submitted, default=0) + 1
    k, started = first_k, time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        due = first_k + int(elapsed * rate)
        while k <= due:
            target.push(k)
            k += 1
        time.sleep(min(0.001, 1.0 / rate))
    produced = range(first_k, k)
    achieved = len(produced) / (time.monotonic() - started)
    produced_until_ms = time.time() * 1e3
    last_seq = None
    drain_started = time.monotonic()
    while time.monotonic() - drain_started < 30:
        last_seq = target.seq_of(k - 1)
        shown = [p.evaluate("window.__tl.last") for p in pages]
        if last_seq is not None and all(s is not None and s >= last_seq for s in shown):
            break
        time.sleep(0.01)
    records = [p.evaluate("[window.__tl.seen, window.__tl.gaps]") for p in pages]
    for page in pages:
        page.evaluate("window.__tl.recording = false")
    latencies, unseen, shown_per_s, drains = [], 0, [], []
    for (seen, _), offset in zip(records, offsets, strict=True):
        times = [t - offset for _, t in seen]
        highest = list(accumulate((s for s, _ in seen), max))
        shown_per_s.append(len(seen) / seconds)
        for n in produced:
            seq = target.seq_of(n)
            at = bisect_left(highest, seq) if seq is not None else len(highest)
            if at == len(highest):
                unseen += 1
                continue
            latencies.append((target.submitted[n] * 1e3, times[at] - target.submitted[n] * 1e3))
        if seen and last_seq is not None and highest[-1] >= last_seq:
            drains.append(max(0.0, times[bisect_left(highest, last_seq)] - produced_until_ms))
    gaps = [g for _, page_gaps in records for g in page_gaps]
    return summarize(latencies, gaps, seconds, achieved, unseen, shown_per_s, drains)


def summarize(
    latencies: list[tuple[float, float]],
    gaps: list[float],
    seconds: float,
    achieved: float,
    unseen: int,
    shown_per_s: list[float],
    drains: list[float],
) -> dict[str, Any]:
    values = [lat for _, lat in latencies]
    p50, p95, p99 = percentiles(values, 50, 95, 99) if values else [float("nan")] * 3
    window_ms = min(10.0, seconds / 3) * 1e3
    start = min((t for t, _ in latencies), default=0.0)
    end = max((t for t, _ in latencies), default=0.0)
    first = [lat for t, lat in latencies if t < start + window_ms]
    last = [lat for t, lat in latencies if t > end - window_ms]
    return {
        "events_per_s": round(achieved, 1),
        "events": len(values),
        "unseen": unseen,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "max_ms": max(values, default=float("nan")),
        "dom_updates_per_s": statistics.median(shown_per_s) if shown_per_s else 0.0,
        "first_window_p50_ms": statistics.median(first) if first else float("nan"),
        "last_window_p50_ms": statistics.median(last) if last else float("nan"),
        "window_s": window_ms / 1e3,
        "max_frame_gap_ms": max(gaps, default=float("nan")),
        "frame_gap_p99_ms": percentiles(gaps, 99)[0] if gaps else float("nan"),
        "drain_ms": max(drains, default=float("nan")),
    }


def session_cycles(target: Target, browser: Any, cycles: int) -> dict[str, Any]:
    """RSS of this (server) process across `cycles` page open/close cycles, after a warm-up."""
    warmup = max(1, cycles // 10)
    before = rss_mb()
    for i in range(cycles):
        if i == warmup:
            time.sleep(REAP_AFTER_MS / 1e3 + 2.0)  # the warm-up sessions reaped
            warm = rss_mb()
        close_page(open_page(browser, target))
    time.sleep(REAP_AFTER_MS / 1e3 + 2.0)  # closed sessions reaped (checked every 1 s)
    end = rss_mb()
    return {
        "cycles": cycles,
        "rss_start_mb": before,
        "rss_after_warmup_mb": warm,
        "rss_end_mb": end,
        "rss_growth_mb": end - warm,
        "live_sessions_after": target.live_sessions(),
    }


def measure(target: Target, browser: Any, plan: dict[str, Any]) -> dict[str, Any]:
    target.start()
    out: dict[str, Any] = {}
    try:
        pages = [open_page(browser, target)]
        for sessions in (1, 5):
            while len(pages) < sessions:
                pages.append(open_page(browser, target))
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


TARGETS = {"p99_ms": {"storm_1": 100.0, "storm_5": 150.0}, "max_frame_gap_ms": 100.0}


def table(results: dict[str, Any]) -> str:
    rows = []
    for target, figures in results["targets"].items():
        for scenario, f in figures.items():
            if scenario == "cycles":
                rows.append(
                    [
                        target,
                        f"{f['cycles']} open/close",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        f"RSS +{f['rss_growth_mb']:.1f} MB, {f['live_sessions_after']} live",
                    ]
                )
                continue
            rows.append(
                [
                    target,
                    scenario,
                    f["events_per_s"],
                    f["p50_ms"],
                    f["p95_ms"],
                    f["p99_ms"],
                    f"{f['first_window_p50_ms']:.1f} -> {f['last_window_p50_ms']:.1f}",
                    f["max_frame_gap_ms"],
                    f"drain {f['drain_ms']:.0f} ms, unseen {f['unseen']}",
                ]
            )
    headers = [
        "target",
        "scenario",
        "ev/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p50 first->last",
        "frame gap ms",
        "",
    ]
    return format_table(headers, rows)


@click.command(help=(__doc__ or "").splitlines()[0], context_settings=CONTEXT_SETTINGS)
@click.option(
    "--target",
    type=click.Choice(["floor", "console"]),
    default="console",
    show_default=True,
    help="console: the console and the floor; floor: the floor only.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Length of each storm.",
)
@click.option(
    "--steady-seconds",
    type=click.FloatRange(min=1),
    default=10.0,
    show_default=True,
    help="Length of each steady (10 events/s) run.",
)
@click.option(
    "--storm-rate",
    type=click.FloatRange(min=1),
    default=1000.0,
    show_default=True,
    help="Events per second in the storm.",
)
@click.option(
    "--cycles",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Session open/close cycles for the RSS figure.",
)
@click.option("--quick", is_flag=True, help="Short runs (storm 5 s, steady 2 s, 10 cycles).")
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
        seconds, steady_seconds, cycles = 5.0, 2.0, 10
    plan = {
        "seconds": seconds,
        "steady_seconds": steady_seconds,
        "steady_rate": 10.0,
        "storm_rate": storm_rate,
        "cycles": cycles,
    }
    chromium = shutil.which("chromium")
    if chromium is None:
        raise click.ClickException("no chromium on PATH (apt-get install chromium)")
    kinds = [("floor", FloorTarget)] + ([("console", ConsoleTarget)] if target == "console" else [])
    results: dict[str, Any] = {
        "benchmark": "push_latency",
        "machine": machine_info(),
        "plan": plan,
        "targets": {},
    }
    # Built first: a missing console fails before anything is measured.
    built = [(name, cls()) for name, cls in kinds]
    # Closed pages' sockets outlive their last pushes: Bokeh's warning for each is noise here.
    logging.getLogger("bokeh.server.views.ws").setLevel(logging.ERROR)
    results["load_average_before"] = os.getloadavg()
    run_started = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for name, instance in built:
                results["targets"][name] = measure(instance, browser, plan)
        finally:
            browser.close()
    results["load_average_after"] = os.getloadavg()
    results["run_seconds"] = time.monotonic() - run_started
    if "console" in results["targets"]:
        console, floor = results["targets"]["console"], results["targets"]["floor"]
        results["console_vs_floor_p99"] = {
            s: console[s]["p99_ms"] / floor[s]["p99_ms"] for s in console if s != "cycles"
        }
    print(json.dumps(results, indent=2) if as_json else table(results))


if __name__ == "__main__":
    sys.exit(main())
