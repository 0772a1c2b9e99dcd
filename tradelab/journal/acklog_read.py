"""Reading the ack log (acklog.py) back: what it holds past DuckDB, and its damage.

On open, the journal copies into DuckDB the logged events it lacks (`restore_into`), then
deletes the files. A record that fails its checks at the end of the newest file was never
synced, so never acknowledged: dropped, and said. Damage followed by intact records is skipped
when the records after it follow on from what DuckDB holds (it hid nothing missing: a record
DuckDB committed already, damaged on disk); when they jump past the first missing seq, the
damage may have held acknowledged events: the open is refused and nothing is changed. A gap
with no damage is refused the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from tradelab.errors import RecoveryError
from tradelab.journal.acklog import MAGIC, RECORD_HEAD, acklog_dir, log_files, record_crc
from tradelab.journal.schema import EVENT_COLUMNS
from tradelab.journal.wire import EncodedBatch

log = logging.getLogger(__name__)


def _intact_at(data: bytes, at: int) -> tuple[EncodedBatch, int] | None:
    """The record starting at `at` and where it ends, or None if none intact starts there."""
    if at + RECORD_HEAD.size > len(data):
        return None
    magic, crc, first, last, length = RECORD_HEAD.unpack_from(data, at)
    body_at = at + RECORD_HEAD.size
    body = data[body_at : body_at + length]
    if magic != MAGIC or len(body) != length or crc != record_crc(first, last, body):
        return None
    return EncodedBatch(first, last, body), body_at + length


def _scan(data: bytes) -> tuple[list[EncodedBatch], int | None]:
    """(every intact record in order, the offset of the first damage or None)."""
    found = _walk(data)
    damaged = [at for at, batch in found if batch is None]
    return [batch for _, batch in found if batch is not None], damaged[0] if damaged else None


def _walk(data: bytes) -> list[tuple[int, EncodedBatch | None]]:
    """The file's records and damage in order: (offset, record), or (offset, None) where the
    bytes fail their checks. Past damage the walk goes on at the next intact record: whether
    the damage hid events DuckDB lacks is told by the seqs around it (`_plan`), since records
    hold contiguous seqs in order."""
    found: list[tuple[int, EncodedBatch | None]] = []
    at: int | None = 0
    while at is not None and at < len(data):
        intact = _intact_at(data, at)
        if intact is not None:
            found.append((at, intact[0]))
            at = intact[1]
            continue
        tail = memoryview(data)[at:]
        if tail == bytes(len(tail)):  # the unused, preallocated rest of the file: a clean end
            break
        found.append((at, None))
        at = _next_intact(data, at)
    return found


def _next_intact(data: bytes, at: int) -> int | None:
    """Where the first intact record after the damage at `at` starts, or None."""
    at = data.find(MAGIC, at + 1)
    while at >= 0:
        if _intact_at(data, at) is not None:
            return at
        at = data.find(MAGIC, at + 1)
    return None


def read_records(path: Path) -> tuple[list[EncodedBatch], int | None]:
    """(the intact records of one log file in order, offset of the first damaged one or None).

    A zero tail (the preallocated, never written rest of a file) is a clean end, not damage.
    """
    return _scan(path.read_bytes())


def pending_events(journal_path: str | Path, last_seq: int) -> int:
    """How many logged events after `last_seq` the next read-write open would restore."""
    newest = last_seq
    for path in log_files(acklog_dir(journal_path)):
        for batch in read_records(path)[0]:
            if batch.first_seq <= newest + 1:
                newest = max(newest, batch.last_seq)
    return newest - last_seq


def pending_rows(journal_path: str | Path, last_seq: int) -> list[tuple]:
    """The logged events after `last_seq` the next read-write open would restore, as rows of
    the events table (seq, ts, topic, key, critical, schema_version, payload)."""
    rows: list[tuple] = []
    newest = last_seq
    for path in log_files(acklog_dir(journal_path)):
        for batch in read_records(path)[0]:
            if batch.first_seq <= newest + 1 and batch.last_seq > newest:
                rows.extend(row for row in batch.rows() if row[0] > newest)
                newest = batch.last_seq
    return rows


def torn_tail(journal_path: str | Path) -> str | None:
    """The log's last record, if it fails its checks: a write a crash cut short (never synced,
    so never acknowledged: the next start drops it) or, rarely, damage to a synced one, which
    no check can tell apart; said, so an operator can look (`damage` covers all else)."""
    for path in reversed(log_files(acklog_dir(journal_path))):
        found = _walk(data := path.read_bytes())
        if not found:
            continue  # prepared ahead, never written
        damaged_at, batch = found[-1]
        if batch is not None:
            return None
        magic, _, first, last, _ = RECORD_HEAD.unpack_from(
            data + bytes(RECORD_HEAD.size), damaged_at
        )
        seqs = f" (seq {first}..{last})" if magic == MAGIC else ""
        return (
            f"the last record of ack log {path}{seqs}, at byte {damaged_at}, fails its checks: "
            "a write a crash cut short (never acknowledged), or damage to an acknowledged one; "
            "the next start drops it"
        )
    return None


def damage(journal_path: str | Path, last_seq: int) -> list[str]:
    """What keeps the ack log from being restored whole after `last_seq` (empty: nothing)."""
    return _plan(log_files(acklog_dir(journal_path)), last_seq).problems


def covered_damage(journal_path: str | Path, last_seq: int) -> list[str]:
    """Damage before intact records that hid only events DuckDB (or the log) holds anyway:
    the next start skips it and restores the rest; said, so an operator can look at the disk."""
    return _plan(log_files(acklog_dir(journal_path)), last_seq).covered


@dataclass
class _Plan:
    rows: list[tuple] = field(default_factory=list)  # the events after last_seq, in order
    problems: list[str] = field(default_factory=list)  # what stops the restore
    covered: list[str] = field(default_factory=list)  # damage that hid nothing missing


def _plan(files: list[Path], last_seq: int) -> _Plan:
    """What the log holds after `last_seq`. Damage followed by intact records (in its file or
    newer ones) loses nothing when the next intact record starts at or before the first seq
    still missing; otherwise the seqs between may have been acknowledged: refused. Damage
    with no intact record after it is the torn tail (`torn_tail`)."""
    plan = _Plan()
    expected = last_seq + 1
    damage: tuple[Path, int] | None = None  # the latest damage, until a record follows it
    for path in files:
        for at, batch in _walk(path.read_bytes()):
            if batch is None:
                damage = damage or (path, at)
                continue
            if damage is not None:
                where = f"ack log {damage[0]} is damaged at byte {damage[1]}"
                if batch.first_seq > expected:  # the damage held events DuckDB lacks
                    follows = "intact records" if damage[0] == path else "newer log files"
                    plan.problems.append(
                        f"{where} although {follows} follow (from seq {batch.first_seq}): seq "
                        f"{expected}..{batch.first_seq - 1} are neither in DuckDB nor intact"
                    )
                    return plan
                plan.covered.append(
                    f"{where}; the records after it follow on from what DuckDB and the log "
                    "hold, so the damage hid nothing missing and the next start skips it"
                )
                damage = None
            if batch.last_seq < expected:
                continue
            if batch.first_seq > expected:
                plan.problems.append(
                    f"ack log {path} jumps from seq {expected - 1} to {batch.first_seq}"
                )
                return plan
            plan.rows.extend(row for row in batch.rows() if row[0] >= expected)
            expected = batch.last_seq + 1
    return plan


def restore_into(con: duckdb.DuckDBPyConnection, journal_path: str | Path) -> int:
    """Commit to the journal the logged events after its last seq, then delete the log; returns
    how many. A damaged record at the end of the newest file is the unsynced write a crash cut
    short (a sync covers every write before it, so nothing after an unsynced one was synced).
    Damage anywhere else, or a gap, may have taken acknowledged events: a RecoveryError naming
    it, with nothing changed, so the operator decides (moving the log aside starts without
    the events it holds)."""
    files = log_files(acklog_dir(journal_path))
    if not files:
        return 0
    last_seq = int(con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
    plan = _plan(files, last_seq)
    rows, problems = plan.rows, plan.problems
    if not problems:
        for note in [*plan.covered, torn_tail(journal_path)]:
            if note is not None:
                log.warning("journal %s: %s", journal_path, note)
    if problems:
        raise RecoveryError(
            f"journal {journal_path} is damaged: {problems[0]}; events it acknowledged after "
            f"seq {last_seq + len(rows)} may be lost, so nothing was restored or changed. After "
            "a power loss those events were never acknowledged; to start without the log's "
            f"events, move {acklog_dir(journal_path)} aside"
        )
    if rows:
        cur = con.cursor()
        try:
            appender = cur.appender("events", columns=list(EVENT_COLUMNS))
            appender.append_rows(rows)
            appender.flush()
        finally:
            cur.close()
    for path in files:
        path.unlink(missing_ok=True)
    return len(rows)
