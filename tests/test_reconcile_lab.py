"""The default session with its reconciler: the broker's account outlives a restart, and a
difference becomes a queryable row of the DuckDB journal."""

from __future__ import annotations

import duckdb
from test_lab import fast_lab, wait_for

from tradelab.broker.reconcile import ReconcilerConfig


def lab_with(path, **reconciler):
    lab = fast_lab(path)
    lab.reconciler_config = ReconcilerConfig(settle_s=0.0, interval_s=3600, **reconciler)
    return lab


def test_restarted_session_broker_remembers_its_position_and_agrees_with_the_book(tmp_path):
    path = tmp_path / "lab.duckdb"
    lab = lab_with(path).start()
    symbol = lab.feed.symbols[2]
    assert wait_for(lambda: lab.store.get(f"market.marks.{symbol}") is not None)
    lab.place_order(symbol, "BUY", 75)
    fills = lab.broker.fills_since(0)
    lab.stop()

    again = lab_with(path).start()
    try:
        assert again.broker.positions() == {symbol: 75}
        assert again.broker.fills_since(0) == fills  # same fill ids after the restart
        assert wait_for(lambda: again.reconciler.runs >= 1)
        assert wait_for(lambda: again.store.get("reconciliation.status", None) == "completed")
        assert again.store.get("reconciliation.last_run.ok") is True
    finally:
        again.stop()


def test_a_difference_is_a_queryable_row_of_the_journal(tmp_path):
    path = tmp_path / "lab.duckdb"
    lab = lab_with(path).start()
    try:
        symbol = lab.feed.symbols[2]
        # The run on start has finished (`runs` counts a run as it begins): the fault below is
        # found by the run this test makes, not adopted by that one.
        assert wait_for(lambda: lab.store.get("reconciliation.status", None) == "completed")
        lab.broker.faults.hold_outside_position(symbol, 75, 100.0)
        report = lab.reconciler.run_once()
        assert report.kinds == ["unknown_position"]
    finally:
        lab.stop()
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "SELECT json_extract_string(payload, '$.kind'), "
            "CAST(json_extract(payload, '$.expected') AS INTEGER), "
            "CAST(json_extract(payload, '$.actual') AS INTEGER), "
            "json_extract_string(payload, '$.symbol') "
            "FROM events WHERE topic = 'reconciliation.mismatch'"
        ).fetchall()
    assert rows == [("unknown_position", 0, 75, symbol)]


def test_fills_and_positions_a_fix_adopted_are_in_the_analytics_views_as_in_the_store(tmp_path):
    from tradelab.analytics import Analytics

    path = tmp_path / "lab.duckdb"
    lab = lab_with(path, unknown_position="adopt").start()
    try:
        symbol, other = lab.feed.symbols[2], lab.feed.symbols[3]
        assert wait_for(lambda: lab.store.get("reconciliation.status", None) == "completed")
        assert wait_for(lambda: lab.store.get(f"market.marks.{symbol}") is not None)
        lab.broker.faults.drop_fill_reports(1)
        order_id = lab.place_order(symbol, "BUY", 75)  # the broker fills it; the book never hears
        lab.broker.faults.hold_outside_position(other, 75, 100.0)
        report = lab.reconciler.run_once()
        assert {"missed_fill", "unknown_position"} <= set(report.kinds)
        booked = {
            p["symbol"]: p["net_quantity"] for p in lab.store.get("trading.positions").values()
        }
        lab.engine.flush()
        order = lab.store.get(f"trading.orders.{order_id}")
    finally:
        lab.stop()
    assert booked == {symbol: 75, other: 75}
    analytics = Analytics(path)
    fills = analytics.sql("SELECT symbol, quantity, reconciled FROM fills ORDER BY seq")
    assert fills.values.tolist() == [[symbol, 75, True], [other, 75, True]]
    held = analytics.sql(
        "SELECT symbol, arg_max(position_after, seq) AS held FROM fills GROUP BY symbol"
    )
    assert dict(zip(held["symbol"], held["held"], strict=True)) == booked
    positions = analytics.sql("SELECT symbol, net_quantity FROM positions")
    assert dict(zip(positions["symbol"], positions["net_quantity"], strict=True)) == booked
    # The order the fix adopted the broker's state of: as the store has it, in both views.
    [row] = analytics.sql(
        "SELECT status, filled_quantity, average_price, reason FROM orders WHERE order_id = ?",
        [order_id],
    ).to_dict("records")
    assert row == {k: order[k] for k in ("status", "filled_quantity", "average_price", "reason")}
    assert row["status"] == "filled" and row["reason"].startswith("reconciled: ")
    [outcome] = analytics.sql("SELECT outcome FROM latency WHERE order_id = ?", [order_id])[
        "outcome"
    ]
    assert outcome == "filled"


def test_a_broker_that_stays_down_shows_in_the_status_and_the_run_progress_line(tmp_path, capsys):
    from tradelab.cli_progress import RunProgress
    from tradelab.ui.frames import header

    lab = lab_with(tmp_path / "lab.duckdb", retry_attempts=1).start()
    try:
        assert lab.status()["broker"] == "ok"
        lab.broker.disconnect()
        assert lab.reconciler.run_once().degraded
        status = lab.status()
        assert status["broker"] == "degraded" and "disconnected" in status["broker_reason"]
        assert header(lab)["broker_health"]["paper"]["state"] == "degraded"  # the console's
        capsys.readouterr()
        RunProgress(lab, in_place=False).show()
        assert capsys.readouterr().out.rstrip().endswith("broker DEGRADED")
    finally:
        lab.stop()


def test_a_fill_adopted_before_its_late_report_arrives_is_booked_once(tmp_path):
    """The broker's report of a fill the reconciler had adopted meanwhile (a slow report, a
    busy desk) used to be booked again: 150 in the book against 75 at the broker, the fee
    twice, and a quantity mismatch that halted trading on the next run."""
    lab = lab_with(tmp_path / "lab.duckdb").start()
    try:
        symbol = lab.feed.symbols[2]
        assert wait_for(lambda: lab.store.get("reconciliation.status", None) == "completed")
        assert wait_for(lambda: lab.store.get(f"market.marks.{symbol}") is not None)
        desk_listener, held = lab.broker._order_listeners[0], []
        lab.broker._order_listeners[0] = held.append  # the reports are late
        lab.place_order(symbol, "BUY", 75, strategy="s1")
        assert wait_for(lambda: any(u.fill is not None for u in held))
        assert "missed_fill" in lab.reconciler.run_once().kinds
        lab.broker._order_listeners[0] = desk_listener
        for update in held:
            desk_listener(update)
        lab.engine.wait_applied()
        position = lab.store.get(f"trading.positions.s1:{symbol}")
        assert position["net_quantity"] == 75 == lab.broker.positions()[symbol]
        assert len(lab.store.get("trading.trades")) == 1
        assert lab.reconciler.run_once().kinds == []
        assert lab.store.get("risk.control.state", "active") == "active"
    finally:
        lab.stop()


def test_a_trade_the_book_holds_already_changes_nothing_when_reported_again():
    """The backstop for a report racing the reconciler's adoption of the same fill."""
    from tradelab.events import Event
    from tradelab.trading.reducers import trade_reducer

    trade = {
        "trade_id": "PB-F1", "order_id": "O-1", "position_id": "s1:X", "symbol": "X",
        "strategy": "s1", "side": "BUY", "quantity": 75, "price": 10.0, "fee": 20.0,
        "lot_size": 75, "ts": 1,
    }  # fmt: skip
    event = Event(9, 1, "trade.executed", "s1:X", trade, True)
    assert trade_reducer({"trading": {"trades": {"PB-F1": {**trade, "seq": 5}}}}, event) == []
    assert trade_reducer({}, event)  # a new one is booked


def test_an_account_of_another_journal_is_refused_naming_both_files(tmp_path):
    """It was taken: the reconciler booked that journal's fills into this one as trades never
    made (fresh sessions' fill ids are alike, so the ones that collided passed as matched)."""
    import shutil

    import pytest

    from tradelab.errors import InvalidInputError

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        lab = lab_with(tmp_path / name / "lab.duckdb").start()
        symbol = lab.feed.symbols[2]
        assert wait_for(lambda lab=lab, symbol=symbol: lab.store.get(f"market.marks.{symbol}"))
        lab.place_order(symbol, "BUY", 75)
        lab.stop()
    account = "lab.duckdb.broker.sqlite"
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / "b" / f"{account}{suffix}").unlink(missing_ok=True)
    shutil.copy(tmp_path / "a" / account, tmp_path / "b" / account)
    with pytest.raises(InvalidInputError, match="belongs to another journal"):
        lab_with(tmp_path / "b" / "lab.duckdb").start()
    # A new journal beside an account is the documented way to adopt what it holds.
    shutil.copy(tmp_path / "a" / account, tmp_path / account)
    fresh = lab_with(tmp_path / "lab.duckdb").start()
    fresh.stop()


def test_an_account_removed_beside_a_journal_that_traded_is_said(tmp_path, caplog):
    path = tmp_path / "lab.duckdb"
    lab = lab_with(path).start()
    symbol = lab.feed.symbols[2]
    assert wait_for(lambda: lab.store.get(f"market.marks.{symbol}") is not None)
    lab.place_order(symbol, "BUY", 75)
    lab.stop()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"lab.duckdb.broker.sqlite{suffix}").unlink(missing_ok=True)
    with caplog.at_level("WARNING", logger="tradelab.broker.account_file"):
        again = lab_with(path).start()
        again.stop()
    assert "holds no fill beside journal" in caplog.text


def test_a_run_asked_for_from_a_bus_handler_is_refused_at_once(tmp_path):
    # It waited for the run lock the reconciler's own thread held while that thread waited for
    # the kernel: the engine stopped for good.
    from tradelab.errors import LifecycleError

    refused = []

    def reconcile_now(event):
        if not refused:
            try:
                lab.reconciler.run_once()
            except LifecycleError as exc:
                refused.append(exc)

    lab = lab_with(tmp_path / "lab.duckdb")
    with lab:
        lab.engine.bus.subscribe("market.bar", reconcile_now)
        assert wait_for(lambda: refused)
        assert "kernel thread" in str(refused[0])
        assert lab.reconciler.run_once() is not None  # from any other thread it runs
