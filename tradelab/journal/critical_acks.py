"""The engine's use of the ack log (acklog.py): each batch is written to it before it goes to
the writer process; a critical batch is synced before its submitters are released.

Who syncs: whoever waits. A critical batch's waiting submitters get their tickets back at once
with the duty to sync (`Ticket.sync`): each syncs through its own seq on its own thread, unless
another's sync covered it already (group commit), while the kernel goes on applying (an
fdatasync is ~0.1 ms, and milliseconds when DuckDB's commits share the disk). No third thread
wakes on the critical path; a submitter that processed its own event (Kernel.run_here) syncs
while the kernel thread sends and publishes it. A critical batch nobody waits on (one
submitted from a bus handler) is synced by the `acklog-sync` thread; it only counts such
batches (one sync covers them all), so it holds nothing that could grow.

Thread model: the kernel thread (or the submitter holding the kernel's turn) calls `write`;
waiting submitters and the sync thread call `sync_through`; `close` after the kernel stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tradelab.errors import JournalError
from tradelab.journal.acklog import AckLog
from tradelab.journal.latency import LatencyWindow, clock
from tradelab.journal.writer import Ticket

log = logging.getLogger(__name__)


class CriticalAckLog:
    """Writes batches, syncs critical ones, releases their submitters (ack latency: `window`)."""

    def __init__(
        self,
        journal_path: str | Path,
        last_seq: int,
        window: LatencyWindow,
        on_failure: Callable[[JournalError], None],
    ) -> None:
        self.log = AckLog(journal_path, next_seq=last_seq + 1)
        self._window = window
        self._on_failure = on_failure
        self._pending = 0  # critical batches nobody waits on, written since the thread's sync
        self._wake = threading.Condition(threading.Lock())
        self._closing = False
        self.syncs = 0  # fdatasync calls: fewer than critical events when waiters share one
        self._thread = threading.Thread(target=self._sync_loop, name="acklog-sync", daemon=True)
        self._thread.start()

    @property
    def synced_seq(self) -> int:
        return self.log.synced_seq

    def write(
        self,
        first: int,
        last: int,
        body: bytes,
        tickets: list[Ticket] | None,
        committed: int,
    ) -> None:
        """Write first..last. For a critical batch (`tickets` not None) release the tickets
        with the duty to sync (with none, have the sync thread sync it). Files DuckDB has
        `committed` go first. A failed write (a full disk) releases the tickets with the
        JournalError it raises."""
        started = clock()
        try:
            self.log.retire(committed)
            self.log.append(first, last, body)
        except OSError as exc:
            raise self._failed(exc, tickets) from None
        if tickets is None:
            return
        if tickets:
            duty = partial(self.sync_through, started=started)
            for ticket in tickets:
                ticket.sync = duty
                ticket.resolve()
        else:
            with self._wake:
                self._pending += 1
                self._wake.notify()

    def sync_through(self, seq: int, started: float | None = None) -> None:
        """Return once `seq` is synced: at once if a sync covered it already. A failed sync
        fails the writer and raises the JournalError."""
        if self.log.synced_seq < seq:
            try:
                synced = self.log.sync_through(seq)
            except OSError as exc:
                error = self._failed(exc, None)
                self._on_failure(error)
                raise error from None
            self.syncs += synced
        if started is not None:
            self._window.add(clock() - started)

    def close(self, *, remove: bool) -> None:
        """Sync and release what is pending, stop the sync thread, close the log."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join()
        self.log.close(remove=remove)

    def _sync_loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if not self._pending:
                    return
                self._pending = 0
            try:  # covers every batch written before it
                self.sync_through(self.log.last_seq)
            except JournalError:  # reported by sync_through; the next write fails too
                log.warning("ack log sync failed on its sync thread", exc_info=True)

    def _failed(self, exc: OSError, tickets: list[Ticket] | None) -> JournalError:
        error = JournalError(
            f"cannot write the ack log {self.log.directory}: {exc.strerror or exc}; the events "
            f"up to seq {self.log.synced_seq} are safe in it, later ones were not acknowledged"
        )
        for ticket in tickets or ():
            ticket.resolve(error)
        return error
