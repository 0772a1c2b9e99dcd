"""Units held per symbol add up over strategies."""

from __future__ import annotations

from types import SimpleNamespace

from tradelab.cli_backtest import backtest_report
from tradelab.runner.backtest_report import fill_row, held_by_symbol


def test_two_strategies_long_the_same_symbol_hold_their_sum():
    positions = [
        {"symbol": "NIFTY", "net_quantity": 75, "strategy": "a"},
        {"symbol": "NIFTY", "net_quantity": 150, "strategy": "b"},
        {"symbol": "BANKNIFTY", "net_quantity": -30, "strategy": "a"},
        {"symbol": "BANKNIFTY", "net_quantity": 30, "strategy": "b"},
    ]
    assert held_by_symbol(positions) == {"NIFTY": 225}


def _trip(net):
    return {
        "opened_ts": 1_763_000_000_000_000_000, "closed_ts": 1_763_000_060_000_000_000,
        "direction": "LONG", "quantity": 75, "entry_price": 100.0, "exit_price": 100.0,
        "net_pnl": net,
    }  # fmt: skip


def test_a_break_even_round_trip_is_not_counted_as_won():
    result = SimpleNamespace(
        interval="1m", fills=[], trades=[_trip(0.0), _trip(12.5)], bars=2, symbol="NIFTY",
        seconds=0.1, bars_per_second=20.0, wall_seconds=0.2, realized_pnl=12.5,
        unrealized_pnl=0.0, fees=0.0, final_equity=1_000_012.5, cash=1_000_000.0,
        max_drawdown=0.0, content_hash="x", refused_orders=[], unfilled_orders=[],
    )  # fmt: skip
    assert "2 round trips, 1 won (50%)" in backtest_report(result)


def test_a_fill_row_of_the_json_report_names_its_order():
    trade = {
        "trade_id": "T1", "order_id": "O1", "symbol": "NIFTY", "side": "BUY", "quantity": 75,
        "price": 100.0, "fee": 20.0, "ts": 1, "realized_pnl": 0.0, "strategy": "a",
    }  # fmt: skip
    assert fill_row(trade) == {
        "trade_id": "T1", "order_id": "O1", "symbol": "NIFTY", "side": "BUY", "quantity": 75,
        "price": 100.0, "fee": 20.0, "ts": 1, "realized_pnl": 0.0,
    }  # fmt: skip
