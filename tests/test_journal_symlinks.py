"""Files tradelab keeps beside a journal are never written through a symbolic link someone
placed there: the link's target is left as it was, and the journal says why it cannot go on."""

from __future__ import annotations

import pytest

from tradelab.engine import Engine
from tradelab.errors import TradelabError

PRECIOUS = b"someone else's notes\n" * 50


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_kept(tmp_path):
    victim = tmp_path / "notes.txt"
    victim.write_bytes(PRECIOUS)
    journal = tmp_path / "j.duckdb"
    (tmp_path / "j.duckdb.lock").symlink_to(victim)
    with pytest.raises(TradelabError, match="symbolic link"):
        Engine(journal_path=str(journal), writer_process=False).start()
    assert victim.read_bytes() == PRECIOUS


@pytest.mark.parametrize("writer_process", [False, True], ids=["thread", "process"])
def test_a_high_water_mark_swapped_for_a_link_is_not_written_through(tmp_path, writer_process):
    journal = tmp_path / "j.duckdb"
    with Engine(journal_path=str(journal), writer_process=writer_process) as engine:
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 100.0}, wait=True)
    mark = tmp_path / "j.duckdb.hwm"
    assert mark.is_file()
    victim = tmp_path / "notes.txt"
    victim.write_bytes(PRECIOUS)
    mark.unlink()
    mark.symlink_to(victim)
    try:
        with Engine(journal_path=str(journal), writer_process=writer_process) as engine:
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 101.0}, wait=True)
    except TradelabError as exc:
        assert "symbolic link" in str(exc) or "hwm" in str(exc)
    assert victim.read_bytes() == PRECIOUS


def test_a_wal_that_is_a_link_is_refused_and_its_target_kept(tmp_path):
    journal = tmp_path / "j.duckdb"
    with Engine(journal_path=str(journal), writer_process=False) as engine:
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 100.0}, wait=True)
    victim = tmp_path / "notes.txt"
    victim.write_bytes(PRECIOUS)
    (tmp_path / "j.duckdb.wal").symlink_to(victim)
    with pytest.raises(TradelabError, match="symbolic link"):
        Engine(journal_path=str(journal), writer_process=False).start()
    assert victim.read_bytes() == PRECIOUS
