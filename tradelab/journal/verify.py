"""Offline checks of a journal file: `inspect_journal` (what is in it) and `verify_journal` (is it
whole: contiguous seqs, tail mark, every snapshot's hash, and full replay == snapshot path).

Both open the file read-only on the caller's thread, so they cannot run while an engine holds
it (DuckDB forbids it); they say so and point to `JournalReader`, which reads sealed segments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import msgspec

from tradelab.errors import RecoveryError, SchemaVersionError, StateError, TradelabError
from tradelab.journal import journal_file, schema
from tradelab.journal.acklog_read import covered_damage, damage, pending_events, torn_tail
from tradelab.journal.journal import check_events
from tradelab.journal.recovery import choose_snapshot, load_snapshot_state, replay_into
from tradelab.journal.snapshots import check_state, list_snapshots
from tradelab.journal.tailmark import TailMark

StoreFactory = Callable[[], Any]


@dataclass
class VerifyResult:
    """Outcome of `verify_journal`: readable lines, and the problems (empty when whole)."""

    path: str
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    last_seq: int = 0
    replay_hash: str = ""
    recovery_hash: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, ok: bool, text: str) -> None:
        self.lines.append(f"{'OK  ' if ok else 'FAIL'} {text}")
        if not ok:
            self.problems.append(text)


def _default_store_factory() -> Any:
    from tradelab.engine import build_store

    return build_store(migrations=True)  # as an engine folds: a newer event is refused


def _open(path: str | Path):
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        # What `run` takes as a new journal (DuckDB writes nothing until the first open for
        # writing): read as one that holds no events, not as damage.
        con = duckdb.connect(":memory:", config=journal_file.NO_EXTENSIONS)
        schema.ensure_schema(con, Path(path))
        return con
    con = journal_file.connect(path, read_only=True)
    try:
        schema.check_tables(con, path)
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def _reading(path: str | Path) -> Iterator[Any]:
    """The journal opened read-only; a DuckDB failure while reading it names it as damaged."""
    con = _open(path)
    try:
        yield con
    except duckdb.Error as exc:
        raise journal_file.journal_error(path, exc, "reading it") from None
    finally:
        con.close()


def inspect_journal(path: str | Path, store_factory: StoreFactory | None = None) -> dict:
    """Counts by topic, seq range, snapshots and recovered state hash of a journal not in use.
    Damaged events (a seq gap, a malformed row) are listed under "damage", with what could be
    read still reported; no state hash then, since no recovery reaches one."""
    with _reading(path) as con:
        damaged: list[str] = []
        try:
            count, first, last = check_events(con, path)
        except RecoveryError as exc:  # a gap, a duplicate, a NULL column: the rest still reads
            damaged.append(str(exc))
            count, first, last = con.execute(
                "SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0) FROM events"
            ).fetchone()
        topics = dict(
            con.execute(
                "SELECT coalesce(topic, '(no topic)') AS t, count(*) FROM events GROUP BY t "
                "ORDER BY t"
            ).fetchall()
        )
        critical = con.execute("SELECT count(*) FROM events WHERE critical").fetchone()[0]
        snapshots = list_snapshots(con)
        rejected: list[dict] = []
        state: dict[str, Any] = {}
        if not damaged:
            try:
                state = _recovered_state(con, path, snapshots, last, store_factory, rejected)
            except SchemaVersionError:  # not damage: a newer tradelab wrote it (exit 3)
                raise
            except TradelabError as exc:  # a malformed event row, an event a reducer refuses
                damaged.append(str(exc))
        return {
            "path": str(path),
            "events": int(count),
            "critical_events": int(critical),
            "first_seq": int(first),
            "last_seq": int(last),
            "tail_mark": TailMark(path).read(),
            "ack_log_pending_events": pending_events(path, last),
            "ack_log_damage": damage(path, last),
            "ack_log_torn_tail": torn_tail(path),
            "ack_log_covered_damage": covered_damage(path, last),
            "topics": {k: int(v) for k, v in topics.items()},
            "snapshots": [s.to_payload() for s in snapshots],
            "rejected_snapshots": rejected,
            "damage": damaged,
            **state,
        }


def _recovered_state(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    snapshots: list,
    last: int,
    store_factory: StoreFactory | None,
    rejected: list[dict],
) -> dict[str, Any]:
    """The state hash recovery reaches, and the snapshot it starts from."""
    store = (store_factory or _default_store_factory)()
    info, snapshot = choose_snapshot(
        con, snapshots, last, store.migrations, rejected, fold=store.fold_version
    )
    if snapshot is not None:
        store.load_snapshot(snapshot)
    try:
        replay_into(store, con, since_seq=store.version)
    except StateError as exc:  # as recovery: an event its reducers refuse is damage
        raise RecoveryError(f"journal {path} is damaged: {exc}") from None
    return {
        "state_hash": store.state_hash(),
        "state_from_snapshot": None if info is None else info.id,
    }


def verify_journal(path: str | Path, store_factory: StoreFactory | None = None) -> VerifyResult:
    """Check everything recovery relies on; `result.ok` is False with reasons when not whole."""
    factory = store_factory or _default_store_factory
    result = VerifyResult(str(path))
    with _reading(path) as con:
        try:
            count, first, last = check_events(con, path)
        except TradelabError as exc:
            result.add(False, str(exc))
            return result
        result.last_seq = last
        if Path(path).is_file() and Path(path).stat().st_size == 0:
            result.lines.append(f"INFO {path} is an empty file: no journal was written to it yet")
        result.add(True, f"{count} events, seq {first}..{last} contiguous")
        mark = TailMark(path).read()
        # What the next start holds: the file and the ack log's events it copies in.
        restored = last + pending_events(path, last)
        if mark is None:
            result.lines.append(f"INFO no readable tail mark beside {path}")
        else:
            result.add(
                mark <= restored,
                f"tail mark {mark} <= last seq {restored}"
                + (" with the ack log's events" if restored > last else "")
                if mark <= restored
                else f"tail mark says seq {mark} was committed but the "
                f"journal ends at {restored}: events {restored + 1}..{mark} lost",
            )
        refused = damage(path, last)
        for problem in refused:  # the next start refuses it (RecoveryError)
            result.add(False, problem)
        _recorded_losses(con, result)
        for note in [*covered_damage(path, last), torn_tail(path)]:
            if note is not None:
                result.lines.append(f"WARN {note}")
        pending = pending_events(path, last)
        if pending and not refused:  # refused, the next start commits nothing
            result.lines.append(
                f"INFO the ack log holds {pending} acknowledged event(s) after seq {last}; "
                "the next engine start on this journal commits them"
            )
        try:
            _check_snapshots_and_replay(con, last, factory, result)
        except SchemaVersionError:  # not damage: a newer tradelab wrote it (exit 3, as run)
            raise
        except TradelabError as exc:  # damage that stops the replay: a malformed event row
            result.add(False, str(exc))
        if result.problems and store_factory is None:
            _name_foreign_topics(con, result)
        return result


def _recorded_losses(con: duckdb.DuckDBPyConnection, result: VerifyResult) -> None:
    """A lost tail an engine found and went on past is journaled (`journal.damage_detected`) and
    its seqs numbered anew: said here, or a journal whole since would hide it."""
    rows = con.execute(
        "SELECT seq, payload FROM events WHERE topic = 'journal.damage_detected' ORDER BY seq"
    ).fetchall()
    for seq, payload in rows:
        try:
            lost = msgspec.json.decode(payload, type=dict)
            what = f"events {lost['lost_from_seq']}..{lost['expected_last_seq']} were lost"
        except (ValueError, KeyError, TypeError, RecursionError):  # a damaged row: said alone
            what = "a loss was recorded"
        result.lines.append(
            f"WARN seq {seq} records that {what} before it (a torn tail an engine went on past; "
            "seqs from there were numbered anew)"
        )


def _name_foreign_topics(con: duckdb.DuckDBPyConnection, result: VerifyResult) -> None:
    """A journal written with topics and reducers of its own folds differently here: say so
    beside the failures, which may be that and not damage."""
    from tradelab.events import TopicRegistry

    known = TopicRegistry()
    topics = [t for (t,) in con.execute("SELECT DISTINCT topic FROM events ORDER BY 1").fetchall()]
    foreign = [t for t in topics if t is not None and t not in known]
    if foreign:
        result.lines.append(
            f"INFO topics this tradelab does not know: {', '.join(foreign[:8])}: a journal "
            "written with reducers of its own folds differently without them; verify it from "
            "Python with verify_journal(path, store_factory=...) building its store"
        )


def _check_snapshots_and_replay(
    con: duckdb.DuckDBPyConnection, last: int, factory: StoreFactory, result: VerifyResult
) -> None:
    """Every snapshot against full replay at its seq, then recovery against full replay."""
    good = []
    for info in sorted(list_snapshots(con), key=lambda s: s.last_seq):
        state_bytes, why = check_state(con, info)
        if state_bytes is None or info.last_seq > last:
            result.add(
                False,
                f"snapshot {info.id} (seq {info.last_seq}) does not verify: "
                + (why if state_bytes is None else "beyond the end"),
            )
            continue
        good.append((info, state_bytes))
    full = factory()
    for info, state_bytes in good:
        replay_into(full, con, since_seq=full.version, upto_seq=info.last_seq)
        snap_store = factory()
        try:
            snapshot = load_snapshot_state(state_bytes, info, full.migrations)
            snap_store.load_snapshot(snapshot)
        except (
            TradelabError,
            ValueError,
            KeyError,
            TypeError,
            RecursionError,
        ) as exc:  # as choose_snapshot
            result.add(False, f"snapshot {info.id} (seq {info.last_seq}) unreadable: {exc}")
            continue
        if snapshot.fold != full.fold_version:  # another fold of the same events: not ours
            result.add(
                True,
                f"snapshot {info.id} (seq {info.last_seq}) sha256 ok; folded by reducers of "
                f"version {snapshot.fold} (these are version {full.fold_version}): not "
                "compared, and recovery replays past it",
            )
            continue
        same = snap_store.state_hash() == full.state_hash()
        result.add(
            same,
            f"snapshot {info.id} (seq {info.last_seq}) sha256 ok; state "
            + ("equals" if same else "DIFFERS from")
            + " full replay at that seq",
        )
    replay_into(full, con, since_seq=full.version)
    result.replay_hash = full.state_hash()
    recovered = factory()
    info, snapshot = choose_snapshot(
        con, list_snapshots(con), last, recovered.migrations, [], fold=recovered.fold_version
    )
    if snapshot is not None:
        recovered.load_snapshot(snapshot)
    replay_into(recovered, con, since_seq=recovered.version)
    result.recovery_hash = recovered.state_hash()
    path_name = "no snapshot" if info is None else f"snapshot {info.id}"
    result.add(
        result.recovery_hash == result.replay_hash,
        f"recovery ({path_name} + tail) hash {result.recovery_hash[:16]} "
        f"{'==' if result.recovery_hash == result.replay_hash else '!='} full replay "
        f"hash {result.replay_hash[:16]}",
    )
