"""Axis ranges that move in steps: what a live chart shows instead of ranges fitted to its data.

A range fitted to the data (Bokeh's `DataRange1d`) moves at every update, so every update brings
new tick labels, which the browser measures before it lays the figure out again: in a storm that
was the longest frame of every page. These ranges are computed by the server and stay put while
the data fit them (with room left ahead in time), so most updates repaint the glyphs only.
Pure functions: a range is a `(start, end)` pair; `shown` is the range on screen (None: none).
"""

from __future__ import annotations

import math

#: Share of a value span added above and below it when a value range has to move.
VALUE_PAD = 0.1


def time_range(
    shown: tuple[float, float] | None, first: float, last: float, pad: float, ahead: float
) -> tuple[float, float]:
    """The range for times from `first` to `last`: `shown` while it holds them with at most
    `ahead` spare on the left (old data roll off there), else from `pad` before `first` to
    `ahead` past `last` (room for the next updates)."""
    holds = shown is not None and last <= shown[1]
    if holds and first - ahead <= shown[0] <= first - pad:
        return shown
    return (first - pad, last + ahead)


def value_range(shown: tuple[float, float] | None, low: float, high: float) -> tuple[float, float]:
    """The range for values from `low` to `high`: `shown` while it holds them and is at most
    three times their padded span, else their span padded by `VALUE_PAD` (at least half a step)
    and rounded out to a step of about a fifth of it (tick-like values)."""
    span = high - low
    step = nice_step(span * (1 + 2 * VALUE_PAD) or abs(high) or 1.0)
    pad = max(VALUE_PAD * span, step / 2)
    holds = shown is not None and shown[0] <= low and high <= shown[1]
    if holds and shown[1] - shown[0] <= 3 * (span + 2 * pad):
        return shown
    return (math.floor((low - pad) / step) * step, math.ceil((high + pad) / step) * step)


def nice_step(span: float) -> float:
    """A 1, 2 or 5 times a power of ten step giving about five ticks over `span` (> 0)."""
    raw = max(span, 1e-9) / 5
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
