"""`DurableHistory`: the bridge's bounded ring of durable events, each encoded once.

Thread model: only the server's event-loop thread touches it (the hub's pump appends, client
senders read). Indexed by seq (slot = seq % capacity), so a resuming replica's position is found
in O(1). Policy when full: the oldest event is overwritten; a replica whose next event was
overwritten is sent a fresh snapshot instead.
"""

from __future__ import annotations

from tradelab.errors import InvalidInputError


class DurableHistory:
    """The last `capacity` durable events as JSON bytes, seq `first_seq`..`last_seq`."""

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise InvalidInputError(f"history capacity {capacity!r} must be an int >= 1")
        self.capacity = capacity
        self._slots: list[bytes | None] = [None] * capacity
        self.first_seq = 1  # lowest seq held (first_seq > last_seq: empty)
        self.last_seq = 0
        self.bytes_held = 0
        self.overwritten = 0

    def __len__(self) -> int:
        return self.last_seq - self.first_seq + 1

    def restart_at(self, last_seq: int) -> None:
        """Forget everything: the next event appended must be `last_seq + 1`."""
        self._slots = [None] * self.capacity
        self.first_seq, self.last_seq, self.bytes_held = last_seq + 1, last_seq, 0

    def append(self, seq: int, data: bytes) -> None:
        """Add the event after `last_seq` (the caller checks continuity)."""
        slot = seq % self.capacity
        old = self._slots[slot]
        if old is not None:
            self.bytes_held -= len(old)
        self._slots[slot] = data
        self.bytes_held += len(data)
        self.last_seq = seq
        if seq - self.first_seq >= self.capacity:
            self.first_seq = seq - self.capacity + 1
            self.overwritten += 1

    def reaches(self, after_seq: int) -> bool:
        """Whether every event after `after_seq` (up to `last_seq`) is still held."""
        return after_seq + 1 >= self.first_seq

    def after(self, after_seq: int, max_events: int) -> list[bytes]:
        """The encoded events after `after_seq`, at most `max_events` (check `reaches` first)."""
        start = after_seq + 1
        stop = min(self.last_seq, after_seq + max_events)
        if start > stop:
            return []
        slots, cap = self._slots, self.capacity
        a, b = start % cap, stop % cap
        if a <= b:
            return slots[a : b + 1]  # type: ignore[return-value]
        return slots[a:] + slots[: b + 1]  # type: ignore[return-value]
