"""Kill -9 drills of the execution desk, run as a child process and checked by the parent.

`python -m tradelab.trading.orderdrill orders JOURNAL THREADS`: THREADS threads place market
orders through a desk on a real Engine; after each `place_order` returns the child prints
`ACK <order_id> <trade_id>...` (the fills the broker made for it). `... halt JOURNAL`: a session
breaches its daily loss limit, prints `HALTED` once the halt returned, and waits to be killed.
`check_orders` reads the journal after the kill: every acknowledged order's submission and fills
must be in it.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime
from typing import Any

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.engine import Engine
from tradelab.market.clock import SimulatedClock
from tradelab.market.instruments import IST
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.risk import RiskConfig, RiskGate
from tradelab.trading.risk_monitor import DailyLossMonitor

SYMBOLS = ("NIFTY25NOV24000CE", "NIFTY25NOV24000PE", "NIFTY25NOV24100CE", "NIFTY25NOV24100PE")
OPEN_NS = int(datetime(2025, 11, 12, 10, tzinfo=IST).timestamp()) * 10**9


def paper_broker() -> PaperBroker:
    """A paper broker in market hours with deep quotes on SYMBOLS: market orders fill at once."""
    broker = PaperBroker(
        PaperBrokerConfig(capital=1e12, brokerage_per_fill=20.0), clock=SimulatedClock(OPEN_NS)
    )
    for symbol in SYMBOLS:
        broker.set_quote(symbol, 100.0, 101.0, size=10**9)
    return broker


def paper_session(journal: str) -> tuple[Engine, PaperBroker]:
    return Engine(journal_path=journal).start(), paper_broker()


def run_orders(journal: str, threads: int) -> None:
    engine, broker = paper_session(journal)
    desk = ExecutionDesk(broker, engine.submit)
    out_lock = threading.Lock()
    print(f"READY {engine.journal.writer.pid}", flush=True)

    def trade(n: int) -> None:
        i = 0
        while True:
            i += 1
            symbol = SYMBOLS[(n + i) % len(SYMBOLS)]
            oid = desk.place_order(symbol, "BUY" if i % 2 else "SELL", 75, strategy=f"t{n}")
            fills = [f.trade_id for f in broker.fills_since(0) if f.order_id == oid]
            with out_lock:
                sys.stdout.write(f"ACK {oid} {' '.join(fills)}\n")
                sys.stdout.flush()

    for n in range(threads):
        threading.Thread(target=trade, args=(n,), daemon=True).start()
    time.sleep(3600)


def run_halt(journal: str) -> None:
    engine, broker = paper_session(journal)
    config = RiskConfig(daily_loss_limit=500.0)
    desk = ExecutionDesk(broker, engine.submit, risk=RiskGate(config, engine.store, engine.submit))
    monitor = DailyLossMonitor(config, engine.store, engine.submit, desk=desk)
    desk.reset_daily_pnl("2025-11-12")
    desk.place_order(SYMBOLS[0], "BUY", 150)
    engine.submit("mark.updated", {"symbol": SYMBOLS[0], "price": 90.0}, wait=True)
    if not monitor.check():
        raise SystemExit("no breach")
    print("HALTED", flush=True)
    time.sleep(3600)


def check_orders(journal_path: str, acks: list[list[str]]) -> dict[str, Any]:
    """Open the killed child's journal; AssertionError names an acknowledged but lost event."""
    from tradelab.journal import Journal

    journal = Journal(journal_path, timeout=30.0)
    try:
        rows = journal.con.execute(
            "SELECT topic, key, payload FROM events WHERE topic IN "
            "('order.submitted', 'trade.executed')"
        ).fetchall()
    finally:
        journal.close()
    import json

    submitted = {json.loads(p)["order_id"] for t, _, p in rows if t == "order.submitted"}
    trades = {json.loads(p)["trade_id"] for t, _, p in rows if t == "trade.executed"}
    fills = 0
    for ack in acks:
        order_id, trade_ids = ack[1], ack[2:]
        assert order_id in submitted, f"order {order_id} returned but its submission is lost"
        for trade_id in trade_ids:
            fills += 1
            assert trade_id in trades, (
                f"order {order_id} returned but its fill {trade_id} has no trade.executed"
            )
    return {"acked_orders": len(acks), "acked_fills": fills, "journaled_trades": len(trades)}


if __name__ == "__main__":
    if sys.argv[1] == "orders":
        run_orders(sys.argv[2], int(sys.argv[3]))
    else:
        run_halt(sys.argv[2])
