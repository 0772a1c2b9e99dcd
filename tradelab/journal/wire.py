"""Frames between the engine and its journal writer process: a kind byte, a length, a body.

Both ends use blocking pipe I/O, which releases the GIL while it waits. A frame is written with
as few `os.write` calls as the pipe allows, under the sender's lock, so frames from two threads
never interleave. A reader that meets end-of-file inside a frame reports a clean end: the
sender died mid-write, and a half-sent frame was never acknowledged to anyone.
"""

from __future__ import annotations

import os
import select
import struct
import threading
from typing import Any

import msgspec

from tradelab.errors import JournalError
from tradelab.events import Event
from tradelab.journal.checkpoint import DEFAULT_WAL_BYTES

_HEADER = struct.Struct("<cI")  # kind, body length

# engine -> writer process
CONFIG = b"C"  # msgspec JSON settings; the first frame
EVENTS = b"E"  # EVENTS_HEAD (first seq, last seq, urgent), then a JSON array of stamped events
SNAPSHOT = b"S"  # JSON [seq, schema_version] + b"\n" + the state bytes
FLUSH = b"F"  # JSON request id
SEAL = b"L"  # JSON request id: seal every committed event into Parquet segments now
STOP = b"Q"  # commit, checkpoint, seal, close, exit
# writer process -> engine
READY = b"R"  # the journal is open and the writer runs
DURABLE = b"D"  # DURABLE_GROUP: a committed group, and the writer's pending-bound metrics
SNAPSHOT_WRITTEN = b"N"  # JSON SnapshotInfo fields, or {"error": text}
FLUSHED = b"F"  # JSON [request id, durable seq, error text or ""]
SEALED = b"L"  # JSON [request id, sealed-up-to seq, error text or ""]
FAILED = b"X"  # UTF-8 error text; the writer stopped
SEGMENTS_FAILED = b"W"  # UTF-8 text: the segment sealer stopped (the journal goes on)
DAMAGED = b"V"  # UTF-8 text: reading the file back found it damaged (the engine must stop)
STOPPED = b"Q"  # clean stop finished

# first seq, last seq, pending high water, backpressure waits, backpressure seconds
DURABLE_GROUP = struct.Struct("<qqqqd")
EVENTS_HEAD = struct.Struct("<qq?")


class FrameWriter:
    """Writes whole frames to a pipe file descriptor from any thread."""

    def __init__(self, fd: int, *, reader_may_vanish: bool = False) -> None:
        """`reader_may_vanish`: once the reading end is closed (EPIPE), frames are dropped
        instead of raising: the writer process's engine died, and nobody awaits its answers."""
        self._fd = fd
        self._lock = threading.Lock()
        self._reader_may_vanish = reader_may_vanish
        self.reader_gone = False

    def send(self, kind: bytes, *parts: bytes) -> None:
        """One frame whose body is `parts` joined; written with writev, so the kernel's event
        batch is not copied into a new buffer on its way out."""
        chunks = [_HEADER.pack(kind, sum(map(len, parts))), *parts]
        total = sum(map(len, chunks))
        with self._lock:
            if self.reader_gone:
                return
            try:
                written = os.writev(self._fd, chunks)
                if written < total:  # a full pipe took part of it: send the rest in order
                    view = memoryview(b"".join(chunks))[written:]
                    while view:
                        view = view[os.write(self._fd, view) :]
            except BrokenPipeError:
                if not self._reader_may_vanish:
                    raise
                self.reader_gone = True


class FrameBuffer:
    """Reads a pipe in large chunks and hands out every complete frame received so far.

    Knowing where the received data ends is what lets the writer process sync its ack log once
    for all the frames that arrived together (group commit of acknowledgements).
    """

    def __init__(self, fd: int, chunk: int = 1 << 20) -> None:
        self._fd = fd
        self._chunk = chunk
        self._data = b""
        self._poll = select.poll()  # not select.select: no limit on the descriptor's number
        self._poll.register(fd, select.POLLIN)

    def next_frames(self, timeout: float | None = None) -> list[tuple[bytes, bytes]] | None:
        """Block until at least one frame is complete; None at end of file (a partial frame
        left then was cut short by the sender's death); with `timeout`, [] when nothing more
        arrived for that long (what did arrive is kept for the next call)."""
        while True:
            frames, at, data = [], 0, self._data
            while len(data) - at >= _HEADER.size:
                kind, length = _HEADER.unpack_from(data, at)
                end = at + _HEADER.size + length
                if end > len(data):
                    break
                frames.append((kind, data[at + _HEADER.size : end]))
                at = end
            self._data = data = data[at:]
            if frames:
                return frames
            # Read until the next frame is whole (or its header is in), gathering the reads and
            # joining them once: a frame of many megabytes (a big snapshot) arrives in pipe-sized
            # reads, and appending each to the rest was quadratic (seconds per snapshot).
            need = _HEADER.size
            if len(data) >= _HEADER.size:
                need += _HEADER.unpack_from(data, 0)[1]
            parts, have = [data], len(data)
            while True:
                if timeout is not None and not self._poll.poll(timeout * 1000):
                    self._data = b"".join(parts)
                    return []
                more = os.read(self._fd, max(self._chunk, need - have))
                if not more:
                    self._data = b"".join(parts)
                    return None
                parts.append(more)
                have += len(more)
                if have >= need:
                    break
            self._data = b"".join(parts)


class WriterSettings(msgspec.Struct, frozen=True):
    """What the engine tells the writer process in its CONFIG frame."""

    path: str
    last_seq: int
    next_snapshot_id: int
    wal_autocheckpoint: str = "1GB"
    open_timeout_seconds: float = 2.0
    group_commit_ms: float = 10.0
    max_group_events: int = 20_000
    # Bound of the events queued for DuckDB in the writer (ThreadJournalWriter): when full, the
    # feeding thread waits (the frame reader stops reading the pipe). ~2 x max_group_events.
    max_pending_events: int = 40_000
    keep_snapshots: int = 100
    checkpoint_idle_seconds: float = 1.0
    # CHECKPOINT while busy once the WAL passes this many bytes (0: only when idle or stopping).
    checkpoint_wal_bytes: int = DEFAULT_WAL_BYTES
    memory_limit_mb: int = 512  # the writer process's DuckDB; grows with the snapshots
    segments: bool = True
    sealed_seq: int = 0
    segment_every_events: int = 50_000
    segment_every_seconds: float = 5.0
    cpus: list[int] = []  # the CPUs the writer process runs on; empty: wherever the OS likes


class EncodedSnapshot:
    """A snapshot the engine serialized already: what `write_snapshot` needs of StateSnapshot."""

    __slots__ = ("seq", "schema_version", "_state")

    def __init__(self, seq: int, schema_version: int, state: bytes) -> None:
        self.seq = seq
        self.schema_version = schema_version
        self._state = state

    def to_bytes(self) -> bytes:
        return self._state


def encode_snapshot(snapshot: Any) -> bytes:
    """The SNAPSHOT frame body for a StateSnapshot (serialized by the caller's thread)."""
    head = msgspec.json.encode([int(snapshot.seq), int(snapshot.schema_version)])
    return head + b"\n" + snapshot.to_bytes()


def decode_snapshot(body: bytes) -> EncodedSnapshot:
    head, _, state = body.partition(b"\n")
    seq, schema_version = msgspec.json.decode(head)
    return EncodedSnapshot(seq, schema_version, state)


class EncodedEvent(msgspec.Struct):
    """A stamped event as the engine encoded it, payload kept as its exact JSON text."""

    seq: int
    ts: int
    topic: str
    key: str
    payload: msgspec.Raw
    critical: bool = False
    schema_version: int = 1


_decode_encoded = msgspec.json.Decoder(list[EncodedEvent]).decode
_encode = msgspec.json.Encoder().encode
_Raw = msgspec.Raw


def encode_events(events: list[Any], payloads: list[bytes]) -> bytes:
    """The EVENTS frame's JSON array: each event with `payloads[i]` spliced in as its payload.

    The same JSON an encoded list of Events gives, but the payload bytes are the submitter's,
    never a second encoding of the (possibly since changed) payload dict.
    """
    return _encode(
        [
            EncodedEvent(e.seq, e.ts, e.topic, e.key, _Raw(p), e.critical, e.schema_version)
            for e, p in zip(events, payloads, strict=True)
        ]
    )


class EncodedBatch(msgspec.Struct, frozen=True):
    """Events first_seq..last_seq as one JSON array (a list of Event), decoded when written."""

    first_seq: int
    last_seq: int
    body: bytes

    def rows(self) -> list[tuple]:
        rows = [
            (e.seq, e.ts, e.topic, e.key, e.critical, e.schema_version, bytes(e.payload).decode())
            for e in _decode_encoded(self.body)
        ]
        if len(rows) != self.last_seq - self.first_seq + 1 or (
            rows and (rows[0][0] != self.first_seq or rows[-1][0] != self.last_seq)
        ):
            raise JournalError(
                f"encoded batch {self.first_seq}..{self.last_seq} holds {len(rows)} events"
            )
        return rows


# Stamped events with the exact JSON bytes of each payload, encoded once by the submitter.
EventChunk = tuple[list[Event], list[bytes]]


def chunk_rows(chunk: EventChunk | EncodedBatch) -> list[tuple]:
    """The `events` table rows of a chunk (in EVENT_COLUMNS order)."""
    if isinstance(chunk, EncodedBatch):
        return chunk.rows()
    events, payloads = chunk
    return [
        (e.seq, e.ts, e.topic, e.key, e.critical, e.schema_version, p.decode())
        for e, p in zip(events, payloads, strict=True)
    ]


def chunk_seqs(chunk: EventChunk | EncodedBatch) -> tuple[int, int]:
    """(first seq, last seq) of a chunk."""
    if isinstance(chunk, EncodedBatch):
        return chunk.first_seq, chunk.last_seq
    return chunk[0][0].seq, chunk[0][-1].seq
