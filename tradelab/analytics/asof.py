""" "As of": the store's state at any seq or time of a journal, and what changed between two points.

`AsOf.state_at` starts from the nearest state at or before the seq (a verified journal snapshot, or
a checkpoint this object kept from an earlier replay) and replays the rest with the default
reducers, as recovery does, so its state hash equals a full replay's up to that seq. Replays keep a
bounded number of checkpoints (`max_checkpoints`; when full, the least recently used is dropped;
`metrics()` counts them) so later questions near
them are fast even on a live journal, whose snapshots are not readable; `index()` keeps them
along the whole journal in one pass. A long replay opens the journal afresh every
`REOPEN_AFTER_S` between its chunks: it never holds the file long enough to keep an engine from
starting on it (the engine waits a few seconds for the lock), nor reads a segment list old
enough that the sealer has merged those files away (it deletes them a minute after). Not
thread-safe: one `AsOf` per thread.
"""

from __future__ import annotations

import math
import numbers
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tradelab.analytics.source import Source, open_source
from tradelab.engine.store import FOLD_VERSION, build_store
from tradelab.errors import InvalidInputError, JournalError
from tradelab.journal.recovery import choose_snapshot, replay_into
from tradelab.journal.snapshots import list_snapshots
from tradelab.market.instruments import IST
from tradelab.state import StateSnapshot, StateStore

CLOCKS = ("exchange", "journal")
REOPEN_AFTER_S = 2.0  # a replay's longest hold of one source (module docstring)


@dataclass
class StateDiff:
    """Paths (dot paths, as the store names them) added, removed and changed from a to b. An
    added or removed subtree is one entry holding its whole value; `changed` holds (a, b)."""

    seq_a: int
    seq_b: int
    added: dict[str, Any] = field(default_factory=dict)
    removed: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def frame(self) -> pd.DataFrame:
        """One row per path: path, change ("added" / "removed" / "changed"), before, after."""
        rows = [(p, "added", None, v) for p, v in self.added.items()]
        rows += [(p, "removed", v, None) for p, v in self.removed.items()]
        rows += [(p, "changed", a, b) for p, (a, b) in self.changed.items()]
        rows.sort(key=lambda row: row[0])
        return pd.DataFrame(rows, columns=["path", "change", "before", "after"])


def diff_states(
    a: Mapping[str, Any], b: Mapping[str, Any], seq_a: int = 0, seq_b: int = 0
) -> StateDiff:
    """The StateDiff from state tree `a` to state tree `b` (plain nested dicts)."""
    result = StateDiff(seq_a, seq_b)
    _diff(a, b, "", result)
    return result


def _diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str, out: StateDiff) -> None:
    for key in a.keys() | b.keys():
        path = f"{prefix}{key}"
        if key not in b:
            out.removed[path] = a[key]
        elif key not in a:
            out.added[path] = b[key]
        elif isinstance(a[key], Mapping) and isinstance(b[key], Mapping):
            _diff(a[key], b[key], f"{path}.", out)
        elif a[key] != b[key]:
            out.changed[path] = (a[key], b[key])


_TIME_OF_DAY = re.compile(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?")


def to_ns(when: int | str | datetime | pd.Timestamp) -> int:
    """Nanoseconds since the epoch; a naive time is read as India Standard Time."""
    if isinstance(when, bool):
        raise InvalidInputError(f"time {when!r} is not a time")
    if isinstance(when, numbers.Integral):  # numpy's too: a number read from a query is ns
        return int(when)
    if isinstance(when, numbers.Real):  # a float column of ns (a row of mixed columns)
        if not math.isfinite(when):
            raise InvalidInputError(f"time {when!r} is not a time")
        return int(when)
    if isinstance(when, str) and _TIME_OF_DAY.fullmatch(when.strip()):
        # pandas would put it on today's date: a moment after most journals end
        raise InvalidInputError(
            f"time {when!r} has no date; give the day too, e.g. '2025-11-12 {when.strip()}' "
            "(read as IST)"
        )
    try:
        stamp = pd.Timestamp(when)
    except (ValueError, TypeError):
        raise InvalidInputError(
            f"time {when!r} is not a time; give ns since the epoch, a datetime or text such "
            "as '2025-11-12 11:42:07' (read as IST)"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(IST)
    return int(stamp.value)


class AsOf:
    """State of one journal at any point: `state_at(seq=...)`, `seq_at(ts)`, `diff(a, b)`."""

    def __init__(
        self,
        journal: str | Path,
        *,
        checkpoint_every: int = 10_000,
        max_checkpoints: int = 128,
        opened: Callable[[Source], object] | None = None,
    ) -> None:
        """`opened(source)` is told of every source opened (Analytics keeps what it saw)."""
        if checkpoint_every < 1 or max_checkpoints < 0:
            raise InvalidInputError(
                f"checkpoint_every {checkpoint_every} must be >= 1 and max_checkpoints "
                f"{max_checkpoints} >= 0"
            )
        self.journal = Path(journal)
        self._opened = opened
        self.checkpoint_every = checkpoint_every
        self.max_checkpoints = max_checkpoints
        self._checkpoints: OrderedDict[int, StateSnapshot] = OrderedDict()
        self.last: dict[str, Any] = {}  # how the last state was built: start, replayed, source
        self.checkpoints_dropped = 0
        # The engine's stamp of seq 1: a journal replaced at the same path (started over) has
        # another, and the checkpoints kept from the old one must not be used on it.
        self._first_stamp: int | None = None

    def _open(self) -> Source:
        source = open_source(self.journal)
        if self._opened is not None:
            self._opened(source)
        source.con.execute("CREATE VIEW events AS SELECT * FROM _events")
        row = source.con.execute("SELECT min(ts) FILTER (seq = 1) FROM _events").fetchone()
        stamp = row[0] if row else None
        if stamp != self._first_stamp:
            if self._checkpoints:
                self.checkpoints_dropped += len(self._checkpoints)
                self._checkpoints.clear()
            self._first_stamp = stamp
        return source

    def seq_at(self, ts: int | str | datetime | pd.Timestamp, clock: str = "exchange") -> int:
        """The last seq at time `ts`: on the exchange clock (the market time events carry in
        their payload's `ts`, or a bar's `end`: its close is known only then), the seq before
        the first event stamped later; on the journal clock, the last event the engine stamped
        at or before it."""
        if clock not in CLOCKS:
            raise InvalidInputError(f"clock {clock!r} is not one of {', '.join(CLOCKS)}")
        ns = to_ns(ts)
        source = self._open()
        try:
            # One pass over the events: the answer and the clock's span, for the check below.
            when = (
                "ts"
                if clock == "journal"
                else "TRY_CAST(coalesce(json_extract_string(payload, '$.ts'), CASE WHEN topic = "
                "'market.bar' THEN json_extract_string(payload, '$.end') END) AS BIGINT)"
            )
            answer = (
                "max(seq) FILTER (t <= $1)"  # the last event stamped at or before it
                if clock == "journal"
                else "coalesce(min(seq) FILTER (t > $1) - 1, max(seq))"  # before the first later
            )
            seq, first, last = source.con.execute(
                f"SELECT coalesce({answer}, 0), min(t), max(t) "
                f"FROM (SELECT seq, {when} AS t FROM _events)",
                [ns],
            ).fetchone()
            _check_within(ns, first, last, clock, source)
            return int(seq)
        finally:
            source.close()

    def state_at(
        self,
        seq: int | None = None,
        *,
        ts: int | str | datetime | pd.Timestamp | None = None,
        clock: str = "exchange",
    ) -> StateStore:
        """A fresh StateStore holding the state right after event `seq` (or at time `ts`)."""
        if (seq is None) == (ts is None):
            raise InvalidInputError("give exactly one of seq= or ts=")
        if clock not in CLOCKS:
            raise InvalidInputError(f"clock {clock!r} is not one of {', '.join(CLOCKS)}")
        if ts is not None:
            seq = self.seq_at(ts, clock)
        if isinstance(seq, bool) or not isinstance(seq, numbers.Integral) or seq < 0:
            raise InvalidInputError(f"seq {seq!r} must be an int >= 0")
        seq = int(seq)  # numpy's integers too: a seq read from a query
        source = self._open()
        try:
            if seq > source.last_seq:
                where = f" ({source.note})" if source.note else ""
                raise InvalidInputError(
                    f"seq {seq} is beyond the last readable seq {source.last_seq} of journal "
                    f"{self.journal}{where}"
                )
            for kept in [k for k in self._checkpoints if k > source.last_seq]:
                del self._checkpoints[kept]  # the journal lost that tail since
            store = build_store()
            start, origin = self._start_from(source, seq)
            if start is not None:
                store.load_snapshot(start)
            replayed, source = self._replay(store, source, seq)
        finally:
            source.close()
        self.last = {
            "seq": seq,
            "start": origin,
            "start_seq": seq - replayed,
            "replayed": replayed,
            "source": source.kind,
            "note": source.note,
        }
        return store

    def _start_from(self, source: Source, seq: int) -> tuple[StateSnapshot | None, str]:
        """The latest state at or before `seq`: a kept checkpoint or a verified snapshot."""
        kept = max((k for k in self._checkpoints if k <= seq), default=None)
        rejected: list[dict[str, Any]] = []
        info, snapshot = choose_snapshot(
            source.con, list_snapshots(source.con), seq, None, rejected, fold=FOLD_VERSION
        )
        if snapshot is not None and (kept is None or info.last_seq >= kept):
            return snapshot, f"journal snapshot {info.id} (seq {info.last_seq})"
        if kept is not None:
            self._checkpoints.move_to_end(kept)
            return self._checkpoints[kept], f"checkpoint at seq {kept}"
        return None, "seq 0"

    def index(self) -> dict[str, Any]:
        """One pass over the whole journal from seq 0, keeping a checkpoint every
        `checkpoint_every` events (spaced wider if `max_checkpoints` would not reach the end),
        so that any later `state_at` replays at most that many events. Costs one full replay."""
        source = self._open()
        try:
            every = max(self.checkpoint_every, -(-source.last_seq // max(self.max_checkpoints, 1)))
            self._checkpoints.clear()
            last = source.last_seq
            replayed, source = self._replay(build_store(), source, last, every)
        finally:
            source.close()
        return {
            "last_seq": last,
            "replayed": replayed,
            "checkpoint_every": every,
            "checkpoints": len(self._checkpoints),
            "source": source.kind,
        }

    def _replay(
        self, store: StateStore, source: Source, seq: int, every: int = 0
    ) -> tuple[int, Source]:
        """Replay up to `seq`, keeping a checkpoint at each multiple of `every`; (events
        replayed, the source open at the end: the caller closes it). Between chunks, once
        `REOPEN_AFTER_S` have passed, `source` is closed and the journal opened afresh."""
        replayed = 0
        every = every or self.checkpoint_every
        opened = time.monotonic()
        given = source
        try:
            while store.version < seq:
                if time.monotonic() - opened > REOPEN_AFTER_S:
                    source.close()
                    source = self._reopen(seq)
                    opened = time.monotonic()
                stop = min(seq, (store.version // every + 1) * every)
                replayed += replay_into(store, source.con, since_seq=store.version, upto_seq=stop)
                if store.version != stop:
                    raise InvalidInputError(
                        f"journal {self.journal} has no events after seq {store.version} up to {stop}"
                    )
                if stop % every == 0 and self.max_checkpoints:
                    self._keep(store.snapshot())
            return replayed, source
        except BaseException:
            if source is not given:  # the caller closes the one it gave
                source.close()
            raise

    def _reopen(self, seq: int) -> Source:
        """The journal opened afresh in the middle of a replay up to `seq`: refused if it is
        another journal now, or if an engine took it and its sealed events end before `seq`."""
        stamp = self._first_stamp
        source = self._open()
        why = ""
        if self._first_stamp != stamp:
            why = "was replaced by another during the replay"
        elif source.last_seq < seq:  # an engine took the file: only sealed events show
            why = (
                f"was opened by an engine during the replay, and what can be read beside it "
                f"ends at seq {source.last_seq}, before {seq} ({source.note})"
            )
        if why:
            source.close()
            raise JournalError(f"journal {self.journal} {why}; ask again")
        return source

    def _keep(self, snapshot: StateSnapshot) -> None:
        self._checkpoints[snapshot.seq] = snapshot
        self._checkpoints.move_to_end(snapshot.seq)
        while len(self._checkpoints) > self.max_checkpoints:
            self._checkpoints.popitem(last=False)
            self.checkpoints_dropped += 1

    def metrics(self) -> dict[str, Any]:
        """Checkpoints held (bounded by `max_checkpoints`), the seqs they cover, and how many
        were dropped because the bound was reached."""
        seqs = sorted(self._checkpoints)
        return {
            "checkpoints": len(seqs),
            "max_checkpoints": self.max_checkpoints,
            "first_seq": seqs[0] if seqs else None,
            "last_seq": seqs[-1] if seqs else None,
            "dropped": self.checkpoints_dropped,
        }

    def diff(self, a: int | StateStore, b: int | StateStore) -> StateDiff:
        """What changed from point `a` to point `b` (each a seq or a store from `state_at`)."""
        store_a = a if isinstance(a, StateStore) else self.state_at(a)
        store_b = b if isinstance(b, StateStore) else self.state_at(b)
        a_state, b_state = store_a.snapshot(), store_b.snapshot()
        return diff_states(a_state.state, b_state.state, a_state.seq, b_state.seq)


def _check_within(ns: int, first: int | None, last: int | None, clock: str, source: Source) -> None:
    """A time before the journal's first event on `clock` is refused, naming its range; so is a
    time past what a running journal's sealed segments hold (its state then is not readable yet).
    A time after a finished journal's last event is its final state."""
    if first is None or last is None:
        raise InvalidInputError(f"the journal has no event stamped on the {clock} clock")

    def ist(value: int) -> str:
        return (
            pd.Timestamp(value, unit="ns", tz="UTC").tz_convert(IST).strftime("%Y-%m-%d %H:%M:%S")
        )

    span = f"{ist(first)} to {ist(last)} IST"
    hint = (
        " (journal time is the wall clock when the engine stamped each event; a simulated or "
        "replayed market's times are on clock='exchange')"
        if clock == "journal"
        else ""
    )
    if ns < first:
        raise InvalidInputError(
            f"{ist(ns)} IST is before this journal's first event on the {clock} clock; it runs "
            f"{span}{hint}"
        )
    if ns > last and source.kind == "segments":
        raise InvalidInputError(
            f"{ist(ns)} IST is past what is readable of this running journal ({source.note}); "
            f"its {clock} clock runs {span} so far"
        )
