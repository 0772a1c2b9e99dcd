"""`build_writer`: the in-process writer (and its segment sealer) for a `WriterSettings`.

One recipe for both layouts: the writer thread in the engine's process (journal.py) and the
writer process (writer_process.py). Nothing here runs a thread; the caller starts what it gets.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from tradelab.errors import RecoveryError
from tradelab.journal.buffer_pool import BufferPoolLimit
from tradelab.journal.checkpoint import wal_path
from tradelab.journal.segments import SegmentSealer, segment_dir
from tradelab.journal.tailmark import TailMark
from tradelab.journal.wire import WriterSettings
from tradelab.journal.writer import FailureCallback, GroupCallback
from tradelab.journal.writer_thread import ThreadJournalWriter


def build_writer(
    con: duckdb.DuckDBPyConnection,
    tailmark: TailMark,
    settings: WriterSettings,
    *,
    on_group_committed: GroupCallback | None = None,
    on_failed: FailureCallback | None = None,
    buffer_pool: BufferPoolLimit | None = None,
    on_segments_failed: Callable[[str], None] | None = None,
) -> tuple[ThreadJournalWriter, SegmentSealer | None]:
    """The writer (and, with segments, the sealer fed by its commits) for `settings`, not started.

    One recipe for both layouts: the writer thread in the engine's process, and the writer
    process (writer_process.py). With `buffer_pool`, DuckDB's cache is trimmed after each
    checkpoint. `on_segments_failed(text)`: the sealer stopped for good (a full disk, a removed
    directory); the journal itself goes on.
    """
    sealer = None
    writer: ThreadJournalWriter | None = None  # made below; the sealer's callback reads it

    def segments_failed(text: str) -> None:
        # The file's own damage, read back by the sealer, fails the writer too: appending to
        # a journal that cannot be read back whole would hide it (exit 1 for `run`).
        if on_segments_failed is not None:
            on_segments_failed(text)
        if sealer is not None and sealer.damaged and writer is not None:
            writer.fail_from_outside(RecoveryError(text))

    if settings.segments:
        sealer = SegmentSealer(
            segment_dir(settings.path),
            con,
            sealed_seq=settings.sealed_seq,
            journal_last_seq=settings.last_seq,
            every_events=settings.segment_every_events,
            every_seconds=settings.segment_every_seconds,
            buffer_pool=buffer_pool,
            on_failed=segments_failed,
        )

    def committed(first: int, last: int) -> None:
        if on_group_committed is not None:
            on_group_committed(first, last)
        if sealer is not None:
            sealer.add(first, last)

    writer = ThreadJournalWriter(
        con,
        tailmark,
        last_seq=settings.last_seq,
        next_snapshot_id=settings.next_snapshot_id,
        group_commit_ms=settings.group_commit_ms,
        max_group_events=settings.max_group_events,
        max_pending_events=settings.max_pending_events,
        keep_snapshots=settings.keep_snapshots,
        checkpoint_idle_seconds=settings.checkpoint_idle_seconds,
        checkpoint_wal_bytes=settings.checkpoint_wal_bytes,
        wal=wal_path(settings.path),
        after_checkpoint=buffer_pool.trim if buffer_pool is not None else None,
        on_group_committed=committed,
        on_failed=on_failed,
    )
    writer.sealer = sealer
    return writer, sealer
