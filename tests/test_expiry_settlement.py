"""Options held past expiry: the paper broker settles them at intrinsic value; the desk books it."""

import logging

import pytest
from contracts.local_kernel import LocalKernel
from test_broker_paper import SYM, at, paper

from tradelab.broker import PaperBroker
from tradelab.broker.settlement import SETTLEMENT_OWNER
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.orders import OrderRequest, OrderStatus, Side

PUT = "NIFTY25NOV24000PE"
EXPIRY_CLOSE = at(15, 30, day=25)  # SYM's expiry: the last Tuesday of November 2025


def sell(order_id, symbol=SYM, qty=75, strategy="manual"):
    return OrderRequest(order_id, symbol, Side.SELL, qty, strategy=strategy)


def short_call_at_expiry(index_price=24_120.4, clock_at=EXPIRY_CLOSE):
    """A broker holding 75 SYM short (sold at 150), its clock at the expiry's close."""
    broker, clock, updates = paper()
    broker.set_quote(SYM, 150.0, 151.0)
    broker.submit_order(sell("s1"))
    clock.set(clock_at)
    broker.set_quote("NIFTY", index_price, index_price)
    return broker, clock, updates


def test_a_call_in_the_money_settles_at_its_intrinsic_value_with_no_fee():
    broker, _, updates = short_call_at_expiry()
    cash_before = broker.cash
    [settled] = broker.settle_expired()
    fill = settled.fill
    assert settled.status is OrderStatus.FILLED and settled.order_id == f"EXP-{SYM}-manual"
    assert (fill.side, fill.quantity, fill.price, fill.fee) == (Side.BUY, 75, 120.4, 0.0)
    assert "expiry settlement" in settled.reason and "24120.40" in settled.reason
    assert updates[-1] == settled  # reported to the listeners like any fill
    assert broker.positions() == {}
    assert broker.cash == pytest.approx(cash_before - 75 * 120.4)


def test_an_option_out_of_the_money_expires_worthless():
    broker, clock, _ = paper()
    broker.set_quote(PUT, 40.0, 41.0)
    broker.submit_order(OrderRequest("b1", PUT, Side.BUY, 150))
    clock.set(EXPIRY_CLOSE)
    broker.set_quote("NIFTY", 24_500.0, 24_500.0)
    [settled] = broker.settle_expired()
    assert (settled.fill.side, settled.fill.quantity, settled.fill.price) == (Side.SELL, 150, 0.0)
    assert broker.positions() == {}


def test_nothing_settles_before_the_expiry_closes():
    broker, clock, _ = short_call_at_expiry(clock_at=EXPIRY_CLOSE - 60 * 10**9)
    assert broker.settle_expired() == []
    assert broker.positions() == {SYM: -75}


def test_each_strategy_holding_the_contract_gets_its_own_settlement():
    broker, clock, _ = paper()
    broker.set_quote(SYM, 150.0, 151.0)
    broker.submit_order(sell("a1", strategy="alpha"))
    broker.submit_order(OrderRequest("b1", SYM, Side.BUY, 150, strategy="beta"))
    clock.set(EXPIRY_CLOSE)
    broker.set_quote("NIFTY", 23_900.0, 23_900.0)  # the call ends out of the money
    settled = broker.settle_expired()
    assert [(u.order_id, u.strategy, u.fill.side, u.fill.quantity) for u in settled] == [
        (f"EXP-{SYM}-alpha", "alpha", Side.BUY, 75),
        (f"EXP-{SYM}-beta", "beta", Side.SELL, 150),
    ]
    assert broker.positions() == {}


def test_units_no_fill_explains_settle_as_the_reconcilers():
    from tradelab.broker.reconcile.fixes import BY

    assert SETTLEMENT_OWNER == BY  # the strategy the reconciler books such units under
    broker, _, _ = short_call_at_expiry()
    broker.account.positions[SYM] -= 75  # held beyond the fills (an edited account file)
    settled = broker.settle_expired()
    assert [(u.strategy, u.fill.quantity) for u in settled] == [
        ("manual", 75),
        ("reconciler", 75),
    ]
    assert broker.positions() == {}


def test_without_an_index_quote_it_waits_then_settles_at_the_price_it_is_given(caplog):
    broker, clock, _ = paper()
    broker.set_quote(SYM, 150.0, 151.0)
    broker.submit_order(sell("s1"))
    clock.set(EXPIRY_CLOSE)
    with caplog.at_level(logging.WARNING):
        assert broker.settle_expired() == []
    assert f"{SYM} expired; no NIFTY price to settle it at yet" in caplog.text
    [settled] = broker.settle_expired({"NIFTY": 24_010.0})  # a restart's last journaled mark
    assert settled.fill.price == 10.0


def test_a_settlement_is_kept_across_a_restart_and_never_booked_twice(tmp_path):
    path = tmp_path / "acct.sqlite"
    broker, clock, _ = paper()
    broker = PaperBroker(broker.config, clock=clock, account_path=path)
    broker.set_quote(SYM, 150.0, 151.0)
    broker.submit_order(sell("s1"))
    clock.set(EXPIRY_CLOSE)
    broker.set_quote("NIFTY", 24_120.0, 24_120.0)
    assert len(broker.settle_expired()) == 1
    cash = broker.cash
    broker.close()
    again = PaperBroker(broker.config, clock=clock, account_path=path)
    assert again.positions() == {} and again.cash == pytest.approx(cash)
    assert again.settle_expired({"NIFTY": 24_500.0}) == []
    assert again.order(f"EXP-{SYM}-manual").status is OrderStatus.FILLED


def test_the_desk_books_the_settlement_and_closes_the_position():
    broker, clock, _ = paper()
    kernel = LocalKernel()
    ExecutionDesk(broker, kernel.submit)
    broker.set_quote(SYM, 150.0, 151.0)
    broker.submit_order(sell("s1"))
    clock.set(EXPIRY_CLOSE)
    broker.set_quote("NIFTY", 24_120.0, 24_120.0)
    broker.settle_expired()
    assert kernel.topics()[-3:] == ["order.filled", "trade.executed", "position.closed"]
    order = kernel.store.get(f"trading.orders.EXP-{SYM}-manual")
    assert order["status"] == "filled" and "expiry settlement" in order["reason"]
    position = kernel.store.get(f"trading.positions.manual:{SYM}")
    assert position["status"] == "closed" and position["net_quantity"] == 0
    # Sold at the bid 150, settled at 24,120 - 24,000 = 120: 30 a unit kept.
    assert position["realized_pnl"] == pytest.approx(75 * 30.0)


def test_strategies_long_and_short_one_contract_are_each_settled_though_the_account_is_flat():
    # The account nets them to nothing; the book holds two positions the expiry closes.
    broker, clock, _ = paper()
    kernel = LocalKernel()
    ExecutionDesk(broker, kernel.submit)
    broker.set_quote(PUT, 36.0, 37.0)
    broker.submit_order(sell("s1", symbol=PUT, strategy="seller"))
    broker.submit_order(OrderRequest("b1", PUT, Side.BUY, 75, strategy="buyer"))
    assert broker.positions() == {}
    clock.set(EXPIRY_CLOSE)
    broker.set_quote("NIFTY", 23_949.4, 23_949.4)
    settled = broker.settle_expired()
    assert [(u.strategy, u.fill.side, u.fill.price) for u in settled] == [
        ("buyer", Side.SELL, 50.6),
        ("seller", Side.BUY, 50.6),
    ]
    seller = kernel.store.get(f"trading.positions.seller:{PUT}")
    buyer = kernel.store.get(f"trading.positions.buyer:{PUT}")
    assert seller["status"] == buyer["status"] == "closed"
    assert seller["realized_pnl"] == pytest.approx((36.0 - 50.6) * 75)
    assert buyer["realized_pnl"] == pytest.approx((50.6 - 37.0) * 75)
    assert broker.settle_expired() == []  # nothing is left to settle


def test_a_settlement_booked_a_day_late_is_dated_at_the_expirys_close():
    broker, clock, _ = paper()
    broker.set_quote(SYM, 150.0, 151.0)
    broker.submit_order(sell("s1"))
    clock.set(at(9, 15, day=26))  # a restart the next day: no index quote at the broker yet
    [settled] = broker.settle_expired({"NIFTY": 24_100.0})
    assert settled.fill.ts == settled.ts == EXPIRY_CLOSE


def reconciled_session(outside_units, strategy_buys=0, **policies):
    """A desk and broker (tests/test_reconcile.py's Session) where a strategy bought, units
    were held from outside, and the reconciler ran with `policies`; the clock at expiry."""
    from test_reconcile import Session

    s = Session()
    if strategy_buys:
        s.desk.place_order(SYM, "BUY", strategy_buys, strategy="alpha")
    s.broker.faults.hold_outside_position(SYM, outside_units, 100.0)
    s.reconciler(**policies).run_once()
    s.clock.set(EXPIRY_CLOSE)
    s.broker.set_quote("NIFTY", 24_100.0, 24_100.0)
    return s


def open_in_book(s):
    positions = s.store.get("trading.positions", None) or {}
    return {pid: p["net_quantity"] for pid, p in positions.items() if p["net_quantity"]}


def test_units_the_reconciler_adopted_settle_as_its_own_and_leave_nothing_open():
    # Settled as 'unattributed', they left the reconciler's +150 and a -150 open for good.
    from tradelab.lab_sessions import settle_expired_options

    s = reconciled_session(150, unknown_position="adopt")
    assert open_in_book(s) == {f"reconciler:{SYM}": 150}
    [order_id] = settle_expired_options(s.store, s.broker, s.kernel.submit)
    assert order_id == f"EXP-{SYM}-reconciler"
    assert open_in_book(s) == {} and s.broker.positions() == {}
    assert s.reconciler().run_once().ok


def test_a_position_closed_from_outside_and_reconciled_is_not_settled_again():
    # The strategy's fill still said it held 75: settling it left the broker short an expired
    # option and the strategy -75 in the book.
    from tradelab.lab_sessions import settle_expired_options

    s = reconciled_session(-75, strategy_buys=75, missing_position="adopt")
    assert open_in_book(s) == {} and s.broker.positions() == {}
    assert settle_expired_options(s.store, s.broker, s.kernel.submit) == []
    assert open_in_book(s) == {} and s.broker.positions() == {}


def test_a_book_symbol_the_broker_cannot_trade_does_not_stop_the_others_settling():
    broker, _, _ = short_call_at_expiry()
    held_by = {"ZZZ": {"a": 5}, SYM: {"manual": -75}}
    assert [u.symbol for u in broker.settle_expired(held_by=held_by)] == [SYM]


def _short_call(bid, ask):
    broker, clock, _ = paper()
    broker.set_quote(SYM, 150.0, 151.0)
    broker.submit_order(OrderRequest("s1", SYM, Side.SELL, 75, strategy="manual"))
    clock.set(EXPIRY_CLOSE)
    broker.set_quote("NIFTY", bid, ask)
    return broker


def test_a_strategys_settlement_is_never_booked_twice_for_a_stale_book():
    broker = _short_call(24_120.0, 24_120.0)
    held = {SYM: {"manual": -75}}  # the book, before it saw the settlement fill
    first = broker.settle_expired(None, held)
    assert [(u.strategy, u.quantity) for u in first] == [("manual", 75)]
    cash = broker.cash
    again = broker.settle_expired(None, held)
    # Nothing at all: the account's 0 against the stale book's -75 was taken as 75 more held
    # by nobody, and sold as the reconciler's (a short in an expired contract).
    assert again == [] and broker.positions() == {} and broker.cash == cash
    assert broker.order(f"EXP-{SYM}-manual").filled_quantity == 75


def test_the_index_price_is_the_mid_of_its_quote():
    broker = _short_call(24_100.0, 24_140.0)  # mid 24,120: intrinsic 120 (the bid says 100)
    (update,) = broker.settle_expired()
    assert update.fill.price == 120.0


def test_reconciler_units_the_rest_takes_back_book_no_order_of_zero():
    # The book's reconciler units, closed outside since: a "reconciler, BUY 0" order was booked,
    # journaled as filled, and took the reconciler's one settlement id for the contract.
    broker = _short_call(24_120.0, 24_120.0)
    updates = broker.settle_expired(None, {SYM: {"manual": -75, "reconciler": -75}})
    assert [(u.strategy, u.quantity) for u in updates] == [("manual", 75)]
