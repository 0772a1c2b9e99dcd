"""Restoring an ack log record DuckDB holds part of."""

from __future__ import annotations

from test_acklog import _batch, _journal_seqs

from tradelab.journal import Journal
from tradelab.journal.acklog import AckLog, acklog_dir, log_files
from tradelab.journal.acklog_read import pending_events
from tradelab.journal.verify import inspect_journal


def test_a_record_duckdb_holds_part_of_restores_only_the_rest(tmp_path):
    path = tmp_path / "lab.duckdb"
    Journal(path).close()
    log = AckLog(path)
    log.append(1, 3, _batch(1, 3))
    log.sync()
    log.close(remove=False)
    Journal(path).close()  # DuckDB now holds 1..3
    log = AckLog(path)
    log.append(2, 6, _batch(2, 6))  # a record whose first events DuckDB committed already
    log.sync()
    log.close(remove=False)
    journal = Journal(path)
    try:
        assert journal.acklog_restored == 3
        assert _journal_seqs(journal) == [1, 2, 3, 4, 5, 6]
        assert log_files(acklog_dir(path)) == []
    finally:
        journal.close()


def test_events_after_a_gap_in_the_log_are_not_counted_as_pending(tmp_path):
    # pending_events: "How many logged events after `last_seq` the next read-write open would
    # restore": after a gap it restores none (it refuses the journal).
    path = tmp_path / "lab.duckdb"
    Journal(path).close()
    log = AckLog(path)
    log.append(10, 12, _batch(10, 12))
    log.sync()
    log.close(remove=False)
    assert pending_events(path, 0) == 0
    info = inspect_journal(path)
    assert info["ack_log_pending_events"] == 0
    assert any("jumps from seq 0 to 10" in d for d in info["ack_log_damage"])
