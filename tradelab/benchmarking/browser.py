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
    if (previous !== null && tl.recording) {
      const gap = t - previous;
      tl.gaps.push(gap);
      if (gap > 50) keep(tl.longGaps, {gap_ms: gap, end_ms: t});
    }
    previous = t;
    requestAnimationFrame(frame);
  };
  // The longest frames while recording, with what the renderer did in them: Chromium's
  // long-animation-frame entries attribute the script time (invoker, source, function) and
  // split off style and layout; plain 'longtask' entries where those are missing.
  tl.longFrames = []; tl.longGaps = []; tl.longCount = 0;
  const keep = (list, item) => {  // the TOP_LONG largest by their first value, nothing more
    list.push(item);
    const key = (x) => x.gap_ms !== undefined ? x.gap_ms : x.duration_ms;
    list.sort((a, b) => key(b) - key(a));
    if (list.length > TOP_LONG) list.length = TOP_LONG;
  };
  const round = (x) => Math.round(x * 10) / 10;
  const summary = (e) => {
    const end = e.startTime + e.duration;
    const out = {kind: e.entryType, start_ms: round(e.startTime), duration_ms: round(e.duration)};
    if (e.entryType === 'long-animation-frame') {
      const scripts = [...e.scripts].sort((a, b) => b.duration - a.duration);
      out.blocking_ms = round(e.blockingDuration);
      out.script_ms = round(scripts.reduce((s, x) => s + x.duration, 0));
      out.render_ms = e.renderStart ? round(end - e.renderStart) : 0;
      out.style_layout_ms = e.styleAndLayoutStart ? round(end - e.styleAndLayoutStart) : 0;
      out.forced_layout_ms = round(
        scripts.reduce((s, x) => s + (x.forcedStyleAndLayoutDuration || 0), 0));
      out.scripts = scripts.slice(0, 3).map((x) => ({
        invoker: x.invoker, type: x.invokerType, ms: round(x.duration),
        forced_layout_ms: round(x.forcedStyleAndLayoutDuration || 0),
        source: (x.sourceURL || '').split('/').pop() + ':' + (x.sourceFunctionName || '?'),
      }));
    }
    return out;
  };
  const types = PerformanceObserver.supportedEntryTypes || [];
  const type = types.includes('long-animation-frame') ? 'long-animation-frame'
    : types.includes('longtask') ? 'longtask' : null;
  if (type !== null && !tl.observer) {
    tl.observer = new PerformanceObserver((list) => {
      if (!tl.recording) return;
      for (const e of list.getEntries()) { tl.longCount += 1; keep(tl.longFrames, summary(e)); }
    });
    tl.observer.observe({type, buffered: false});
  }
  requestAnimationFrame(frame);
  return true;
}
""".replace("TOP_LONG", "8")


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
        page.evaluate(
            "Object.assign(window.__tl, {seen: [], gaps: [], longFrames: [], longGaps: [], "
            "longCount: 0, recording: true})"
        )
    return offsets


def shown_seq(pages: list) -> list[int | None]:
    return [p.evaluate("window.__tl.last") for p in pages]


def stop_recording(pages: list) -> list[tuple[list, list, dict]]:
    """Each page's [seq, browser ms] changes, frame gaps and its longest frames (with their
    attribution) and frame gaps since `start_recording`."""
    records = [
        p.evaluate(
            "[window.__tl.seen, window.__tl.gaps, {frames: window.__tl.longFrames, "
            "gaps: window.__tl.longGaps, count: window.__tl.longCount}]"
        )
        for p in pages
    ]
    for page in pages:
        page.evaluate("window.__tl.recording = false")
    return records


def long_frames(records: list[tuple[list, list, dict]], top: int = 5) -> dict[str, Any]:
    """The longest frames over all pages (page index, timings, the scripts that ran longest)
    and the longest frame gaps with the long frames that overlap them: a gap no long frame
    covers is a renderer that was not scheduled (the cores were busy elsewhere)."""
    frames = [{"page": i, **f} for i, (_, _, long) in enumerate(records) for f in long["frames"]]
    frames.sort(key=lambda f: -f["duration_ms"])
    gaps = []
    for i, (_, _, long) in enumerate(records):
        for gap in long["gaps"]:
            start = gap["end_ms"] - gap["gap_ms"]
            inside = [
                f
                for f in long["frames"]
                if f["start_ms"] < gap["end_ms"] and f["start_ms"] + f["duration_ms"] > start
            ]
            gaps.append(
                {
                    "page": i,
                    "gap_ms": round(gap["gap_ms"], 1),
                    "long_frames_ms": [f["duration_ms"] for f in inside],
                }
            )
    gaps.sort(key=lambda g: -g["gap_ms"])
    return {
        "long_tasks_per_page": [long["count"] for _, _, long in records],
        "long_tasks_top": frames[:top],
        "frame_gaps_top": gaps[:top],
    }


def figures(
    records: list[tuple[list, list, dict]],
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
    for (seen, _, _), offset in zip(records, offsets, strict=True):
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
    gaps = [g for _, page_gaps, _ in records for g in page_gaps]
    out = summarize(latencies, gaps, seconds, achieved, unseen, updates, drains)
    return {**out, **long_frames(records)}


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
