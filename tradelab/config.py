"""`EngineConfig`: every knob of the engine, its journal, snapshots and segments, declared once.

A param.Parameterized so bounds are checked on assignment and a notebook can show it with
`pn.Param`. Read by the engine at `start()`; changing it afterwards has no effect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import param

from tradelab.errors import InvalidInputError
from tradelab.journal.checkpoint import DEFAULT_WAL_BYTES
from tradelab.journal.schema import check_wal_autocheckpoint


class _SizeString(param.String):
    """A DuckDB size such as "1GB"; anything else is refused when set (InvalidInputError)."""

    def _validate_value(self, value: object, allow_None: bool) -> None:
        super()._validate_value(value, allow_None)
        check_wal_autocheckpoint(value)


# The longest wait or interval a setting takes: a day. Past it (or .inf) a timer overflows the
# platform's time_t, in this process or the writer's.
DAY_S = 86_400.0


class EngineConfig(param.Parameterized):
    """How an `Engine` journals, snapshots and seals its events."""

    journal_path = param.String(
        default="data/lab.duckdb",
        doc="DuckDB journal file; its parent directory is created when missing.",
    )
    group_commit_ms = param.Number(
        default=10.0,
        bounds=(0.0, 1000.0),
        doc="An ordinary event is committed at most this long after it was queued; a critical "
        "event is committed at once.",
    )
    max_group_events = param.Integer(
        default=20_000,
        bounds=(1, None),
        doc="A commit group is closed early when it holds this many events.",
    )
    writer_max_pending_events = param.Integer(
        default=40_000,
        bounds=(1, None),
        doc="Bound of the events the journal writer holds for DuckDB (~2 x max_group_events, "
        "~15 MB). When DuckDB falls behind and it is full, the writer stops taking events: the "
        "kernel waits on it, the submit queue fills and producers wait (backpressure).",
    )
    kernel_batch_size = param.Integer(
        default=200,
        bounds=(1, None),
        doc="The kernel thread takes at most this many submitted events per pass (smaller "
        "passes: a critical event waits behind less of a flood; benchmarks/README.md).",
    )
    writer_pipe_bytes = param.Integer(
        default=16 << 10,
        bounds=(4096, 1 << 20),
        doc="Size of the pipe to the writer process (bytes; capped by the system's "
        "pipe-max-size): events in flight before the kernel waits on the writer. A critical "
        "event waits behind what the pipe holds. Not used with writer_process=False.",
    )
    accept_lost_tail = param.Boolean(
        default=False,
        doc="Start on a journal whose last committed events are lost (its high-water mark is "
        "past its last seq: a torn WAL tail), recording the loss as journal.damage_detected and "
        "going on from the last seq it holds. Off: such a journal is refused as damaged, as "
        "the store would not be the fold of what was committed and acknowledged.",
    )
    writer_stall_seconds = param.Number(
        default=30.0,
        bounds=(0.0, None),
        doc="A writer process that owes an answer (events not yet committed, a snapshot or "
        "flush asked for) and sends nothing for this long is failed and killed, so a hung disk "
        "or a stopped process ends the session with a clear error instead of stalling it; "
        "acknowledged events are in the ack log. 0 = wait forever. Not used with "
        "writer_process=False.",
    )
    max_queued_events = param.Integer(
        default=10_000,
        bounds=(1, None),
        doc="Bound of the submit queue (~0.1 s of kernel work). When it is full an ordinary "
        "submit waits for room; critical and wait=True submits, whose producers block anyway, "
        "are let in and served first.",
    )
    critical_priority_ms = param.Number(
        default=20.0,
        bounds=(0.0, 60_000.0),
        doc="While critical submits are in flight, an ordinary submit from a thread with a "
        "kernel pass (kernel_batch_size) of its own events queued waits (off the GIL) until "
        "as many have returned as were in flight when it came, this long at most; 0 turns it "
        "off. Keeps a flood's producers from holding the critical path's threads behind "
        "their GIL turns (benchmarks/README.md, Overload).",
    )
    submit_timeout_seconds = param.Number(
        default=10.0,
        bounds=(0.0, DAY_S),
        doc="How long an ordinary submit waits for room in a full queue before it raises "
        "OverloadError (the event is then not accepted).",
    )
    snapshot_every_events = param.Integer(
        default=100_000, bounds=(0, None), doc="Snapshot after this many events (0 = never)."
    )
    snapshot_every_seconds = param.Number(
        default=300.0, bounds=(0.0, DAY_S), doc="Snapshot after this many seconds (0 = never)."
    )
    keep_snapshots = param.Integer(
        default=100, bounds=(1, None), doc="How many of the newest snapshots are kept."
    )
    segment_every_events = param.Integer(
        default=50_000,
        bounds=(0, None),
        doc="Seal a Parquet segment for outside readers after this many events (0 = only on stop).",
    )
    segment_every_seconds = param.Number(
        default=5.0,
        bounds=(0.0, DAY_S),
        doc="Seal a Parquet segment at least this often while events arrive (0 = by count only).",
    )
    checkpoint_idle_seconds = param.Number(
        default=1.0,
        bounds=(0.0, DAY_S),
        doc="CHECKPOINT the DuckDB WAL into the file after the writer was idle this long.",
    )
    checkpoint_wal_bytes = param.Integer(
        default=DEFAULT_WAL_BYTES,
        bounds=(0, None),
        doc="While busy, CHECKPOINT once the DuckDB WAL passes this many bytes, which bounds "
        "the WAL and the memory DuckDB keeps for it (0 = only when idle or stopping).",
    )
    writer_memory_mb = param.Integer(
        default=512,
        bounds=(64, 1 << 22),  # 4 TiB: DuckDB refuses a limit it cannot represent
        doc="DuckDB's memory limit in the writer process, MB (it caches blocks up to it). "
        "Raised on its own to 8x the largest snapshot written: a CHECKPOINT pins a "
        "snapshot's block, and too little memory there stops the writer for good.",
    )
    wal_autocheckpoint = _SizeString(
        default="1GB",
        doc="DuckDB wal_autocheckpoint; the 16 MiB default stalls a commit for ~150 ms.",
    )
    open_timeout_seconds = param.Number(
        default=2.0,
        bounds=(0.0, DAY_S),
        doc="How long to retry when a reader briefly holds the journal file's lock.",
    )
    history_size = param.Integer(
        default=10_000, bounds=(0, 10_000_000), doc="Events kept in the bus history ring."
    )
    state_schema_version = param.Integer(
        default=1, bounds=(1, None), doc="Schema version of the state this code builds."
    )
    writer_process = param.Boolean(
        default=True,
        doc="Run the journal writer (DuckDB commits, snapshot rows, segments) in a process of "
        "its own, beside the kernel rather than under its GIL; False keeps it on a thread.",
    )
    ack_log = param.Boolean(
        default=True,
        doc="With writer_process: acknowledge a critical event once this process has synced it "
        "in the ack log (~0.1 ms) rather than after its own DuckDB commit in the writer process "
        "(~1 ms); DuckDB still gets every event within group_commit_ms, and a restart copies "
        "in any it missed.",
    )
    pin_cpus = param.Boolean(
        default=False,
        doc="Keep every thread of this process off one CPU and give that CPU to the writer "
        "process (needs writer_process and two CPUs). Faster on a dedicated engine process; "
        "it changes this whole process's CPU affinity until stop().",
    )
    segments_enabled = param.Boolean(
        default=True, doc="Seal Parquet segments so other processes can read while running."
    )


def config_with(config: EngineConfig | None, overrides: Mapping[str, Any]) -> EngineConfig:
    """A copy of `config` (defaults if None) with `overrides`: the caller's object stays as they
    made it. An unknown name or a bad value is an InvalidInputError naming it."""
    values = (config if config is not None else EngineConfig()).param.values()
    values.pop("name", None)
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise InvalidInputError(
            f"Engine has no setting {', '.join(map(repr, unknown))}; EngineConfig's are "
            f"{', '.join(sorted(values))}"
        )
    for name, value in overrides.items():  # param's bounds let infinity through
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(
                f"Engine setting {name}={value!r} is refused: not a finite number"
            )
    try:
        return EngineConfig(**{**values, **overrides})
    except (ValueError, TypeError) as exc:  # param's own type and bound checks
        raise InvalidInputError(f"Engine setting refused: {exc}") from None


def writer_settings(cfg: EngineConfig) -> dict[str, Any]:
    """The journal writer's settings (`Journal.start_writer`'s keywords) from an engine config."""
    return dict(
        ack_log=cfg.ack_log,
        group_commit_ms=cfg.group_commit_ms,
        max_group_events=cfg.max_group_events,
        keep_snapshots=cfg.keep_snapshots,
        checkpoint_idle_seconds=cfg.checkpoint_idle_seconds,
        segments=cfg.segments_enabled,
        segment_every_events=cfg.segment_every_events,
        segment_every_seconds=cfg.segment_every_seconds,
        checkpoint_wal_bytes=cfg.checkpoint_wal_bytes,
        memory_limit_mb=cfg.writer_memory_mb,
        max_pending_events=cfg.writer_max_pending_events,
        pipe_bytes=cfg.writer_pipe_bytes,
        stall_seconds=cfg.writer_stall_seconds,
    )
