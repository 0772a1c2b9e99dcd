"""The paper broker's fault injection refuses what no real fault could be, naming the argument."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta

import pytest
from test_broker_paper import buy
from test_broker_paper import paper as paper_with_updates

from tradelab.broker import PaperBroker
from tradelab.errors import InvalidInputError
from tradelab.market.clock import SimulatedClock
from tradelab.market.instruments import IST

SYM = "NIFTY25NOV24000CE"  # lot size 75


def paper() -> PaperBroker:
    return PaperBroker(
        clock=SimulatedClock(int(datetime(2025, 11, 12, 10, tzinfo=IST).timestamp()) * 10**9)
    )


@pytest.mark.parametrize(
    "seconds, message",
    [
        (float("nan"), "seconds nan must be a finite number >= 0"),
        (float("inf"), "seconds inf must be a finite number >= 0"),
        (-1, "seconds -1 must be a finite number >= 0"),
        ("60", "seconds '60' must be a finite number >= 0"),
        (True, "seconds True must be a finite number >= 0"),
    ],
)
def test_reject_orders_for_refuses_a_duration_that_is_not_finite_seconds(seconds, message):
    broker = paper()
    with pytest.raises(InvalidInputError, match=message):
        broker.faults.reject_orders_for(seconds)
    assert broker.faults.reject_until_ns is None  # nothing armed


@pytest.mark.parametrize(
    "quantity, price, message",
    [
        (10, 100.0, f"quantity 10 is not a multiple of lot size 75 for {SYM}"),
        (-10, 100.0, f"quantity -10 is not a multiple of lot size 75 for {SYM}"),
        (0, 100.0, f"quantity 0 for {SYM} must not be 0"),
        (75.5, 100.0, f"quantity 75.5 for {SYM} is not a whole number"),
        ("75", 100.0, f"quantity '75' for {SYM} is not a number"),
        (75, -5.0, f"price -5.0 for {SYM} must be positive"),
        (75, float("nan"), f"price nan for {SYM} is not a finite number"),
    ],
)
def test_hold_outside_position_refuses_part_lots_and_bad_prices(quantity, price, message):
    broker = paper()
    cash = broker.cash
    with pytest.raises(InvalidInputError, match=message):
        broker.faults.hold_outside_position(SYM, quantity, price)
    assert broker.positions() == {} and broker.cash == cash


def test_hold_outside_position_takes_whole_lots_long_or_short():
    broker = paper()
    broker.faults.hold_outside_position(SYM, -150, 100.0)
    assert broker.positions() == {SYM: -150}


def test_a_backtest_dated_before_1970_trades_with_no_fault_armed(tmp_path):
    """A clock before 1970 is negative: "no fault armed" must not read as a time after it."""
    from click.testing import CliRunner

    from tradelab.cli import main as cli

    day, rows = date(1962, 1, 1), ["Date,Open,High,Low,Close"]
    while len(rows) <= 60:  # 60 business days from 1962-01-01
        if day.weekday() < 5:
            close = 100 + 10 * math.sin(len(rows) / 4)
            rows.append(f"{day},{close:.2f},{close + 1:.2f},{close - 1:.2f},{close:.2f}")
        day += timedelta(days=1)
    bars = tmp_path / "OLD.csv"
    bars.write_text("\n".join(rows) + "\n")
    args = ["backtest", str(bars), "--strategy", "sma_cross", "--param", "fast=3"]
    result = CliRunner().invoke(cli, [*args, "--param", "slow=8", "--json"])
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "injected fault" not in result.stderr
    fills = json.loads(result.output)["fills"]
    assert len(fills) >= 2 and fills[0]["ts"] < 0


@pytest.mark.parametrize("request_", [None, {"symbol": SYM, "side": "BUY", "quantity": 75}])
def test_an_outside_order_must_be_an_order_request(request_):
    broker = paper()
    with pytest.raises(InvalidInputError, match="request must be an OrderRequest.*got"):
        broker.faults.place_outside_order(request_)
    assert broker.account.orders == {}


def test_a_fault_on_a_closed_broker_is_refused_as_its_session_stopped(tmp_path):
    # Its account file is closed: sqlite's "closed database" said nothing of why.
    from tradelab.errors import LifecycleError
    from tradelab.trading.orders import OrderRequest, Side

    broker = PaperBroker(clock=paper().clock, account_path=tmp_path / "a.broker.sqlite")
    broker.close()
    with pytest.raises(LifecycleError, match="hold_outside_position: broker 'paper' is closed"):
        broker.faults.hold_outside_position(SYM, 75, 10.0)
    with pytest.raises(LifecycleError, match="place_outside_order: broker 'paper' is closed"):
        broker.faults.place_outside_order(OrderRequest("o1", SYM, Side.BUY, 75))


def test_drop_fill_reports_drops_only_as_many_as_asked():
    broker, _, updates = paper_with_updates()
    broker.set_quote(SYM, 100.0, 101.0)
    broker.faults.drop_fill_reports(1)
    broker.submit_order(buy("o1"))
    broker.submit_order(buy("o2"))
    fills = [u.order_id for u in updates if u.fill is not None]
    assert fills == ["o2"]
    assert broker.faults.dropped_reports == 1


def test_fill_after_cancel_affects_only_as_many_cancels_as_asked():
    from tradelab.trading.orders import OrderType

    broker, _, _ = paper_with_updates()
    broker.set_quote(SYM, 100.0, 101.0)
    broker.submit_order(buy("o1", order_type=OrderType.LIMIT, limit_price=95.0))
    broker.submit_order(buy("o2", order_type=OrderType.LIMIT, limit_price=95.0))
    broker.faults.fill_after_cancel(1)
    broker.cancel_order("o1")  # reported cancelled, keeps working (the fault)
    broker.cancel_order("o2")  # really cancelled
    broker.set_quote(SYM, 94.0, 94.5)
    assert broker.order("o1").status == "filled"
    assert broker.order("o2").status == "cancelled"
    assert broker.positions() == {SYM: 75}


def test_an_order_request_written_with_plain_text_is_the_order_it_says():
    # side="BUY" as text was read as not-BUY by the paper broker: a BUY limit at 0.05 filled at
    # once as a market SELL (the account went short) while its fill said BUY.
    from tests.risk_session import SYM, Session
    from tradelab.trading.orders import OrderRequest, OrderType, Side

    s = Session()
    request = OrderRequest("OUT-1", SYM, "buy", 75, order_type="Limit", limit_price=0.05)
    assert (request.side, request.order_type) == (Side.BUY, OrderType.LIMIT)
    update = s.broker.submit_order(request)
    assert update.filled_quantity == 0  # a limit far below the market rests
    assert s.broker.positions().get(SYM, 0) == 0
    with pytest.raises(InvalidInputError, match="side 'LONG' is not 'BUY' or 'SELL'"):
        OrderRequest("OUT-2", SYM, "LONG", 75)
    with pytest.raises(InvalidInputError, match="order type 'STOP' is not 'MARKET' or 'LIMIT'"):
        OrderRequest("OUT-3", SYM, Side.SELL, 75, order_type="STOP")
