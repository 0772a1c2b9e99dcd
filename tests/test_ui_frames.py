"""The console's tables and refresh sections: a flat position shows no mark or exit levels (its
last mark would read as a live price), the orders table lists working orders only, and a fill
refreshes the trades table."""

from __future__ import annotations

import math

from tradelab.events import Event
from tradelab.ui import frames
from tradelab.ui.view import SharedView


class _Store:
    def __init__(self, values):
        self.values = values

    def get_many(self, paths):
        return 1, {p: self.values.get(p) for p in paths}


class _Lab:
    def __init__(self, values):
        self.store = _Store(values)


def _position(net, mark):
    return {
        "position_id": f"s:{net}",
        "symbol": f"SYM{net}",
        "net_quantity": net,
        "average_price": 100.0,
        "mark": mark,
        "unrealized_pnl": 0.0,
        "realized_pnl": 5.0,
        "fees": 0.0,
        "strategy": "s",
        "status": "closed" if not net else "open",
        "updated_ts": 1,
    }


def test_a_flat_position_shows_no_mark_and_no_levels():
    lab = _Lab(
        {
            "trading.positions": {"s:0": _position(0, 123.0), "s:75": _position(75, 101.0)},
            "trading.exits": {"s:0": {"stop": 90.0, "target": None, "trail": None}},
        }
    )
    table = frames.positions(lab).set_index("symbol")
    assert table.loc["SYM75", "mark"] == 101.0
    assert table.loc["SYM0", "mark"] is None or math.isnan(table.loc["SYM0", "mark"])
    assert table.loc["SYM0", "stop"] is None or math.isnan(table.loc["SYM0", "stop"])


def test_a_fill_refreshes_the_trades_table():
    view = SharedView()
    view.on_event(Event(5, 1, "trade.executed", "s:X", {"trade_id": "T1"}))
    assert "trades" in view.changes_since(0).sections


def test_the_orders_table_lists_working_orders_only():
    orders = {
        "O1": {
            "order_id": "O1",
            "symbol": "X",
            "side": "BUY",
            "quantity": 75,
            "status": "filled",
            "submitted_ts": 1,
        },
        "O2": {
            "order_id": "O2",
            "symbol": "X",
            "side": "BUY",
            "quantity": 75,
            "status": "accepted",
            "submitted_ts": 2,
        },
    }
    lab = _Lab({"trading.orders": orders, "trading.working": {"O2": {"strategy": "s"}}})
    assert frames.orders(lab).order_id.tolist() == ["O2"]
