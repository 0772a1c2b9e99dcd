"""The order, fill and latency views and as-of reads, at their edges: a late report after an
order finished, a sell's sign, the fill booked after `order.filled`, an event stamped exactly at
the time asked, a seq just before a checkpoint."""

from __future__ import annotations

import time

import pytest

from tradelab.analytics import Analytics
from tradelab.engine import Engine

SYM = "NIFTY25N1824000CE"


@pytest.fixture(scope="module")
def journal(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "j.duckdb"
    engine = Engine(journal_path=str(path), writer_process=False, snapshot_every_seconds=0).start()
    submit = engine.submit

    def order(oid, side, qty, price):
        base = {"order_id": oid, "symbol": SYM, "side": side, "quantity": qty}
        submit(
            "order.submitted", base | {"strategy": "s1", "order_type": "MARKET"}, key=oid, wait=True
        )
        time.sleep(0.002)
        submit("order.accepted", base | {"broker_order_id": f"B{oid}"}, key=oid, wait=True)
        time.sleep(0.002)
        # As the paper broker reports it: order.filled is journaled just before its trade.
        done = {"filled_quantity": qty, "remaining_quantity": 0, "average_price": price}
        submit("order.filled", base | done, key=oid, wait=True)
        time.sleep(0.002)
        fill = {
            "trade_id": f"F-{oid}",
            "order_id": oid,
            "position_id": f"s1:{SYM}",
            "strategy": "s1",
            "symbol": SYM,
            "side": side,
            "quantity": qty,
            "price": price,
            "fee": 0.0,
            "lot_size": 75,
            "ts": time.time_ns(),
        }
        submit("trade.executed", fill, key=f"s1:{SYM}", wait=True)
        time.sleep(0.002)

    order("O1", "BUY", 75, 100.0)
    order("O2", "SELL", 75, 110.0)
    # A late report after the order finished: the order reducer keeps the first terminal one.
    submit(
        "order.cancelled",
        {
            "order_id": "O1",
            "symbol": SYM,
            "side": "BUY",
            "quantity": 75,
            "reason": "late cancel ack",
        },
        key="O1",
        wait=True,
    )
    for i in range(30):
        submit("mark.updated", {"symbol": SYM, "price": 100.0 + i, "ts": time.time_ns()}, key=SYM)
    engine.stop()
    return path


def test_a_late_report_does_not_change_a_finished_orders_status(journal):
    orders = Analytics(journal).sql("SELECT order_id, status FROM orders ORDER BY order_id")
    assert orders.status.tolist() == ["filled", "filled"]


def test_a_sell_fill_has_a_negative_signed_quantity(journal):
    fills = Analytics(journal).sql("SELECT side, quantity, signed_quantity FROM fills ORDER BY seq")
    assert fills.signed_quantity.tolist() == [75, -75]


def test_done_latency_includes_the_fill_booked_after_order_filled(journal):
    lat = Analytics(journal).sql(
        "SELECT order_id, first_fill_ms, done_ms FROM latency ORDER BY order_id"
    )
    assert (lat.done_ms >= lat.first_fill_ms).all(), lat


def test_seq_at_on_the_journal_clock_includes_an_event_stamped_exactly_then(journal):
    a = Analytics(journal)
    ev = a.sql("SELECT seq, ts FROM events ORDER BY seq").iloc[5]
    assert a.seq_at(int(ev.ts), clock="journal") == int(ev.seq)


def test_state_at_just_before_a_checkpoint_is_that_seq_not_the_checkpoint(journal):
    a = Analytics(journal, checkpoint_every=10)
    a.asof.index()
    store = a.state_at(19)
    assert store.version == 19
    assert a.state_at(20).version == 20


def test_a_day_stopped_between_two_bar_closes_ends_at_its_last_price(tmp_path):
    # A session stopped at 10:05, after its last bar (09:45): the curve closed that day at the
    # bar, and the 10:05 move was booked to the next day, where the live book counted it not.
    from tests.analytics_script import X, at

    engine = Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False)
    engine.start()
    fill = {"trade_id": "F1", "order_id": "O1", "position_id": f"s1:{X}", "strategy": "s1"}
    fill |= {"symbol": X, "side": "BUY", "quantity": 75, "price": 100.0, "fee": 0.0}
    engine.submit("trade.executed", fill | {"lot_size": 75, "ts": at(12, "09:20")}, key="p")

    def mark(price, day, hhmm):
        engine.submit("mark.updated", {"symbol": X, "price": price, "ts": at(day, hhmm)}, key=X)

    def bar(close, day, start, end):
        body = {"symbol": X, "interval": "15m", "start": at(day, start), "end": at(day, end)}
        body |= {"open": close, "high": close, "low": close, "close": close, "volume": 0}
        engine.submit("market.bar", body | {"ticks": 1}, key=X)

    mark(110.0, 12, "09:40")
    bar(110.0, 12, "09:30", "09:45")
    mark(130.0, 12, "10:05")  # stopped here, before the 10:15 close
    mark(130.0, 13, "09:20")  # the next day opens where it stopped
    bar(130.0, 13, "09:15", "09:30")
    engine.stop()
    daily = Analytics(tmp_path / "j.duckdb").sql("SELECT date, net FROM daily_pnl ORDER BY date")
    assert list(daily["net"]) == [2250.0, 0.0]  # (130 - 100) x 75 on the 12th; nothing moved
