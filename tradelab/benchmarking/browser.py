"""Browser side of benchmarks/push_latency.py: Chromium's flags, the in-page recorder of DOM
changes and frame gaps, clock calibration, and the latency figures computed from what pages saw.
(Playwright is imported by the caller; this module only drives the pages it is given.)

Single-threaded: Playwright's sync API, called from the benchmark's main thread only.
"""

from __future__ import annotations

import math
import socket
import statistics
import time
from bisect import bisect_left
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from tradelab.benchmarking import percentiles

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
  // A pane may replace the hooked element on each update (an HTML pane rewrites its inner
  // HTML): watch its parent, which stays, and read whatever element carries the class now.
  const holder = el.parentNode || el;
  const current = () => (holder.querySelector ? holder.querySelector('.' + cls) : null) || el;
  const read = () => {
    const now = performance.timeOrigin + performance.now();
    const m = text(current()).match(/\\d+/g);
    if (!m) return;
    const seq = parseInt(m[m.length - 1]);
    if (seq !== tl.last) { tl.last = seq; tl.seen.push([seq, now]); }
  };
  const options = {subtree: true, childList: true, characterData: true};
  const observer = new MutationObserver(read);
  observer.observe(holder, options);
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
    """A TCP port free on 127.0.0.1 right now (for a server a test or benchmark starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def open_page(browser: Any, url: str, css_class: str) -> Any:
    """A session in a browser context of its own: its own window, so Chromium does not throttle
    it as a background tab (in one context, only the front tab renders at 60 Hz)."""
    page = browser.new_context().new_page()
    page.goto(url, wait_until="domcontentloaded")
    deadline = time.monotonic() + 60
    while not page.evaluate(RECORDER_JS, css_class):
        if time.monotonic() > deadline:
            page.context.close()
            raise RuntimeError(f"no .{css_class} showing a number on {url} within 60 s")
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


def start_recording(pages: list) -> list[float]:
    """Clear what the pages recorded and record from now; returns their clock offsets."""
    offsets = [clock_offset_ms(p) for p in pages]
    for page in pages:
        page.evaluate("window.__tl.seen = []; window.__tl.gaps = []; window.__tl.recording = true")
    return offsets


def shown_seq(pages: list) -> list[int | None]:
    return [p.evaluate("window.__tl.last") for p in pages]


def stop_recording(pages: list) -> list[tuple[list, list]]:
    """Each page's [seq, browser ms] changes and frame gaps since `start_recording`."""
    records = [p.evaluate("[window.__tl.seen, window.__tl.gaps]") for p in pages]
    for page in pages:
        page.evaluate("window.__tl.recording = false")
    return records


def figures(
    records: list[tuple[list, list]],
    offsets: list[float],
    submitted_ms: dict[int, float],
    seq_of: Callable[[int], int | None],
    *,
    seconds: float,
    achieved: float,
    produced_until_ms: float,
) -> dict[str, Any]:
    """Latency of each event on each page: from its submit to the first change showing its seq
    or a later one (a coalesced update counts for every event it covers)."""
    last_seq = seq_of(max(submitted_ms)) if submitted_ms else None
    latencies: list[tuple[float, float]] = []
    unseen, updates, drains = 0, [], []
    for (seen, _), offset in zip(records, offsets, strict=True):
        times = [t - offset for _, t in seen]
        highest = list(accumulate((s for s, _ in seen), max))
        updates.append(len(seen) / seconds)
        for n, at_ms in submitted_ms.items():
            seq = seq_of(n)
            i = bisect_left(highest, seq) if seq is not None else len(highest)
            if i == len(highest):
                unseen += 1
            else:
                latencies.append((at_ms, times[i] - at_ms))
        if last_seq is not None and highest and highest[-1] >= last_seq:
            drains.append(max(0.0, times[bisect_left(highest, last_seq)] - produced_until_ms))
    gaps = [g for _, page_gaps in records for g in page_gaps]
    return summarize(latencies, gaps, seconds, achieved, unseen, updates, drains)


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
    out = {
        "events_per_s": achieved,
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
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in out.items()}
