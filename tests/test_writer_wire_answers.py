"""The writer process's pipe protocol and its answers to the engine."""

from __future__ import annotations

import os

import msgspec

from tradelab.errors import JournalError
from tradelab.journal import wire
from tradelab.journal.writer_process import WriterProcess


def test_a_frame_cut_by_a_read_timeout_is_whole_at_the_next_call():
    # FrameBuffer.next_frames: "with `timeout`, [] when nothing more arrived for that long
    # (what did arrive is kept for the next call)".
    r, w = os.pipe()
    try:
        frames_in = wire.FrameBuffer(r)
        out = wire.FrameWriter(w)
        whole = wire._HEADER.pack(wire.FLUSHED, 10) + b"0123456789"
        os.write(w, whole[:3])  # part of the header
        assert frames_in.next_frames(timeout=0.05) == []
        os.write(w, whole[3:])
        assert frames_in.next_frames(timeout=1.0) == [(wire.FLUSHED, b"0123456789")]
        out.send(wire.READY)
        assert frames_in.next_frames(timeout=1.0) == [(wire.READY, b"")]
    finally:
        os.close(r)
        os.close(w)


class _Out:
    def __init__(self):
        self.frames = []

    def send(self, kind, *parts):
        self.frames.append((kind, b"".join(parts)))


class _FailingWriter:
    durable_seq = 41

    def flush(self, timeout=None):
        raise JournalError("journal writer failed: disk full")


class _FailedSealer:
    failed = OSError("no space left on device")

    def seal_now(self):
        return 7


def _process(writer=None, sealer=None):
    process = WriterProcess.__new__(WriterProcess)  # no DuckDB: only the frame answers
    process.out, process.writer, process.sealer = _Out(), writer, sealer
    return process


def test_a_flush_the_writer_could_not_do_is_answered_with_its_error():
    process = _process(writer=_FailingWriter())
    process._request(wire.FLUSH, msgspec.json.encode(3))
    [(kind, body)] = process.out.frames
    request_id, durable, error = msgspec.json.decode(body)
    assert (kind, request_id, durable) == (wire.FLUSHED, 3, 41)
    assert "disk full" in error


def test_a_seal_after_the_sealer_failed_is_answered_with_its_failure():
    process = _process(writer=object(), sealer=_FailedSealer())
    process._request(wire.SEAL, msgspec.json.encode(5))
    [(kind, body)] = process.out.frames
    request_id, sealed, error = msgspec.json.decode(body)
    assert (kind, request_id, sealed) == (wire.SEALED, 5, 7)
    assert "no space left on device" in error


class _CountingWriter:
    failed = None

    def __init__(self):
        self.flushes = 0

    def flush(self, timeout=None):
        self.flushes += 1
        return 0


def test_an_abandoned_writer_process_commits_what_arrived():
    writer = _CountingWriter()
    _process(writer=writer).abandon()
    assert writer.flushes == 1
