"""Snapshot rows in the journal: write (with sha256), list, fetch and verify, prune to the newest K.

The stored `sha256` is of the exact state bytes written, so any change to the row is caught on
load. Functions take the cursor of the thread calling them (the writer thread, or recovery).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import duckdb
import msgspec


class SnapshotInfo(msgspec.Struct, frozen=True):
    """One stored snapshot (without its state): which seq it covers and its hash."""

    id: int
    last_seq: int
    created: int
    schema_version: int
    sha256: str
    size_bytes: int = 0

    def to_payload(self) -> dict[str, Any]:
        """The `snapshot.taken` payload (`seq` is the last event the snapshot covers)."""
        return {"seq": self.last_seq, **msgspec.structs.asdict(self)}


def write_snapshot(
    cur: duckdb.DuckDBPyConnection, snapshot_id: int, snapshot: Any, *, keep: int
) -> SnapshotInfo:
    """Store `snapshot` (a StateSnapshot) as row `snapshot_id`, then drop all but the newest `keep`."""
    state_bytes: bytes = snapshot.to_bytes()
    info = SnapshotInfo(
        id=snapshot_id,
        last_seq=int(snapshot.seq),
        created=time.time_ns(),
        schema_version=int(snapshot.schema_version),
        sha256=hashlib.sha256(state_bytes).hexdigest(),
        size_bytes=len(state_bytes),
    )
    cur.execute(
        "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
        [
            info.id,
            info.last_seq,
            info.created,
            info.schema_version,
            info.sha256,
            state_bytes.decode("utf-8"),
        ],
    )
    cur.execute("DELETE FROM snapshots WHERE id <= (SELECT max(id) FROM snapshots) - ?", [keep])
    return info


def list_snapshots(con: duckdb.DuckDBPyConnection) -> list[SnapshotInfo]:
    """Every stored snapshot, newest (highest last_seq, then id) first.

    A NULL field (a damaged row) reads as a value no good snapshot has (id or seq -1, an empty
    hash), so the snapshot fails verification and is rejected like one with a wrong hash.
    """
    rows = con.execute(
        "SELECT coalesce(id, -1), coalesce(last_seq, -1), coalesce(created, 0), "
        "coalesce(schema_version, 0), coalesce(sha256, ''), "
        "coalesce(octet_length(encode(state)), 0) "
        "FROM snapshots ORDER BY 2 DESC, 1 DESC"
    ).fetchall()
    return [SnapshotInfo(*row) for row in rows]


def next_snapshot_id(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT coalesce(max(id), 0) + 1 FROM snapshots").fetchone()
    return int(row[0])


def check_state(con: duckdb.DuckDBPyConnection, info: SnapshotInfo) -> tuple[bytes | None, str]:
    """(state bytes, "") if the snapshot verifies, else (None, why not)."""
    if info.id < 0:
        return None, "its row has no id"
    if not info.sha256:
        return None, "its row has no sha256"
    row = con.execute("SELECT state FROM snapshots WHERE id = ?", [info.id]).fetchone()
    if row is None or row[0] is None:
        return None, "its row has no state"
    state_bytes = row[0].encode("utf-8")
    if hashlib.sha256(state_bytes).hexdigest() != info.sha256:
        return None, f"sha256 mismatch (stored {info.sha256[:12]}...)"
    return state_bytes, ""
