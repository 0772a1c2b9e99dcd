"""Shared scaffolding for tradelab's benchmarks: interleaved rounds, medians, machine, table.

Each benchmark module builds a list of `Case`s and calls `run_interleaved`; every round runs
every case once, in the same order, so drift on a shared machine hits all cases alike.
Single-threaded: a benchmark owns the process while it runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Case:
    """One measured thing: `run(n)` performs n operations; its wall time is one sample."""

    scenario: str
    contender: str
    run: Callable[[int], None]
    samples_s: list[float] = field(default_factory=list)

    def ops_per_s(self, n: int) -> list[float]:
        return [n / s for s in self.samples_s]


def run_interleaved(cases: Sequence[Case], n: int, rounds: int, warmup_n: int = 0) -> None:
    """Time each case `rounds` times, round-robin; a warm-up pass of `warmup_n` ops first."""
    if warmup_n:
        for case in cases:
            case.run(warmup_n)
    for _ in range(rounds):
        for case in cases:
            started = time.perf_counter()
            case.run(n)
            case.samples_s.append(time.perf_counter() - started)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentiles(values: Sequence[float], *qs: int) -> list[float]:
    """The `qs`-th percentiles (whole numbers 1..99) of `values`, interpolated between samples
    (`statistics.quantiles`, inclusive method); nan for no values."""
    if len(values) < 2:
        return [values[0] if values else float("nan")] * len(qs)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return [cuts[q - 1] for q in qs]


def machine_info() -> dict[str, Any]:
    total_mem = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        total_mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": round(total_mem / 2**30, 1) if total_mem else None,
        "date": dt.date.today().isoformat(),
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with right-aligned numbers, for terminals and README blocks."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row, raw in zip(cells, rows, strict=True):
        lines.append(
            "  ".join(
                c.rjust(w) if isinstance(v, int | float) else c.ljust(w)
                for c, v, w in zip(row, raw, widths, strict=True)
            )
        )
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):  # thousands separated from 1,000 up, as rates read best
        return f"{value:.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)
