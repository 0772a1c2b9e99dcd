"""`Engine.metrics()`: the engine's counters in one dict (queue, kernel, writer).

Thread model: any thread; every figure is read without a lock, so they are each current but not
taken at one instant together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tradelab.journal.segments import list_segments, segment_dir


def engine_metrics(
    engine: Any, queue: Any, writer: Any, kernel: Any, priority: Any
) -> dict[str, Any]:
    return {
        "state": engine.state,
        "version": engine.store.version,
        "queue_depth": len(queue),
        "queue_limit": queue.max_events,
        "queue_high_water": queue.high_water,
        "producer_lanes": queue.metrics_lanes(),
        "producer_waits": queue.waits,
        "producer_wait_seconds": queue.wait_seconds,
        "overload_refusals": queue.refusals,
        # Ordinary submits that stepped aside for a critical in flight, and for how long.
        "critical_priority_waits": priority.waits,
        "critical_priority_wait_seconds": priority.wait_seconds,
        "rejected_events": engine.rejected_events,
        # Time the kernel spent applying, handing to the writer and publishing; time blocking
        # submitters spent waiting for their events to become durable (summed over them).
        "kernel_seconds": kernel.busy_seconds if kernel is not None else 0.0,
        # Blocking submits that found the kernel free and processed their own event.
        "events_processed_by_submitters": kernel.run_here_events if kernel is not None else 0,
        "durable_wait_seconds": engine.durable_wait_seconds,
        "durable_seq": writer.durable_seq if writer else 0,
        "groups_committed": writer.groups_committed if writer else 0,
        "events_committed": writer.events_committed if writer else 0,
        # Parquet files readers open (merged as they accumulate: journal/segments.py).
        "segment_files": len(list_segments(segment_dir(Path(engine.config.journal_path))))
        if engine.config.segments_enabled
        else 0,
        # 1 once the sealer stopped (a full disk, a removed folder): segments are stale.
        "segments_failed": int(bool(writer and writer.segments_failure)),
        # Where the journal writer runs: a process of its own or a thread here, and its pid;
        # its bounded queue of work not yet committed to DuckDB.
        **(writer.describe() if writer else {"writer": None, "writer_pid": None}),
        **(writer.pending_metrics() if writer else {}),
        # Batch handed over -> DuckDB commit reported; critical batch -> submitters released.
        **(writer.latency_metrics() if writer else {}),
    }
