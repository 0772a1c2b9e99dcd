"""The console's bar chart on a market-hours axis: each bar takes one slot, so a night, a
weekend or a holiday between two bars takes no room.

On a datetime axis a 15m history of a few days was mostly flat line across closed market (a
session is 6¼ of 24 hours), and the bars a thin strip. Bar k of the chart spans x = slot_k to
slot_k + 1; slots run on by one per bar as bars are streamed, so a bar already in the browser
never moves. The tick labels read the exchange time (IST) from the chart's own source, by a
Bokeh formatter: a tick inside a bar reads that bar's start plus the share of its length; the
room kept for bars to come is not labelled (the next bar may be the next day's: a time read on
from the last bar said 16:45, after the close).
"""

from __future__ import annotations

import bisect

import pandas as pd
from bokeh.models import ColumnDataSource, CustomJSTickFormatter

AXIS_LABEL = "exchange time (IST), market hours only"

_LABEL_JS = """
const xs = source.data.slot, ts = source.data.start_ms, ws = source.data.width_ms;
const n = xs.length;
if (n == 0 || tick < xs[0] || tick > xs[n - 1] + 1) { return "" }  // no bar: no time known
let lo = 0, hi = n - 1;
while (lo < hi) {
  const mid = (lo + hi + 1) >> 1;
  if (xs[mid] <= tick) { lo = mid } else { hi = mid - 1 }
}
const t = new Date(ts[lo] + (tick - xs[lo]) * ws[lo]);
const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                "Dec"];
const pad = (v) => String(v).padStart(2, "0");
return pad(t.getUTCDate()) + " " + months[t.getUTCMonth()] + " " + pad(t.getUTCHours()) + ":"
  + pad(t.getUTCMinutes());
"""


def slot_formatter(source: ColumnDataSource) -> CustomJSTickFormatter:
    """Tick labels for a chart whose `source` has `slot`, `start_ms` and `width_ms` columns."""
    return CustomJSTickFormatter(args={"source": source}, code=_LABEL_JS)


def slot_label(slots: list[float], start_ms: list[float], width_ms: list[float], x: float) -> str:
    """The tick label at `x`, as `slot_formatter` draws it (its Python twin, for tests)."""
    if not slots or x < slots[0] or x > slots[-1] + 1:
        return ""  # the room before the first bar or after the last: no market time there
    i = max(bisect.bisect_right(slots, x) - 1, 0)
    at = pd.Timestamp(int(round(start_ms[i] + (x - slots[i]) * width_ms[i])) * 10**6)
    return at.strftime("%d %b %H:%M")


def bar_columns(frame: pd.DataFrame, first_slot: int) -> dict[str, object]:
    """The chart's columns for the bars of `frame`, the first in slot `first_slot`."""
    # Naive local times: the labels read the exchange's clock (IST).
    start = frame["start"].dt.tz_localize(None)
    end = frame["end"].dt.tz_localize(None)
    slots = [float(first_slot + i) for i in range(len(frame))]
    return {
        "slot": slots,
        "right": [s + 1.0 for s in slots],
        "mid": [s + 0.5 for s in slots],
        "start_ms": start.dt.as_unit("ms").astype("int64").astype(float).to_numpy(),
        "width_ms": ((end - start).dt.total_seconds() * 1000.0).to_numpy(),
        "open": frame["open"].to_numpy(),
        "high": frame["high"].to_numpy(),
        "low": frame["low"].to_numpy(),
        "close": frame["close"].to_numpy(),
        "color": [
            "#2ca02c" if c >= o else "#d62728"
            for o, c in zip(frame["open"], frame["close"], strict=True)
        ],
    }
