"""The paper broker's account file: what a restart keeps, and files that are not accounts."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from test_broker_paper import SYM, buy, paper

from tradelab.broker import (
    BrokerDownError,
    BrokerUnavailableError,
    PaperBroker,
    PaperBrokerConfig,
)
from tradelab.broker.account_file import AccountFileError
from tradelab.errors import InvalidInputError, OrderRejectedError
from tradelab.trading.orders import OrderRequest, OrderType, Side


def _filed_broker_that_bought(path):
    """A paper broker keeping its account in `path`, quoted and filled for one lot (o1)."""
    broker, clock, _ = paper()
    broker = PaperBroker(broker.config, clock=clock, account_path=path)
    broker.set_quote(SYM, 100.0, 101.0)
    broker.submit_order(buy("o1"))
    return broker, clock


def test_cash_and_working_orders_survive_a_restart_and_the_order_still_fills(tmp_path):
    path = tmp_path / "acct.sqlite"
    broker, clock = _filed_broker_that_bought(path)
    broker.submit_order(buy("o2", order_type=OrderType.LIMIT, limit_price=95.0))
    cash = broker.cash
    broker.close()
    again = PaperBroker(broker.config, clock=clock, account_path=path)
    assert again.cash == pytest.approx(cash)
    again.set_quote(SYM, 94.0, 94.5)
    assert again.positions() == {SYM: 150}
    assert [f.trade_id for f in again.fills_since(0)] == [
        f"{again.account_id}-F000001",
        f"{again.account_id}-F000002",
    ]


def test_order_reported_cancelled_by_a_fault_still_fills_after_a_restart(tmp_path):
    path = tmp_path / "acct.sqlite"
    broker = PaperBroker(PaperBrokerConfig(), clock=paper()[1], account_path=path)
    broker.set_quote(SYM, 100.0, 101.0)
    broker.submit_order(buy("o1", order_type=OrderType.LIMIT, limit_price=95.0))
    broker.faults.fill_after_cancel()
    assert broker.cancel_order("o1").status == "cancelled"
    assert broker.open_orders() == []
    broker.close()
    again = PaperBroker(PaperBrokerConfig(), clock=broker.clock, account_path=path)
    assert again.order("o1").status == "cancelled"
    again.set_quote(SYM, 94.0, 94.5)
    assert again.order("o1").status == "filled" and again.positions() == {SYM: 75}


def test_a_file_that_is_not_an_account_is_refused_naming_it(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just words " * 100)
    with pytest.raises(AccountFileError, match="notes.txt is not a paper account file"):
        PaperBroker(account_path=path)


def test_an_account_file_keeps_its_id_prefix_and_refuses_another(tmp_path):
    path = tmp_path / "acct.sqlite"
    PaperBroker(account_path=path, id_prefix="PBONE").close()
    assert PaperBroker(account_path=path).account_id == "PBONE"
    with pytest.raises(InvalidInputError, match="belongs to id prefix 'PBONE', not 'PBTWO'"):
        PaperBroker(account_path=path, id_prefix="PBTWO")


def test_a_file_saved_before_costs_were_kept_reports_no_cost_for_what_it_held(tmp_path):
    # The reconciler adopts such a position at the mark: an unknown cost must not read as 0.
    path = tmp_path / "acct.sqlite"
    broker, clock = _filed_broker_that_bought(path)
    broker.close()
    with sqlite3.connect(path) as con:
        (body,) = con.execute("SELECT body FROM account").fetchone()
        account = json.loads(body)
        del account["average_prices"]
        con.execute("UPDATE account SET body = ?", [json.dumps(account)])
    again = PaperBroker(broker.config, clock=clock, account_path=path)
    assert again.positions() == {SYM: 75} and again.average_prices() == {}
    again.set_quote(SYM, 100.0, 101.0)
    again.submit_order(buy("o2"))  # adding to a position of unknown cost: still unknown
    assert again.average_prices() == {}
    sell = OrderRequest("o3", SYM, Side.SELL, 225)  # through zero: short 75 opened here, known
    again.submit_order(sell)
    assert again.average_prices() == {SYM: 100.0}


def _disk_full_after(broker: PaperBroker, more_pages: int) -> None:
    """The account file's disk fills up: SQLite may grow the file by `more_pages` pages more,
    then reports SQLITE_FULL ("database or disk is full") as a full disk does."""
    con = broker.account._file._con  # the broker's own connection: the limit is per connection
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.execute(f"PRAGMA max_page_count = {pages + more_pages}")


def test_a_full_disk_takes_the_broker_down_and_a_restart_holds_every_fill_it_reported(tmp_path):
    path = tmp_path / "acct.sqlite"
    broker = PaperBroker(PaperBrokerConfig(), clock=paper()[1], account_path=path)
    updates = []
    broker.add_listener(updates.append)
    broker.set_quote(SYM, 100.0, 101.0, size=10**9)
    _disk_full_after(broker, 1)
    with pytest.raises(OrderRejectedError) as refused:
        for i in range(1000):
            broker.submit_order(buy(f"o{i}"))
    assert re.search(
        r"broker 'paper' is down: cannot write the paper account file .*acct.sqlite: "
        "database or disk is full",
        str(refused.value),
    )
    # The order the full disk stopped is rejected, never reported filled.
    assert updates[-1].status == "rejected" and "disk is full" in updates[-1].reason
    reported = [u.fill.trade_id for u in updates if u.fill is not None]
    assert reported and not broker.is_connected
    with pytest.raises(OrderRejectedError, match="is down"):
        broker.submit_order(buy("after"))
    with pytest.raises(BrokerUnavailableError, match="is down"):
        broker.positions()
    broker.close()  # the failure is told once, by `failure`; closing does not raise
    again = PaperBroker(PaperBrokerConfig(), clock=broker.clock, account_path=path)
    assert [f.trade_id for f in again.fills_since(0)] == reported
    assert again.positions() == {SYM: 75 * len(reported)}


def test_fills_a_quote_makes_on_a_full_disk_are_not_reported_and_the_orders_keep_working(
    tmp_path,
):
    path = tmp_path / "acct.sqlite"
    broker = PaperBroker(PaperBrokerConfig(), clock=paper()[1], account_path=path)
    updates = []
    broker.add_listener(updates.append)
    broker.set_quote(SYM, 100.0, 101.0)
    for i in range(50):
        broker.submit_order(buy(f"o{i}", order_type=OrderType.LIMIT, limit_price=95.0))
    _disk_full_after(broker, 0)
    with pytest.raises(BrokerDownError, match="database or disk is full"):
        broker.set_quote(SYM, 94.0, 94.5, size=10**6)  # crosses all 50: 50 fills to save
    assert [u for u in updates if u.fill is not None] == []
    with pytest.raises(BrokerDownError):  # a down broker takes no more quotes
        broker.set_quote(SYM, 94.0, 94.5)
    broker.close()
    again = PaperBroker(PaperBrokerConfig(), clock=broker.clock, account_path=path)
    assert again.fills_since(0) == [] and len(again.open_orders()) == 50


def test_an_account_file_that_cannot_be_opened_is_not_called_another_kind_of_file(tmp_path):
    # "not a paper account file" invites deleting it: said only of a file that is not SQLite.
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database, " * 16)
    with pytest.raises(AccountFileError, match="is not a paper account file"):
        PaperBroker(account_path=junk)
    (tmp_path / "folder.sqlite").mkdir()  # SQLite: "unable to open database file"
    with pytest.raises(AccountFileError, match="cannot open the paper account file") as err:
        PaperBroker(account_path=tmp_path / "folder.sqlite")
    assert "is not a paper account file" not in str(err.value)


def test_an_account_of_another_bar_file_is_refused_naming_it_and_how_to_start_over(tmp_path):
    # A replay of STOCK_A left orders in the account beside its journal; a replay of STOCK_B
    # on the same journal must say so, not that STOCK_A is no NIFTY option.
    from tradelab.runner import InstrumentUniverse, PlainInstrument

    path = tmp_path / "rp.duckdb.broker.sqlite"
    config = PaperBrokerConfig(enforce_market_hours=False, brokerage_per_fill=0.0)
    a = InstrumentUniverse({"STOCK_A": PlainInstrument("STOCK_A")})
    broker = PaperBroker(config, universe=a, account_path=path)
    broker.set_quote("STOCK_A", 100.0, 100.0)
    broker.submit_order(OrderRequest("o1", "STOCK_A", Side.BUY, 1))
    broker.close()
    b = InstrumentUniverse({"STOCK_B": PlainInstrument("STOCK_B")})
    with pytest.raises(InvalidInputError) as refused:
        PaperBroker(config, universe=b, account_path=path)
    message = str(refused.value)
    assert f"account file {path} holds orders in STOCK_A" in message
    assert "it trades STOCK_B and NIFTY options" in message
    journal = tmp_path / "rp.duckdb"
    # Its sidecars by name: a glob of the stem (rp.*) would also take the user's rp.py.
    assert f"remove the journal {journal}, the files named rp.duckdb.* beside it" in message
    assert "the folders rp.segments and rp.acklog" in message


def test_an_account_holding_an_old_calendars_tuesday_contract_says_so(tmp_path):
    # Saved by a tradelab that gave 2024 Tuesday expiries (NSE's were Thursdays): it blamed
    # "another bar file or market", which sent the user looking for one.
    from datetime import datetime

    from tradelab.market.clock import SimulatedClock
    from tradelab.market.instruments import IST, ExpiryCalendar, OptionUniverse

    path = tmp_path / "j.duckdb.broker.sqlite"
    config = PaperBrokerConfig(enforce_market_hours=False, brokerage_per_fill=0.0)
    tuesdays = OptionUniverse(ExpiryCalendar(expiry_weekday=1))
    clock = SimulatedClock(int(datetime(2024, 6, 5, 10, tzinfo=IST).timestamp()) * 10**9)
    broker = PaperBroker(config, universe=tuesdays, account_path=path, clock=clock)
    broker.set_quote("NIFTY2461124000CE", 100.0, 101.0)
    broker.submit_order(OrderRequest("o1", "NIFTY2461124000CE", Side.SELL, 50))
    broker.close()
    with pytest.raises(InvalidInputError) as refused:
        PaperBroker(config, account_path=path, clock=clock)
    message = str(refused.value)
    assert "NIFTY2461124000CE, which is no NIFTY contract by NSE's expiry calendar" in message
    assert "2024-06-11 (Tuesday) is not an expiry date" in message
    assert "another bar file" not in message and "remove the journal" in message


def test_contracts_no_longer_held_nor_ordered_leave_the_account(tmp_path):
    # Every contract ever ordered stayed in the account's margin prices, and in each save of
    # it, whatever the history bound: a day's hundreds of strikes, for good.
    path = tmp_path / "acct.broker.sqlite"
    from test_broker_paper import at

    from tradelab.market.clock import SimulatedClock

    broker = PaperBroker(
        PaperBrokerConfig(history_fills=4, history_orders=4, brokerage_per_fill=0.0),
        clock=SimulatedClock(at(10)),
        account_path=path,
    )
    for i in range(40):
        symbol = f"NIFTY25NOV{20000 + 50 * i}CE"
        broker.set_quote(symbol, 100.0, 100.5)
        broker.submit_order(OrderRequest(f"b-{i}", symbol, Side.BUY, 75, strategy="s"))
        broker.submit_order(OrderRequest(f"s-{i}", symbol, Side.SELL, 75, strategy="s"))
    held = "NIFTY25NOV30000CE"
    broker.set_quote(held, 10.0, 10.5)
    broker.submit_order(OrderRequest("short", held, Side.SELL, 75, strategy="s"))
    resting = "NIFTY25NOV30050CE"
    broker.set_quote(resting, 10.0, 10.5)
    broker.submit_order(
        OrderRequest("rest", resting, Side.SELL, 75, OrderType.LIMIT, 50.0, strategy="s")
    )
    assert set(broker.account.strikes) == {held, resting}  # a short's margin, a working order's
    broker.close()
    saved = json.loads(sqlite3.connect(path).execute("SELECT body FROM account").fetchone()[0])
    assert set(saved["strikes"]) == {held, resting}
