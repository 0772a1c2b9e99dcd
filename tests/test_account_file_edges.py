"""the paper account file's fill sequence check and order order."""

from __future__ import annotations

import pytest

from tradelab.broker.account_file import AccountFile, AccountFileError


def _order(order_id):
    return {"request": {"order_id": order_id}, "status": "filled"}


def test_a_gap_in_the_saved_fills_is_refused_on_load(tmp_path):
    account = AccountFile(tmp_path / "a.broker.sqlite")
    account.save({"cash": 1.0}, [], [{"fill_seq": 1}, {"fill_seq": 2}, {"fill_seq": 4}])
    with pytest.raises(AccountFileError, match="fill_seq 4 found where 3 was expected"):
        account.load()
    account.close()


def test_orders_load_in_the_order_of_their_last_save(tmp_path):
    account = AccountFile(tmp_path / "a.broker.sqlite")
    account.save({"cash": 1.0}, [_order("O2")], [])
    account.save({"cash": 1.0}, [_order("O1")], [])
    account.save({"cash": 1.0}, [_order("O3")], [])
    account.save({"cash": 1.0}, [_order("O2")], [])  # saved again: now the newest
    _, orders, _ = account.load()
    assert [o["request"]["order_id"] for o in orders] == ["O1", "O3", "O2"]
    account.close()


def test_an_account_adopted_by_a_new_journal_is_that_journals_on_its_next_start(tmp_path):
    account = AccountFile(tmp_path / "a.broker.sqlite")
    account.bind_to_journal(tmp_path / "old.duckdb", "100", True)  # its first journal
    account.bind_to_journal(tmp_path / "a.duckdb", "200", True)  # a new journal beside it
    account.bind_to_journal(tmp_path / "a.duckdb", "200", False)  # that journal restarted
    account.close()


def test_a_save_that_fails_midway_leaves_nothing_and_the_next_save_works(tmp_path):
    account = AccountFile(tmp_path / "a.broker.sqlite")
    with pytest.raises(KeyError):
        account.save({"cash": 1.0}, [{"no request": 1}], [])  # fails after the account row
    assert account.load() is None  # "then nothing of it is in the file"
    account.save({"cash": 2.0}, [], [{"fill_seq": 1}])
    assert account.load() == ({"cash": 2.0}, [], [{"fill_seq": 1}])
    account.close()
