"""The DuckDB journal on its own: group commit, tail mark, damaged and foreign files, segments."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from tradelab.errors import JournalError, RecoveryError, SchemaVersionError
from tradelab.events import Event, encode_payload
from tradelab.journal import Journal, JournalReader
from tradelab.journal import segments as segments_module
from tradelab.journal.segments import (
    covered_segments,
    list_segments,
    parquet_list,
    segment_dir,
    segment_name,
)
from tradelab.journal.tailmark import TailMark
from tradelab.journal.writer import Ticket


def _append(writer, events: list[Event], tickets=None) -> None:
    """Hand events to a writer as the kernel does: each payload encoded once, beside it."""
    writer.append(events, [encode_payload(e.payload) for e in events], tickets)


def _events(first: int, n: int, critical_every: int = 0) -> list[Event]:
    return [
        Event(
            seq,
            1_700_000_000_000_000_000 + seq,
            "mark.updated",
            "",
            {"symbol": "NIFTY", "price": 24000.0 + seq},
            critical=bool(critical_every and seq % critical_every == 0),
        )
        for seq in range(first, first + n)
    ]


def _writer(journal: Journal, **kw):
    opts = dict(
        group_commit_ms=5.0,
        max_group_events=10_000,
        keep_snapshots=5,
        checkpoint_idle_seconds=0.2,
        segments=False,
    )
    opts.update(kw)
    return journal.start_writer(**opts)


def test_group_committed_events_read_back_identical_after_reopen(tmp_path):
    path = tmp_path / "j.duckdb"
    journal = Journal(path)
    writer = _writer(journal)
    written = _events(1, 2500, critical_every=100)
    for i in range(0, 2500, 250):
        _append(writer, written[i : i + 250])
    assert writer.flush(timeout=10) == 2500
    journal.close()
    reopened = Journal(path)
    try:
        read = [e for batch in reopened.iter_event_batches(batch_rows=700) for e in batch]
        assert read == written
        assert reopened.check.count == 2500 and reopened.check.damage is None
        assert [
            e.seq for batch in reopened.iter_event_batches(since_seq=2400) for e in batch
        ] == list(range(2401, 2501))
    finally:
        reopened.close()


def test_critical_ticket_is_released_only_after_the_commit_holding_it(tmp_path):
    journal = Journal(tmp_path / "j.duckdb")
    writer = _writer(journal, group_commit_ms=1000.0)  # ordinary events would wait 1 s
    events = _events(1, 10)
    ticket = Ticket()
    ticket.event = events[-1]
    started = time.monotonic()
    _append(writer, events, [ticket])
    assert ticket.wait(timeout=5).seq == 10
    # A ticket closes the group at once; generous against a loaded machine, still well below
    # the 1000 ms window the group would otherwise wait (the window is the max settable).
    assert time.monotonic() - started < 0.9
    assert writer.durable_seq >= 10
    cur = journal.con.cursor()
    assert cur.execute("SELECT count(*) FROM events").fetchone()[0] == 10
    cur.close()
    journal.close()


def test_ordinary_events_are_durable_within_the_group_window(tmp_path):
    journal = Journal(tmp_path / "j.duckdb")
    writer = _writer(journal, group_commit_ms=20.0)
    _append(writer, _events(1, 5))
    deadline = time.monotonic() + 2.0
    while writer.durable_seq < 5 and time.monotonic() < deadline:
        time.sleep(0.002)
    assert writer.durable_seq == 5
    journal.close()


def test_lost_tail_is_reported_with_the_missing_seq_range(tmp_path):
    path = tmp_path / "j.duckdb"
    journal = Journal(path)
    _append(_writer(journal), _events(1, 10))
    journal.close()
    # As after a torn WAL tail: the mark says 15 was committed, the file holds only 10.
    TailMark(path).write(15)
    reopened = Journal(path)
    damage = reopened.check.damage
    reopened.close()
    assert damage == {
        "path": str(path),
        "expected_last_seq": 15,
        "found_last_seq": 10,
        "lost_from_seq": 11,
        "lost_events": 5,
    }
    # Not forgotten until a new commit moves the mark: reopening reports it again.
    again = Journal(path)
    assert again.check.damage is not None
    again.close()


def test_garbage_file_is_a_journal_error_naming_the_path(tmp_path):
    path = tmp_path / "garbage.duckdb"
    path.write_bytes(b"not a database " * 500)
    with pytest.raises(JournalError, match="garbage.duckdb"):
        Journal(path)
    assert path.read_bytes().startswith(b"not a database")  # left untouched


def test_truncated_file_is_a_journal_error(tmp_path):
    path = tmp_path / "j.duckdb"
    journal = Journal(path)
    writer = _writer(journal)
    _append(writer, _events(1, 20_000))
    writer.flush(timeout=10)
    journal.close()
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 3)
    with pytest.raises(JournalError, match="j.duckdb"):
        Journal(path)


def test_journal_from_a_newer_format_is_refused(tmp_path):
    path = tmp_path / "j.duckdb"
    Journal(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = '99' WHERE name = 'journal_format_version'")
    con.close()
    with pytest.raises(SchemaVersionError, match="format 99"):
        Journal(path)


def test_unwritable_journal_path_is_a_journal_error(tmp_path):
    blocker = tmp_path / "plainfile"
    blocker.write_text("x")
    with pytest.raises(JournalError, match="plainfile"):
        Journal(blocker / "sub" / "j.duckdb")
    with pytest.raises(JournalError, match="directory"):
        Journal(tmp_path)


def test_seq_gap_in_the_file_is_a_recovery_error_naming_it(tmp_path):
    path = tmp_path / "j.duckdb"
    Journal(path).close()
    con = duckdb.connect(str(path))
    con.execute(
        "INSERT INTO events VALUES (1, 0, 'mark.updated', '', false, 1, '{}'), "
        "(2, 0, 'mark.updated', '', false, 1, '{}'), (5, 0, 'mark.updated', '', false, 1, '{}')"
    )
    con.close()
    with pytest.raises(RecoveryError, match="seq 2 is followed by 5"):
        Journal(path)


def test_segments_hold_contiguous_ranges_and_stale_ones_are_set_aside(tmp_path):
    path = tmp_path / "j.duckdb"
    journal = Journal(path)
    _writer(journal, segments=True, segment_every_events=1000, segment_every_seconds=0)
    _append(journal.writer, _events(1, 2500))
    journal.writer.flush(timeout=10)
    journal.close()  # seals the rest on stop
    ranges = [(a, b) for a, b, _ in list_segments(segment_dir(path))]
    assert ranges[0][0] == 1 and ranges[-1][1] == 2500
    assert all(b + 1 == a2 for (_, b), (a2, _) in zip(ranges, ranges[1:], strict=False))
    # A segment beyond the journal's end (its tail lost after sealing) is renamed, not served.
    extra = segment_dir(path) / "events-000000002501-000000002600.parquet"
    extra.write_bytes(b"x")
    journal = Journal(path)
    _writer(journal, segments=True)
    assert any("2600" in p and "beyond" in p for p in journal.check.problems)
    journal.close()
    assert not extra.exists() and extra.with_name(extra.name + ".stale").exists()


def test_reader_uses_the_file_when_free_and_segments_while_another_process_writes(tmp_path):
    path = tmp_path / "j.duckdb"
    journal = Journal(path)
    _writer(journal, segments=True, segment_every_events=1000, segment_every_seconds=0)
    _append(journal.writer, _events(1, 3000))
    journal.writer.flush(timeout=10)
    journal.sealer.seal_now()
    script = textwrap.dedent(f"""
        from tradelab.journal import JournalReader
        r = JournalReader({str(path)!r})
        print(r.count(), r.last_seq(), r.source, len(r.events(since_seq=2990)))
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert out.returncode == 0, out.stderr
    assert "Conflicting lock" not in out.stderr + out.stdout
    assert out.stdout.split() == ["3000", "3000", "segments", "10"]
    journal.close()
    reader = JournalReader(path)
    assert reader.count() == 3000 and reader.source == "journal"
    assert reader.counts_by_topic() == {"mark.updated": 3000}


def _merging(monkeypatch, smaller_than: int) -> None:
    """Merge as soon as 4 segments below `smaller_than` events wait, and delete at once."""
    monkeypatch.setattr(segments_module, "MERGE_WHEN", 4)
    monkeypatch.setattr(segments_module, "MERGE_SMALLER_THAN", smaller_than)
    monkeypatch.setattr(segments_module, "MERGE_GRACE_S", 0.0)


def _sealed(journal: Journal, events: list) -> None:
    """`events` committed and sealed into a segment of their own."""
    _append(journal.writer, events)
    journal.writer.flush(timeout=10)
    journal.sealer.seal_now()


def test_small_segments_are_merged_and_the_files_a_merge_covers_are_never_read(
    tmp_path, monkeypatch
):
    # A seal every few seconds made ~4,500 files a day, and every reader's query opened them all.
    _merging(monkeypatch, 10_000)
    path = tmp_path / "j.duckdb"
    journal = Journal(path)
    _writer(journal, segments=True, segment_every_events=100, segment_every_seconds=0)
    events = _events(1, 1000)
    for i in range(0, 1000, 100):
        _sealed(journal, events[i : i + 100])
    assert journal.sealer.segments_merged >= 2
    journal.close()
    files = sorted(segment_dir(path).glob("events-*.parquet"))
    assert len(files) < 10
    ranges = [(a, b) for a, b, _ in list_segments(segment_dir(path))]
    assert ranges[0][0] == 1 and ranges[-1][1] == 1000
    assert all(b + 1 == a2 for (_, b), (a2, _) in zip(ranges, ranges[1:], strict=False))
    seqs = duckdb.sql(
        f"SELECT seq FROM read_parquet({parquet_list(list_segments(segment_dir(path)))}) "
        "ORDER BY seq"
    ).fetchall()
    assert [s for (s,) in seqs] == list(range(1, 1001))


def test_a_listing_leaves_out_the_files_a_merged_segment_covers(tmp_path):
    directory = tmp_path / "j.segments"
    directory.mkdir()
    for first, last in ((1, 100), (101, 200), (1, 200), (201, 300)):
        (directory / segment_name(first, last)).write_bytes(b"")
    assert [(a, b) for a, b, _ in list_segments(directory)] == [(1, 200), (201, 300)]
    assert sorted(p.name for p in covered_segments(directory)) == [
        segment_name(1, 100),
        segment_name(101, 200),
    ]


def _segmented(tmp_path, last_seq: int):
    """A closed journal of events 1..last_seq in segments of 100; (its path, segments dir)."""
    path = tmp_path / "j.duckdb"
    journal = Journal(path)
    _writer(journal, segments=True, segment_every_events=100, segment_every_seconds=0)
    _append(journal.writer, _events(1, last_seq))
    journal.close()
    return path, segment_dir(path)


def test_a_merged_segment_past_the_journals_end_takes_the_files_it_covered_along(tmp_path):
    path, directory = _segmented(tmp_path, 100)
    for first, last in ((101, 150), (151, 200), (101, 200)):  # the journal lost 101..200
        (directory / segment_name(first, last)).write_bytes(b"")
    journal = Journal(path)
    _writer(journal, segments=True)
    journal.close()
    assert [(a, b) for a, b, _ in list_segments(directory)] == [(1, 100)]


def test_engine_metrics_count_the_segment_files_a_reader_opens(tmp_path):
    from tradelab.engine import Engine

    with Engine(journal_path=str(tmp_path / "j.duckdb"), segment_every_events=50) as engine:
        for i in range(120):
            engine.submit("mark.updated", {"symbol": "A", "price": 1.0 + i})
        engine.flush()
        engine.seal_segments()
        assert (
            engine.metrics()["segment_files"]
            == len(list_segments(segment_dir(tmp_path / "j.duckdb")))
            >= 2
        )


def test_a_lone_small_segment_before_a_large_one_does_not_stop_the_merging(tmp_path, monkeypatch):
    _merging(monkeypatch, 300)
    path = tmp_path / "j.duckdb"
    journal = Journal(path)
    _writer(journal, segments=True, segment_every_events=1000, segment_every_seconds=0)
    events = _events(1, 2000)
    _sealed(journal, events[:100])  # small
    _sealed(journal, events[100:1000])  # large (900)
    for i in range(1000, 2000, 100):  # ten small ones after it
        _sealed(journal, events[i : i + 100])
    assert journal.sealer.segments_merged >= 2
    journal.close()
    assert len(list_segments(segment_dir(path))) < 8


def test_a_start_removes_what_a_kill_left_of_a_merge(tmp_path):
    path, directory = _segmented(tmp_path, 200)
    merged = sorted(directory.glob("events-*.parquet"))
    assert [p.name for p in merged] == [segment_name(1, 100), segment_name(101, 200)]
    (directory / segment_name(1, 200)).write_bytes(merged[0].read_bytes())  # a merge's file
    (directory / ".events-000000000001-000000000200.parquet.tmp").write_bytes(b"x")
    journal = Journal(path)
    _writer(journal, segments=True)
    journal.close()
    assert sorted(p.name for p in directory.iterdir()) == [segment_name(1, 200)]


def test_journals_named_alike_but_for_their_last_suffix_keep_their_own_folders(tmp_path):
    """`runs.1` and `runs.2` (or `nifty.duckdb` and `nifty.db`) shared `<stem>.segments` and
    `<stem>.acklog`: the second was refused, told to remove the first one's files, and two run
    at once mixed their segments and ack logs. `lab.duckdb` keeps `lab.segments`."""
    from tradelab.engine import Engine
    from tradelab.journal.acklog import acklog_dir
    from tradelab.journal.segments import segment_dir

    assert segment_dir(tmp_path / "lab.duckdb") == tmp_path / "lab.segments"
    assert acklog_dir(tmp_path / "lab.duckdb") == tmp_path / "lab.acklog"
    names = ["runs.1", "runs.2", "nifty.duckdb", "nifty.db"]
    assert len({segment_dir(tmp_path / n) for n in names}) == 4
    assert len({acklog_dir(tmp_path / n) for n in names}) == 4
    for name in names:
        with Engine(journal_path=str(tmp_path / name)) as engine:
            engine.submit("mark.updated", {"symbol": "X", "price": 1.0}, wait=True)
        assert JournalReader(tmp_path / name).last_seq() == engine.store.version
