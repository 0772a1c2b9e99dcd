"""When the journal writer CHECKPOINTs DuckDB: when idle, and on a WAL-size bound while busy.

DuckDB keeps what the WAL holds in memory as well until a checkpoint, so a writer that only
checkpoints when idle grows its WAL and its memory for as long as the load lasts. A busy
checkpoint delays the writer's next group by its duration; in the writer process critical acks
come from the ack log meanwhile, on a writer thread (no ack log) they wait for it. Thread model:
used only by the writer thread that owns the cursor.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

# How often the WAL's size is looked at while busy: a stat costs a few microseconds, a commit
# happens every group-commit window.
WAL_STAT_SECONDS = 0.1
# The busy bound's default (EngineConfig.checkpoint_wal_bytes). Under a flood DuckDB holds the
# rows of an 8 MB WAL in ~10 MB of its buffers until the checkpoint: the writer process's
# sawtooth. 16 MB gave ~8 MB more RSS at the same durable rate (benchmarks/overload.py).
DEFAULT_WAL_BYTES = 8 << 20
# After a busy checkpoint was refused (a reader's transaction was open), try again this much later.
RETRY_SECONDS = 0.5


def wal_path(journal_path: str | Path) -> Path:
    return Path(f"{journal_path}.wal")


class CheckpointPolicy:
    """Decides and runs checkpoints; counts them (`checkpoints`, `busy_checkpoints`, `refused`)."""

    def __init__(
        self,
        wal: Path | None,
        *,
        idle_seconds: float,
        wal_bytes: int,
        now: float | None = None,
        after_checkpoint: Callable[[duckdb.DuckDBPyConnection], object] | None = None,
    ) -> None:
        self._wal = wal
        self._idle = idle_seconds
        self._wal_bytes = wal_bytes
        self._next_look = 0.0
        self._after = after_checkpoint  # e.g. trimming DuckDB's buffer pool (buffer_pool.py)
        self.dirty = False
        self.last_activity = time.monotonic() if now is None else now
        self.checkpoints = 0
        self.busy_checkpoints = 0
        self.refused = 0
        self.seconds = 0.0

    def wrote(self, now: float) -> None:
        self.dirty = True
        self.last_activity = now

    def idle_due(self, now: float) -> bool:
        return self.dirty and now - self.last_activity >= self._idle

    def busy_due(self, now: float) -> bool:
        """The WAL passed its bound (looked at most every WAL_STAT_SECONDS)."""
        if not self.dirty or self._wal is None or not self._wal_bytes or now < self._next_look:
            return False
        self._next_look = now + WAL_STAT_SECONDS
        try:
            return os.stat(self._wal).st_size >= self._wal_bytes
        except FileNotFoundError:
            return False

    def run(
        self, cur: duckdb.DuckDBPyConnection, *, busy: bool = False, force: bool = False
    ) -> bool:
        """CHECKPOINT now; False when DuckDB refused because another cursor's transaction was
        open (the segment sealer reading): tried again RETRY_SECONDS later. `force` waits for
        that transaction instead (a clean stop)."""
        started = time.perf_counter()
        try:
            cur.execute("FORCE CHECKPOINT" if force else "CHECKPOINT")
        except duckdb.TransactionException as exc:
            if force:
                raise
            self.refused += 1
            self._next_look = time.monotonic() + RETRY_SECONDS
            self.last_activity = time.monotonic()  # the idle checkpoint waits as long
            log.debug("checkpoint refused, retried later: %s", exc)
            return False
        self.seconds += time.perf_counter() - started
        self.dirty = False
        self.checkpoints += 1
        self.busy_checkpoints += busy
        if self._after is not None and not force:  # a forced one ends the writer: no need
            self._after(cur)
        return True
