"""A scripted two-day journal for the analytics tests: known orders, fills, marks and bars
submitted through a real Engine, with the P&L worked out by hand in the comments."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tradelab.engine import Engine
from tradelab.market.instruments import IST

X, Y = "NIFTY25N1824000CE", "NIFTY25N1824000PE"
LOT = 75


def at(day: int, hhmm: str) -> int:
    hour, minute = map(int, hhmm.split(":"))
    return int(datetime(2025, 11, day, hour, minute, tzinfo=IST).timestamp()) * 1_000_000_000


def build(path: Path) -> dict:
    """Write the script to a journal at `path`; return the final store's P&L and state hash."""
    engine = Engine(journal_path=str(path), writer_process=False, snapshot_every_seconds=0)
    engine.start()
    submit = engine.submit
    fills = [0]

    def order(oid, symbol, side, qty, day, hhmm, *, price=None, fee=0.0, reject=""):
        ts = at(day, hhmm)
        base = {"order_id": oid, "symbol": symbol, "side": side, "quantity": qty}
        submit("order.submitted", base | {"strategy": "s1", "order_type": "MARKET"}, key=oid)
        if reject:
            submit("order.rejected", base | {"reason": reject, "strategy": "s1"}, key=oid)
            return
        submit("order.accepted", base | {"broker_order_id": f"B{oid}"}, key=oid)
        fills[0] += 1
        trade_id = f"F{fills[0]}"
        fill = {
            "trade_id": trade_id,
            "order_id": oid,
            "position_id": f"s1:{symbol}",
            "strategy": "s1",
            "symbol": symbol,
            "side": side,
            "quantity": qty,
            "price": price,
            "fee": fee,
            "lot_size": LOT,
            "ts": ts,
        }
        submit("trade.executed", fill, key=f"s1:{symbol}")
        done = {"filled_quantity": qty, "remaining_quantity": 0, "average_price": price}
        submit("order.filled", base | done, key=oid)

    def mark(symbol, price, day, hhmm):
        submit("mark.updated", {"symbol": symbol, "price": price, "ts": at(day, hhmm)}, key=symbol)

    def bar(symbol, close, day, start, end):
        submit(
            "market.bar",
            {
                "symbol": symbol,
                "interval": "15m",
                "start": at(day, start),
                "end": at(day, end),
                "open": close,
                "high": close,
                "low": close,
                "close": close,
                "volume": 0,
                "ticks": 1,
            },
            key=symbol,
        )

    # Day 1 (12 Nov): long 2 lots of X at 100, out at 120 and 95. Fees 10 a fill.
    order("O1", X, "BUY", 150, 12, "09:20", price=100.0, fee=10.0)  # net -10
    mark(X, 110.0, 12, "09:40")
    bar(X, 110.0, 12, "09:30", "09:45")  # unrealized (110-100)*150 = 1500: net 1490
    order("O2", X, "SELL", 75, 12, "10:00", price=120.0, fee=10.0)  # realized 1500; net 2980
    mark(X, 90.0, 12, "10:40")
    bar(X, 90.0, 12, "10:30", "10:45")  # unrealized (90-100)*75 = -750: net 730
    order("O3", X, "SELL", 75, 12, "11:00", price=95.0, fee=10.0)  # realized -375: net 1095
    order("O4", X, "BUY", 75, 12, "11:05", reject="insufficient margin")
    submit("order.denied", {"order_id": "O5", "symbol": X, "reason": "max lots"}, key="O5")
    submit("risk.halted", {"reason": "operator", "by": "test", "mode": "halted"}, key="risk")
    submit("risk.resumed", {"reason": "operator", "by": "test"}, key="risk")
    submit(
        "reconciliation.mismatch",
        {
            "kind": "quantity_mismatch",
            "item": "s1:NIFTY",
            "expected": 75,
            "actual": 0,
            "policy": "flag",
            "action": "flagged",
            "dry_run": False,
        },
        key="s1:NIFTY",
    )
    # Day 2 (13 Nov): short 1 lot of Y at 50 (fee 5), marked 40 then 60.
    order("O6", Y, "SELL", 75, 13, "09:30", price=50.0, fee=5.0)  # net 1095 - 5 = 1090
    mark(Y, 40.0, 13, "09:50")
    bar(Y, 40.0, 13, "09:45", "10:00")  # unrealized (40-50)*-75 = 750: net 1840
    mark(Y, 60.0, 13, "15:20")
    bar(Y, 60.0, 13, "15:15", "15:30")  # unrealized -750: net 340
    engine.flush()
    pnl = engine.store.get("pnl")
    state_hash = engine.store.state_hash()
    last_seq = engine.store.version
    engine.stop()
    return {"pnl": pnl, "state_hash": state_hash, "last_seq": last_seq}
