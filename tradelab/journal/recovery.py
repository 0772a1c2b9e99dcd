"""Recovery: newest good snapshot + migration + replay of the tail, and the report of what it did.

`recover` rebuilds a store from an open `Journal`; `replay_into` folds journal events into a
store (upcasting old payloads). Both run on the caller's thread before the kernel starts.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from tradelab.collector import collector_paused
from tradelab.errors import (
    InvalidInputError,
    RecoveryError,
    SchemaVersionError,
    StateError,
    TradelabError,
)
from tradelab.journal import journal_file
from tradelab.journal.event_rows import READ_BATCH_ROWS, iter_event_batches
from tradelab.journal.journal import Journal
from tradelab.journal.snapshots import SnapshotInfo, check_state


@dataclass
class RecoveryReport:
    """What opening a journal did: which snapshot, how many events replayed, what was wrong."""

    path: str
    snapshot_id: int | None = None
    snapshot_seq: int = 0
    events_replayed: int = 0
    last_seq: int = 0
    journal_events: int = 0
    seconds: float = 0.0
    state_hash: str = ""
    rejected_snapshots: list[dict[str, Any]] = field(default_factory=list)
    # Snapshots folded by other reducers (an earlier tradelab): sound, but not this code's
    # state for their seq, so replayed past; not a problem.
    passed_snapshots: list[dict[str, Any]] = field(default_factory=list)
    damage: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.damage is None and not self.rejected_snapshots

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        used = (
            f"snapshot {self.snapshot_id} (seq {self.snapshot_seq})"
            if self.snapshot_id is not None
            else "no snapshot"
        )
        text = (
            f"recovered {self.path}: {used} + {self.events_replayed} events replayed -> seq "
            f"{self.last_seq} in {self.seconds * 1000:.1f} ms"
        )
        notes = [
            f"  note: snapshot {s['snapshot_id']} (seq {s['last_seq']}) passed by: {s['reason']}"
            for s in self.passed_snapshots[:3]
        ]
        return "\n".join([text, *notes, *(f"  problem: {p}" for p in self.problems)])


def lost_tail_error(path: Any, damage: dict[str, Any]) -> RecoveryError:
    """The refusal of a journal whose last committed events are lost (`Journal.check.damage`)."""
    return RecoveryError(
        f"journal {path} is damaged: it ends at seq {damage['found_last_seq']} but seq "
        f"{damage['expected_last_seq']} had been committed, so events {damage['lost_from_seq']}.."
        f"{damage['expected_last_seq']} were lost (a torn WAL tail) and the store would not be "
        "the fold of what was committed and acknowledged. To go on from there, the loss "
        "recorded in the journal: tradelab run --accept-lost-tail, or for tradelab serve "
        "`engine: {accept_lost_tail: true}` in its --config file (in Python, "
        "EngineConfig(accept_lost_tail=True))"
    )


def replay_into(
    store: Any,
    con: duckdb.DuckDBPyConnection,
    *,
    since_seq: int = 0,
    upto_seq: int | None = None,
    migrations: Any = None,
    batch_rows: int = READ_BATCH_ROWS,
) -> int:
    """Apply journal events since_seq < seq <= upto_seq to `store`; return how many.

    Each read batch is applied as one atomic `apply_batch` (one lock, one commit). If a batch
    fails, its events are applied again one by one, so the store ends at the event just before
    the bad one and the error raised is that event's own (it names its seq, topic and reducer).
    """
    applied = 0
    upcast = migrations.upcast_event if migrations is not None else None
    apply_batch = store.apply_batch
    with collector_paused():
        for events in iter_event_batches(con, since_seq, upto_seq, batch_rows):
            if upcast is not None:
                events = [upcast(event) for event in events]
            try:
                apply_batch(events)
            except TradelabError:
                for event in events:
                    store.apply(event)  # raises the bad event's own error, after those before
                    applied += 1
                continue
            applied += len(events)
    return applied


def load_snapshot_state(state_bytes: bytes, info: SnapshotInfo, migrations: Any = None):
    """Parse (and upcast) a verified snapshot row into a StateSnapshot."""
    from tradelab.state import StateSnapshot

    snapshot = StateSnapshot.from_bytes(state_bytes)
    if snapshot.seq != info.last_seq:
        raise InvalidInputError(
            f"snapshot {info.id} says seq {snapshot.seq} inside but {info.last_seq} in its row"
        )
    if migrations is not None:
        snapshot = migrations.upcast_snapshot(snapshot)
    return snapshot


def choose_snapshot(
    con: duckdb.DuckDBPyConnection,
    snapshots: list[SnapshotInfo],
    last_seq: int,
    migrations: Any,
    rejected: list[dict[str, Any]],
    *,
    fold: int | None = None,
    passed: list[dict[str, Any]] | None = None,
):
    """The newest snapshot that verifies, as (info, StateSnapshot), or (None, None).

    Every snapshot skipped on the way is appended to `rejected` with its reason. A snapshot of a
    newer schema is not skipped: SchemaVersionError (older code must not rewrite newer data).
    With `fold` (the store's `fold_version`), a sound snapshot folded by other reducers is
    skipped too, listed in `passed` rather than `rejected`: it is not damage.
    """
    # A row with a NULL seq (list_snapshots gives it -1) can never be used: reported first, as
    # the search below stops at the first good snapshot.
    unusable = [info for info in snapshots if info.last_seq < 0]
    for info in unusable + [info for info in snapshots if info.last_seq >= 0]:
        reason = None
        if info.last_seq < 0:
            reason = "its row has no last_seq"
        elif info.last_seq > last_seq:
            reason = f"covers seq {info.last_seq} beyond the journal's last seq {last_seq}"
        else:
            state_bytes, why = check_state(con, info)
            if state_bytes is None:
                reason = why
            else:
                try:
                    snapshot = load_snapshot_state(state_bytes, info, migrations)
                    if fold is None or snapshot.fold == fold:
                        return info, snapshot
                    if passed is not None:
                        passed.append(_passed(info, snapshot.fold, fold))
                    continue
                except SchemaVersionError:
                    raise
                except (
                    InvalidInputError,
                    StateError,
                    ValueError,
                    KeyError,
                    TypeError,
                    RecursionError,
                ) as exc:
                    reason = f"unreadable: {exc}"
        rejected.append(
            {
                "snapshot_id": info.id,
                "last_seq": info.last_seq,
                "sha256": info.sha256,
                "reason": reason,
            }
        )
    return None, None


def _passed(info: SnapshotInfo, snapshot_fold: int, fold: int) -> dict[str, Any]:
    return {
        "snapshot_id": info.id,
        "last_seq": info.last_seq,
        "reason": f"folded by reducers of version {snapshot_fold}; this code's are version "
        f"{fold}, so the events after an older snapshot are replayed instead",
    }


def recover(journal: Journal, store: Any, *, migrations: Any = None) -> RecoveryReport:
    """Rebuild `store` (fresh, version 0) from `journal`: snapshot, migrate, replay, report.

    A file DuckDB cannot read part of (a damaged block) is a RecoveryError naming it.
    """
    try:
        return _recover(journal, store, migrations)
    except duckdb.Error as exc:
        raise journal_file.journal_error(journal.path, exc, "recovery") from None


def _recover(journal: Journal, store: Any, migrations: Any) -> RecoveryReport:
    started = time.perf_counter()
    check = journal.check
    report = RecoveryReport(
        path=str(journal.path),
        journal_events=check.count,
        damage=check.damage,
        problems=list(check.problems),
    )
    info, snapshot = choose_snapshot(
        journal.con,
        journal.snapshots(),
        check.last_seq,
        migrations,
        report.rejected_snapshots,
        fold=getattr(store, "fold_version", None),
        passed=report.passed_snapshots,
    )
    for rejected in report.rejected_snapshots:
        report.problems.append(
            f"snapshot {rejected['snapshot_id']} (seq {rejected['last_seq']}) rejected: "
            f"{rejected['reason']}"
        )
    if snapshot is not None:
        store.load_snapshot(snapshot)
        report.snapshot_id = info.id
        report.snapshot_seq = info.last_seq
    # A store built with migrations upcasts events itself; upcast here only for one without.
    event_migrations = migrations if getattr(store, "migrations", None) is None else None
    try:
        report.events_replayed = replay_into(
            store, journal.con, since_seq=store.version, migrations=event_migrations
        )
    except StateError as exc:  # an event its reducers refuse: the journal is not a fold
        raise RecoveryError(f"journal {journal.path} is damaged: {exc}") from None
    report.last_seq = store.version
    report.state_hash = store.state_hash()
    report.seconds = time.perf_counter() - started
    return report
