"""The coalescing step between the bus and the browser sessions: `SharedView`.

Thread model: `on_event` runs on the engine's kernel thread (and the feed thread for transient
ticks) and does O(1) work per event under one short lock: bump the version, mark the sections
the topic touches, append a tape row to a bounded ring and to its topic's ring, remember
critical events in another. Sessions call `changes_since(version)` from their own periodic
callbacks and get everything that changed since, coalesced: a section touched 500 times since
is one flag.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tradelab.events import Event

# Which console sections a topic changes: a session re-reads a section's value from the store
# at most once per push, whatever number of events touched it.
SECTION_TOPICS: dict[str, tuple[str, ...]] = {
    "positions": ("trade.", "position.", "mark.updated", "pnl."),
    "orders": ("order.",),
    "trades": ("trade.executed",),
    # Runner, risk, engine, P&L, reconciliation and market session badges: one section, read
    # at one version.
    "header": (
        "runner.",
        "risk.",
        "engine.",
        "journal.",
        "snapshot.",
        "reconciliation.",
        "broker.",
        "pnl.",
        "trade.executed",
        "position.",
        "mark.updated",
        "market.session",
    ),
    "bars": ("market.bar", "market.session"),
    "marks": ("mark.updated",),
    "signals": ("signal.",),
    # The strategies' parameters: a change (runner.params_changed) or a strategy added.
    "params": ("runner.",),
}
SECTIONS = tuple(SECTION_TOPICS)
# The events every session is told of (a notification), kept in their own ring so a flood of
# marks on the tape never pushes one out before the sessions saw it.
ALERT_TOPICS = frozenset(
    {"trade.executed", "position.closed", "risk.daily_loss_breached", "reconciliation.mismatch"}
)
TICK_TOPIC = "market.tick"


def _sections_of(topic: str) -> tuple[str, ...]:
    return tuple(
        name
        for name, prefixes in SECTION_TOPICS.items()
        if any(topic.startswith(prefix) for prefix in prefixes)
    )


@dataclass(frozen=True, slots=True)
class TapeRow:
    """One event as the tape shows it; `received_ns` is when the view got it (wall clock)."""

    version: int
    seq: int
    topic: str
    key: str
    ts: int
    received_ns: int
    payload: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed since a session's last version: sections to re-read, new tape rows and
    alerts (oldest first), and whether the session fell behind the ring (`resync`: its tape
    starts again from `tape`)."""

    version: int
    sections: frozenset[str]
    tape: tuple[TapeRow, ...]
    alerts: tuple[TapeRow, ...]
    resync: bool
    last_seq: int
    last_event_ns: int
    last_tick_ns: int
    # The exchange clock of the last tick (a simulated or replayed session runs it faster than
    # the wall clock); 0 before any tick.
    market_ns: int = 0


class SharedView:
    """Latest-per-section versions and three bounded buffers of tape rows; one per host.

    - the tape ring: the newest `tape_size` rows of any topic (what sessions pull);
    - the topic rings: the newest `topic_rows` rows of each topic, so a session that starts
      over (a new page, or one that fell behind the tape ring) still gets the last rows of a
      topic a flood of marks pushed out of the tape ring (`/?tape=order.*` shows the session's
      last orders). At most topics x `topic_rows` rows: topics are the registry's;
      rows are those published since the host started, after an earlier run's last ones
      (`seed`: a console started again on its journal); the rest are in the journal;
    - the alert ring: the newest `alert_size` critical events, for notifications.
    Each drops its oldest row when full; `metrics()` gives their lengths and bounds.
    """

    def __init__(
        self, *, tape_size: int = 1000, alert_size: int = 200, topic_rows: int = 20
    ) -> None:
        self._lock = threading.Lock()
        self.version = 0
        self._section_version: dict[str, int] = dict.fromkeys(SECTIONS, 0)
        self._sections_cache: dict[str, tuple[str, ...]] = {}
        self._tape: deque[TapeRow] = deque(maxlen=tape_size)
        self._alerts: deque[TapeRow] = deque(maxlen=alert_size)
        self.topic_rows = topic_rows
        self._by_topic: dict[str, deque[TapeRow]] = {}
        self.last_seq = 0
        self.last_event_ns = 0  # wall clock of the last journaled event the view got
        self.last_tick_ns = 0  # wall clock of the last raw tick (feed health)
        self.market_ns = 0  # the exchange clock of that tick
        self.events_seen = 0
        self.ticks_seen = 0
        self.tape_dropped = 0
        self.alerts_dropped = 0

    # -- kernel thread --------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """The bus handler: O(1) work, no store read, no Bokeh."""
        now = time.time_ns()
        topic = event.topic
        if topic == TICK_TOPIC:  # transient and at feed rate: feed health only, not the tape
            self.last_tick_ns = now
            self.market_ns = event.payload.get("ts") or self.market_ns
            self.ticks_seen += 1
            return
        sections = self._sections_cache.get(topic)
        if sections is None:
            sections = self._sections_cache[topic] = _sections_of(topic)
        with self._lock:
            self.version += 1
            version = self.version
            for name in sections:
                self._section_version[name] = version
            row = TapeRow(version, event.seq, topic, event.key, event.ts, now, event.payload)
            self._keep(row)
            if topic in ALERT_TOPICS:
                if len(self._alerts) == self._alerts.maxlen:
                    self.alerts_dropped += 1
                self._alerts.append(row)
            if event.seq:
                self.last_seq = event.seq
            self.last_event_ns = now
            self.events_seen += 1

    def seed(self, rows: list[tuple[int, int, str, str, dict[str, Any]]]) -> None:
        """Put an earlier run's last events (seq, ts, topic, key, payload; oldest first) in the
        tape and topic rings before any event of this run: a console started again shows the
        session's last orders and trades on its tape, as its tables do. No alert: they were
        told when they happened."""
        with self._lock:
            for seq, ts, topic, key, payload in rows:
                self.version += 1
                self._keep(TapeRow(self.version, seq, topic, key, ts, ts, payload))

    def _keep(self, row: TapeRow) -> None:
        """`row` into the tape ring and its topic's ring (under the lock)."""
        if len(self._tape) == self._tape.maxlen:
            self.tape_dropped += 1
        self._tape.append(row)
        ring = self._by_topic.get(row.topic)
        if ring is None:
            ring = self._by_topic[row.topic] = deque(maxlen=self.topic_rows)
        ring.append(row)

    # -- session callbacks ----------------------------------------------------------------------
    def changes_since(self, version: int, *, max_rows: int | None = None) -> Changes:
        """Everything after `version`; at most the last `max_rows` tape rows (the ring's
        oldest rows are dropped first, so a slow session never builds a backlog)."""
        with self._lock:
            current = self.version
            sections = frozenset(n for n, v in self._section_version.items() if v > version)
            tape = self._tape
            oldest = tape[0].version if tape else current + 1
            resync = version < oldest - 1 and bool(tape)
            new_rows, cut = _after(tape, version, max_rows)
            alerts, _ = _after(self._alerts, version, None)
            if resync or cut:
                # Starting over: the newest rows of each topic come back from the topic rings,
                # so a tape filtered on orders still shows the last orders after a flood of marks.
                kept = {row.version: row for ring in self._by_topic.values() for row in ring}
                kept.update((row.version, row) for row in new_rows)
                new_rows = tuple(kept[v] for v in sorted(kept))
            last_seq, last_event, last_tick = self.last_seq, self.last_event_ns, self.last_tick_ns
            market_ns = self.market_ns
        return Changes(
            current,
            sections,
            new_rows,
            alerts,
            resync or cut,
            last_seq,
            last_event,
            last_tick,
            market_ns,
        )

    def section_version(self, section: str) -> int:
        """The version of the last event that touched `section` (0: none yet)."""
        return self._section_version[section]

    def metrics(self) -> dict[str, Any]:
        with self._lock:
            return {
                "version": self.version,
                "events_seen": self.events_seen,
                "ticks_seen": self.ticks_seen,
                "tape_len": len(self._tape),
                "tape_size": self._tape.maxlen,
                "tape_dropped": self.tape_dropped,
                "topic_rings": len(self._by_topic),
                "topic_rows_len": sum(len(ring) for ring in self._by_topic.values()),
                "topic_rows": self.topic_rows,  # each ring's bound
                "alerts_dropped": self.alerts_dropped,
                "last_seq": self.last_seq,
            }


def _after(
    ring: deque[TapeRow], version: int, limit: int | None
) -> tuple[tuple[TapeRow, ...], bool]:
    """The rows of `ring` newer than `version` (at most the newest `limit`), walking back from
    the newest: the common case is a few rows since the last push. The flag says rows newer
    than `version` were left out."""
    out = []
    cut = False
    for row in reversed(ring):
        if row.version <= version:
            break
        if limit is not None and len(out) >= limit:
            cut = True
            break
        out.append(row)
    out.reverse()
    return tuple(out), cut
