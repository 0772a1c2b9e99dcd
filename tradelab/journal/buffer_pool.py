"""DuckDB's memory limit in the journal writer process, and its trim after each checkpoint.

The limit has to be generous for the moments that need it (a Parquet segment of 2 KB events
allocates ~31 MB at once; a checkpoint pins a snapshot's block whole), but DuckDB keeps every
block a CHECKPOINT wrote cached up to that limit: under a flood the writer process grew ~1 MB/s
until it reached it. Nothing reads those blocks back (the writer only appends, the sealer reads
each event once; readers have their own connections), so right after each checkpoint the writer
thread lowers the limit to `trim_mb` and raises it again: DuckDB evicts what is unpinned to meet
the lower limit, and its allocator gives the memory back. A trim that cannot free enough is
refused by DuckDB and changes nothing.

Only then: between checkpoints DuckDB holds the rows not yet checkpointed in evictable blocks,
and a trim would spill them to `<journal>.tmp`; and it must not overlap an allocation on another
thread. The writer thread appends and checkpoints itself, the sealer's copy holds `in_use()`,
and a trim that finds it held is skipped (the next checkpoint trims).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

log = logging.getLogger(__name__)

# What the pool is trimmed to. Right after a checkpoint nothing pinned comes near it; at 8 MB the
# table's ~8 MB of cached blocks stayed (duckdb_memory(): BASE_TABLE) through every trim.
TRIM_MB = 1


class BufferPoolLimit:
    """The memory limit of one DuckDB database (`limit_mb`, raised by `fit`), trimmed by `trim`.

    Counts `trims` done and `trims_skipped` (the sealer was copying, or DuckDB could not free
    enough). Thread-safe: `fit` on the frame reader, `trim` on the writer thread, `in_use` on
    the sealer's.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, limit_mb: int, trim_mb: int = TRIM_MB):
        if trim_mb <= 0 or limit_mb <= 0:
            raise ValueError(f"memory limits must be positive (limit {limit_mb}, trim {trim_mb})")
        self._con = con
        self._lock = threading.Lock()
        self.trim_mb = min(trim_mb, limit_mb)
        self.limit_mb = 0
        self.trims = 0
        self.trims_skipped = 0
        self.fit(limit_mb)

    def fit(self, need_mb: int) -> None:
        """Raise the limit to `need_mb` if it is lower (it never shrinks for good)."""
        with self._lock:
            if need_mb > self.limit_mb:
                cur = self._con.cursor()  # its own: the writer thread uses the connection's
                try:
                    self._set(cur, need_mb)
                finally:
                    cur.close()
                self.limit_mb = need_mb

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Held while a large allocation may happen on another thread: no trim meanwhile."""
        with self._lock:
            yield

    def trim(self, cur: duckdb.DuckDBPyConnection) -> bool:
        """Evict the cached blocks down to trim_mb, then restore the limit; False if skipped."""
        if not self._lock.acquire(blocking=False):
            self.trims_skipped += 1
            return False
        try:
            try:
                self._set(cur, self.trim_mb)
            except duckdb.Error as exc:  # more than trim_mb pinned: DuckDB kept the old limit
                self.trims_skipped += 1
                log.debug("buffer pool trim refused: %s", exc)
                return False
            self._set(cur, self.limit_mb)
            self.trims += 1
            return True
        finally:
            self._lock.release()

    @staticmethod
    def _set(cur: duckdb.DuckDBPyConnection, mb: int) -> None:
        # An int from our own arithmetic, never user text: SET takes no parameters.
        cur.execute(f"SET memory_limit = '{int(mb)}MB'")
