"""What the journal writer process owes the engine's process, and how it is all failed at once.

Three kinds of answer are owed: a commit releasing critical tickets (without the ack log), a
snapshot's result, and the answer to a flush or seal request. One lock guards them and the
failure, so a request is either answered or failed, never left waiting: whoever adds a debt
checks the failure under the lock that `fail` takes to collect them.
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Callable

from tradelab.journal.writer import SnapshotCallback, Ticket, notify_snapshot


class RequestAnswer(threading.Event):
    """One flush or seal request in flight: set with the seq it reports and its error (or None)."""

    error: BaseException | None = None
    seq: int = 0

    def resolve(self, error: BaseException | None = None) -> None:
        self.error = error
        self.set()


class OwedAnswers:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tickets: collections.deque[Ticket] = collections.deque()  # in seq order
        self._snapshot_callbacks: collections.deque[SnapshotCallback | None] = collections.deque()
        self._requests: dict[int, RequestAnswer] = {}
        self._request_ids = itertools.count(1)
        self.failed: BaseException | None = None

    def add_tickets(self, tickets: list[Ticket], then: Callable[[], None]) -> BaseException | None:
        """Hold `tickets` for the commit that covers them and call `then` under the lock (so
        the frame releasing them finds what it stamps); or return the failure, holding none."""
        with self._lock:
            if self.failed is None:
                self.tickets.extend(tickets)
                then()
            return self.failed

    def add_snapshot(self, callback: SnapshotCallback | None) -> BaseException | None:
        with self._lock:
            if self.failed is None:
                self._snapshot_callbacks.append(callback)
            return self.failed

    def open_request(self) -> tuple[int, RequestAnswer]:
        """A new request's id and its answer; the failure is raised if there is one."""
        with self._lock:
            if self.failed is not None:
                raise self.failed
            request_id = next(self._request_ids)
            answer = self._requests[request_id] = RequestAnswer()
        return request_id, answer

    def close_request(self, request_id: int) -> None:
        with self._lock:
            self._requests.pop(request_id, None)

    def answer_request(self, request_id: int, seq: int, error: BaseException | None) -> None:
        with self._lock:
            answer = self._requests.get(request_id)
        if answer is not None:  # gone: its caller timed out
            answer.seq = seq
            answer.resolve(error)

    def release_through(self, last: int) -> bool:
        """Release the tickets of seqs up to `last`; whether there were any."""
        tickets = self.tickets
        if not tickets or tickets[0].event.seq > last:  # type: ignore[union-attr]
            return False  # most commits: nobody waits on these seqs
        with self._lock:
            ready = []
            while tickets and tickets[0].event.seq <= last:  # type: ignore[union-attr]
                ready.append(tickets.popleft())
        for ticket in ready:
            ticket.resolve()
        return True

    def next_snapshot_callback(self) -> SnapshotCallback | None:
        with self._lock:
            return self._snapshot_callbacks.popleft() if self._snapshot_callbacks else None

    def owes(self, events_owed: bool) -> bool:
        """Whether an answer is owed: `events_owed` (events sent, not yet committed) or any
        request or snapshot in flight."""
        return events_owed or bool(self._requests) or bool(self._snapshot_callbacks)

    def waiting(self) -> bool:
        """Whether anybody blocks on an answer (tickets or requests)."""
        return bool(self.tickets) or bool(self._requests)

    def fail(self, error: BaseException) -> None:
        """Record the first failure and answer every debt with it."""
        with self._lock:
            if self.failed is None:
                self.failed = error
            tickets, self.tickets = list(self.tickets), collections.deque()
            requests = list(self._requests.values())
            callbacks, self._snapshot_callbacks = (
                list(self._snapshot_callbacks),
                collections.deque(),
            )
        for waiter in tickets + requests:
            waiter.resolve(self.failed)
        for callback in callbacks:
            notify_snapshot(callback, self.failed)
