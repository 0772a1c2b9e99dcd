"""Segments after a gap are set aside, not served."""

from __future__ import annotations

import os

from test_journal import _events, _sealed, _writer

from tradelab.journal import Journal
from tradelab.journal import segments as segments_module
from tradelab.journal.segments import (
    covered_segments,
    list_segments,
    reconcile_segments,
    segment_dir,
    segment_name,
)


def test_a_segment_after_a_gap_is_set_aside_and_the_sealed_seq_stops_before_it(tmp_path):
    for first, last in ((1, 10), (21, 30)):  # 11..20 missing: no reader may skip over them
        (tmp_path / segment_name(first, last)).write_bytes(b"x")
    sealed, problems = reconcile_segments(tmp_path, journal_last_seq=30)
    assert sealed == 10
    assert [(a, b) for a, b, _ in list_segments(tmp_path)] == [(1, 10)]
    assert (tmp_path / (segment_name(21, 30) + ".stale")).exists()
    assert len(problems) == 1 and "expected 11" in problems[0]


def test_the_files_a_merge_covers_stay_for_the_grace_period(tmp_path, monkeypatch):
    # A reader that listed the small files just before the merge still reads them: they are
    # deleted MERGE_GRACE_S later (or on the next start), not at once.
    monkeypatch.setattr(segments_module, "MERGE_WHEN", 4)
    monkeypatch.setattr(segments_module, "MERGE_SMALLER_THAN", 10_000)
    path = tmp_path / "j.duckdb"
    journal = Journal(path)
    _writer(journal, segments=True, segment_every_events=100, segment_every_seconds=0)
    events = _events(1, 400)
    for i in range(0, 400, 100):
        _sealed(journal, events[i : i + 100])
    _sealed(journal, _events(401, 1))  # one more pass of the sealer's loop after the merge
    assert journal.sealer.segments_merged == 1
    covered = covered_segments(segment_dir(path))
    assert len(covered) == 4 and all(p.exists() for p in covered)
    journal.close()


def test_a_segment_is_fsynced_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(segments_module.os, "fsync", fsync)
    path = tmp_path / "j.duckdb"
    journal = Journal(path)
    _writer(journal, segments=True, segment_every_events=100, segment_every_seconds=0)
    _sealed(journal, _events(1, 100))
    journal.close()
    assert any(p.endswith(".events-000000000001-000000000100.parquet.tmp") for p in synced)
