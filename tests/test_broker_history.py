"""The paper account's history bound: old fills and finished orders leave memory and file."""

from __future__ import annotations

import json
import sqlite3

from test_broker_paper import SYM, buy, paper

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.trading.orders import OrderRequest, OrderType, Side


def _bounded(path, clock, fills=10, orders=10):
    config = PaperBrokerConfig(history_fills=fills, history_orders=orders)
    broker = PaperBroker(config, clock=clock, account_path=path)
    broker.set_quote(SYM, 100.0, 101.0)
    return broker


def _round_trips(broker, count, start=0, strategy="s"):
    for i in range(start, start + count):
        side = Side.BUY if i % 2 == 0 else Side.SELL
        broker.submit_order(OrderRequest(f"o{i}", SYM, side, 75, strategy=strategy))


def _rows(path, table):
    with sqlite3.connect(path) as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_the_oldest_fills_and_finished_orders_leave_and_ids_go_on_after_a_restart(tmp_path):
    path = tmp_path / "acct.sqlite"
    clock = paper()[1]
    broker = _bounded(path, clock)
    resting = buy("rest", order_type=OrderType.LIMIT, limit_price=50.0)  # works all along
    broker.submit_order(resting)
    _round_trips(broker, 40)
    kept = broker.fills_since(0)
    assert 10 <= len(kept) <= 11 and kept[-1].fill_seq == 40
    assert [f.fill_seq for f in kept] == list(range(kept[0].fill_seq, 41))
    assert broker.fills_since(35) == kept[-5:]  # a point past the oldest kept: as before
    assert broker.account.trimmed_fills == 40 - len(kept)
    assert broker.order("rest").status == "accepted"  # working orders are never dropped
    assert broker.order("o0") is None and broker.order("o39").status == "filled"
    assert broker.account.trimmed_orders >= 29
    assert _rows(path, "fills") == len(kept) and _rows(path, "orders") <= 12
    cash, positions = broker.cash, broker.positions()
    broker.close()

    again = _bounded(path, clock)
    assert again.fills_since(0) == kept and again.cash == cash and again.positions() == positions
    _round_trips(again, 1, start=40)
    assert again.fills_since(40)[0].trade_id == f"{again.account_id}-F000041"
    assert again.order("rest").status == "accepted"


def test_a_strategy_keeps_its_holding_after_the_fills_that_opened_it_left(tmp_path):
    # An expired option is settled per strategy: its units must still be known by strategy.
    path = tmp_path / "acct.sqlite"
    clock = paper()[1]
    broker = _bounded(path, clock, fills=4)
    broker.submit_order(OrderRequest("keep", SYM, Side.BUY, 150, strategy="held"))
    _round_trips(broker, 20, strategy="churn")
    assert all(f.order_id != "keep" for f in broker.fills_since(0))
    assert broker.account.held_by_strategy == {SYM: {"held": 150}}
    broker.close()
    assert _bounded(path, clock, fills=4).account.held_by_strategy == {SYM: {"held": 150}}


def test_an_account_saved_before_the_bound_counts_holdings_from_its_fills(tmp_path):
    path = tmp_path / "acct.sqlite"
    clock = paper()[1]
    broker = _bounded(path, clock)
    broker.submit_order(OrderRequest("a", SYM, Side.BUY, 150, strategy="one"))
    broker.submit_order(OrderRequest("b", SYM, Side.SELL, 75, strategy="two"))
    broker.close()
    with sqlite3.connect(path) as con:
        (body,) = con.execute("SELECT body FROM account").fetchone()
        account = json.loads(body)
        del account["held_by_strategy"], account["fill_base"]
        con.execute("UPDATE account SET body = ?", [json.dumps(account)])
    again = _bounded(path, clock)
    assert again.account.held_by_strategy == {SYM: {"one": 150, "two": -75}}
    assert [f.fill_seq for f in again.fills_since(0)] == [1, 2]


def test_an_account_without_a_file_keeps_the_bound_too():
    broker, _, _ = paper(history_fills=5, history_orders=5)
    broker.set_quote(SYM, 100.0, 101.0)
    _round_trips(broker, 30)
    assert len(broker.fills_since(0)) <= 6 and len(broker.account.orders) <= 6
    assert broker.account._dirty_orders == {}
