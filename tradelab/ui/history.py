"""`MetricsHistory`: the engine's journaled `metrics.sampled` figures for the console's metrics tab,
from the journal (what earlier runs sampled, read once at start through analytics'
`metrics_history` view) and then live from the bus; and `history_plot`, its HoloViews chart.

Bounded: the newest `size` samples are kept (the oldest dropped, counted in `dropped`).
Thread model: `on_event` runs on the engine's kernel thread (O(1), a short lock); `frame()` on
session callbacks, built once per version whatever the number of sessions.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path
from typing import Any

import duckdb
import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (styling options need a backend registered)
import pandas as pd

from tradelab.errors import TradelabError
from tradelab.journal.journal_file import refuse_if_damaged
from tradelab.market.instruments import IST

log = logging.getLogger(__name__)

#: The figures charted, with their axis labels.
CHARTED = {
    "events_per_s": "events/s",
    "queue_depth": "kernel queue depth",
    "commit_p99_ms": "journal commit p99 (ms)",
    "critical_ack_p99_ms": "critical ack p99 (ms)",
    "sessions": "console sessions",
    "push_lag_ms_p99": "push lag p99 (ms)",
}
COLUMNS = ["journal_time", "seq", "applied_seq", "durable_seq", *CHARTED, "commit_p50_ms"]


class MetricsHistory:
    """`seed(journal_path)` once before the engine starts; `on_event` as a bus handler."""

    def __init__(self, size: int) -> None:
        self._rows: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.version = 0
        self.dropped = 0
        self._frame: tuple[int, pd.DataFrame] | None = None

    def seed(self, journal: str | Path) -> int:
        """The samples an earlier run journaled; returns how many (0 with no journal yet).
        A journal that cannot be read leaves the history to the live samples (logged)."""
        if not Path(journal).exists():
            return 0
        from tradelab.analytics import Analytics  # analytics only here: a console import

        try:
            frame = Analytics(journal).view("metrics_history")
        except (TradelabError, duckdb.Error) as exc:
            refuse_if_damaged(exc, journal, "metrics history")
            log.warning("metrics history not read from %s: %s", journal, exc)
            return 0
        frame = frame.tail(self._rows.maxlen)
        with self._lock:
            for row in frame.to_dict("records"):
                self._append(row)
        return len(frame)

    def on_event(self, event: Any) -> None:
        """Bus handler for `metrics.sampled` (journaled: `seq` and `ts` are the engine's)."""
        row = dict(event.payload)
        row["seq"] = event.seq
        row["journal_time"] = (
            pd.Timestamp(event.ts, unit="ns", tz="UTC").tz_convert(IST).tz_localize(None)
        )
        with self._lock:
            self._append(row)

    def _append(self, row: dict[str, Any]) -> None:
        if len(self._rows) == self._rows.maxlen:
            self.dropped += 1
        self._rows.append({c: row.get(c) for c in COLUMNS})
        self.version += 1

    def frame(self) -> tuple[int, pd.DataFrame]:
        """(version, the samples oldest first; times naive IST); callers must not mutate it."""
        with self._lock:
            version = self.version
            if self._frame is not None and self._frame[0] == version:
                return self._frame
            rows = list(self._rows)
        frame = pd.DataFrame(rows, columns=COLUMNS)
        for column in COLUMNS[1:]:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        with self._lock:
            self._frame = (version, frame)
        return version, frame


def history_plot(frame: pd.DataFrame) -> hv.Layout:
    """One small curve per charted figure over journal time (IST), two a row."""
    time = ("journal_time", "journal time (IST)")  # the wall clock's, as the tape says
    curves = []
    for column, label in CHARTED.items():
        line = hv.Curve(frame, time, (column, label)).opts(
            responsive=True, height=180, ylabel="", tools=["hover"]
        )
        points = hv.Scatter(frame, time, (column, label)).opts(size=5)
        curves.append((line * points).opts(title=label))  # points: one sample is still seen
    return hv.Layout(curves).cols(2).opts(shared_axes=False)
