"""`DurableHistory`: the bridge's bounded history of durable events, encoded once, in chunks.

Thread model: only the server's event-loop thread touches it (the hub's pump appends, client
senders read). Each pump pass encodes the events it moves with one msgspec call into a chunk
(the JSON objects of consecutive events, comma-separated); a replica that follows live takes
whole chunks, so nothing is encoded or split per replica. A replica resuming mid-chunk gets
that chunk split once (`msgspec.Raw`, no objects built). Policy when full (`capacity` events):
the oldest chunks are dropped; a replica whose next event was dropped gets a fresh snapshot.
"""

from __future__ import annotations

import bisect
from collections import deque

import msgspec

from tradelab.errors import InvalidInputError

_split = msgspec.json.Decoder(list[msgspec.Raw]).decode


class DurableHistory:
    """The last `capacity` durable events at most (whole chunks; one chunk if it is larger),
    seq `first_seq`..`last_seq`."""

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise InvalidInputError(f"history capacity {capacity!r} must be an int >= 1")
        self.capacity = capacity
        self._firsts: deque[int] = deque()  # first seq of each chunk, ascending
        self._chunks: deque[bytes] = deque()
        self.first_seq = 1  # lowest seq held (first_seq > last_seq: empty)
        self.last_seq = 0
        self.bytes_held = 0
        self.dropped_chunks = 0

    def __len__(self) -> int:
        return self.last_seq - self.first_seq + 1

    def restart_at(self, last_seq: int) -> None:
        """Forget everything: the next chunk appended must start at `last_seq + 1`."""
        self._firsts.clear()
        self._chunks.clear()
        self.first_seq, self.last_seq, self.bytes_held = last_seq + 1, last_seq, 0

    def append(self, first_seq: int, last_seq: int, chunk: bytes) -> None:
        """Add events `first_seq`..`last_seq` (first_seq == self.last_seq + 1, checked by the
        caller) as `chunk`: their JSON objects joined by commas."""
        self._firsts.append(first_seq)
        self._chunks.append(chunk)
        self.bytes_held += len(chunk)
        self.last_seq = last_seq
        while len(self) > self.capacity and len(self._chunks) > 1:
            self._firsts.popleft()
            self.bytes_held -= len(self._chunks.popleft())
            self.first_seq = self._firsts[0]
            self.dropped_chunks += 1

    def reaches(self, after_seq: int) -> bool:
        """Whether every event after `after_seq` (up to `last_seq`) is still held."""
        return after_seq + 1 >= self.first_seq

    def after(self, after_seq: int, max_events: int) -> tuple[list[bytes], int]:
        """(chunks, how many events) after `after_seq`: whole chunks until at least
        `max_events` (or the end); check `reaches` first."""
        start = after_seq + 1
        if start > self.last_seq:
            return [], 0
        firsts, chunks = self._firsts, self._chunks
        i = bisect.bisect_right(firsts, start) - 1
        parts: list[bytes] = []
        count = 0
        if firsts[i] != start:  # resuming mid-chunk: split that chunk once
            events = _split(b"[" + chunks[i] + b"]")
            tail = events[start - firsts[i] :]
            parts.append(b",".join(bytes(raw) for raw in tail))
            count = len(tail)
            i += 1
        n = len(chunks)
        while i < n and count < max_events:
            parts.append(chunks[i])
            nxt = firsts[i + 1] if i + 1 < n else self.last_seq + 1
            count += nxt - firsts[i]
            i += 1
        return parts, count
