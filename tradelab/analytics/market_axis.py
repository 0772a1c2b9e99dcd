"""A time axis of market hours: a night, a weekend or a holiday takes one bar's width.

On a plain datetime axis a Friday-and-Monday file of 1-minute bars gave its 12.5 trading hours
16 % of the chart, the rest a flat line across closed market. Here every gap longer than the
file's usual spacing (its median) is drawn as that spacing; time within a session keeps its
proportions. Ticks are labelled with the exchange time (IST) they stand for, by a Bokeh
formatter that holds only the axis's break points (one per session), not every point.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
from bokeh.models import CustomJSTickFormatter

DIMENSION = hv.Dimension("market_time", label="exchange time (IST), market hours only")

# Break points: (axis seconds, epoch ms of the naive IST time there). Between two break points
# the axis runs at one second a second; the label reads the wall clock of the IST time.
_LABEL_JS = """
let lo = 0, hi = xs.length - 1;
while (lo < hi) {
  const mid = (lo + hi + 1) >> 1;
  if (xs[mid] <= tick) { lo = mid } else { hi = mid - 1 }
}
let t;
if (daily) {  // the nearest bar's date: between two bars is no time of day
  const k = Math.round((tick - xs[lo]) / step);
  const next = lo + 1 < xs.length && xs[lo] + k * step >= xs[lo + 1] - 1e-6;
  t = new Date(next ? ms[lo + 1] : ms[lo] + k * step * 1000);
} else {
  t = new Date(ms[lo] + (tick - xs[lo]) * 1000);
}
const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                "Dec"];
const pad = (n) => String(n).padStart(2, "0");
const day = pad(t.getUTCDate()) + " " + months[t.getUTCMonth()];
if (daily) { return day + " " + t.getUTCFullYear() }
return day + " " + pad(t.getUTCHours()) + ":" + pad(t.getUTCMinutes());
"""


class MarketAxis:
    """The axis of the times in `times` (naive IST datetimes, e.g. the views' `time`): every
    element of one chart, or of charts that share their axis, is placed with one MarketAxis."""

    def __init__(self, *times: pd.Series) -> None:
        parts = [_ns(t) for t in times if len(t)]
        stamps = np.unique(np.concatenate(parts)) if parts else np.zeros(1, dtype="int64")
        gaps = np.diff(stamps)
        step = int(np.median(gaps)) if len(gaps) else 60 * 10**9
        self._stamps = stamps
        self._xs = np.concatenate([[0], np.cumsum(np.minimum(gaps, step))]) / 1e9
        breaks = np.concatenate([[0], np.flatnonzero(gaps > step) + 1])
        self._breaks = self._xs[breaks], stamps[breaks] // 10**6
        self._step = step / 1e9
        # Bars a day or more apart (their marks at the bar's last second): dates, not times.
        self._daily = step >= 23 * 3600 * 10**9

    def x(self, times: pd.Series) -> np.ndarray:
        """The axis positions (seconds of market time) of `times`, each one of the axis's."""
        i = np.searchsorted(self._stamps, _ns(times))
        return self._xs[np.clip(i, 0, len(self._xs) - 1)]

    def formatter(self) -> CustomJSTickFormatter:
        xs, ms = self._breaks
        args = {"xs": xs.tolist(), "ms": ms.tolist(), "daily": self._daily, "step": self._step}
        return CustomJSTickFormatter(args=args, code=_LABEL_JS)

    def label(self, x: float) -> str:
        """The tick label at axis position `x`, as the formatter draws it (for tests, notes)."""
        xs, ms = self._breaks
        i = max(int(np.searchsorted(xs, x, side="right")) - 1, 0)
        if not self._daily:
            return pd.Timestamp(int(ms[i]) * 10**6 + int(round((x - xs[i]) * 1e9))).strftime(
                "%d %b %H:%M"
            )
        k = round((x - xs[i]) / self._step)
        if i + 1 < len(xs) and xs[i] + k * self._step >= xs[i + 1] - 1e-6:
            return pd.Timestamp(int(ms[i + 1]) * 10**6).strftime("%d %b %Y")
        return pd.Timestamp(int(ms[i]) * 10**6 + int(k * self._step * 1e9)).strftime("%d %b %Y")

    def place(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` (with a `time` column) with its axis position as `market_time`."""
        return frame.assign(market_time=self.x(frame["time"]))


def _ns(times: pd.Series) -> np.ndarray:
    return pd.to_datetime(times).to_numpy("datetime64[ns]").astype("int64")
