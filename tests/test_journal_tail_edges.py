"""a lost tail of one event, a file cut short by less than a block, a
format one newer than this code's, and the ack log of a writer process killed while stopping."""

from __future__ import annotations

import contextlib
import os
import signal

import duckdb
import pytest

from tests.test_journal import _append, _events, _writer
from tradelab.errors import RecoveryError, SchemaVersionError
from tradelab.journal import Journal
from tradelab.journal.acklog import acklog_dir
from tradelab.journal.schema import JOURNAL_FORMAT_VERSION
from tradelab.journal.tailmark import TailMark


def _journal(path, n=10, **kw):
    journal = Journal(path, **kw)
    writer = _writer(journal)
    _append(writer, _events(1, n))
    writer.flush()
    return journal


def test_a_lost_tail_of_exactly_one_event_is_damage(tmp_path):
    path = tmp_path / "j.duckdb"
    _journal(path).close()
    TailMark(path).write(11)  # seq 11 had been committed; the file ends at 10
    journal = Journal(path)
    try:
        assert journal.check.damage is not None
        assert journal.check.damage["lost_events"] == 1
    finally:
        journal.close()


def test_a_journal_cut_short_by_one_page_is_damaged(tmp_path):
    path = tmp_path / "j.duckdb"
    _journal(path, n=2000).close()
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - 4096)
    with pytest.raises(RecoveryError, match="cut short"):
        Journal(path)


def test_a_journal_one_format_newer_is_refused(tmp_path):
    path = tmp_path / "j.duckdb"
    Journal(path).close()
    con = duckdb.connect(str(path))
    newer = JOURNAL_FORMAT_VERSION + 1
    con.execute(f"UPDATE meta SET value = '{newer}' WHERE name = 'journal_format_version'")
    con.close()
    with pytest.raises(SchemaVersionError, match=f"format {newer}"):
        Journal(path)


def test_a_writer_process_killed_while_stopping_leaves_its_ack_log(tmp_path):
    path = tmp_path / "j.duckdb"
    journal = _journal(path, n=50, writer_process=True)
    writer = journal.writer
    os.kill(writer.pid, signal.SIGSTOP)  # it never answers the STOP: stop() kills it
    try:
        writer.stop(timeout=1.0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(writer.pid, signal.SIGCONT)
    try:
        assert any(acklog_dir(path).iterdir()), "no clean stop, yet the ack log was removed"
    finally:
        journal.close()
