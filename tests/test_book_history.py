"""The live book keeps the last N sessions' finished orders and fills; the journal keeps all."""

from contracts.local_kernel import LocalKernel

from tradelab.trading.history import TOPIC

SYM = "NIFTY25NOV24000CE"


def order(kernel, order_id, status, **fields):
    payload = {"order_id": order_id, "symbol": SYM, "side": "BUY", "quantity": 75, **fields}
    kernel.submit(f"order.{status}", payload, key=order_id)


def fill(kernel, trade_id, strategy, side, quantity=75):
    kernel.submit(
        "trade.executed",
        {
            "position_id": f"{strategy}:{SYM}", "strategy": strategy, "symbol": SYM,
            "lot_size": 75, "quantity": quantity, "side": side, "price": 100.0, "fee": 0.0,
            "trade_id": trade_id, "ts": 1,
        },
        key=f"{strategy}:{SYM}",
    )  # fmt: skip


def opens(kernel, keep):
    kernel.submit(TOPIC, {"keep_sessions": keep}, key="trading")


def test_what_finished_before_the_oldest_kept_session_leaves_and_what_the_book_needs_stays():
    k = LocalKernel()
    opens(k, keep=2)  # session 1
    order(k, "A", "submitted")
    order(k, "A", "filled", filled_quantity=75)
    order(k, "B", "submitted")
    order(k, "B", "cancelled")
    fill(k, "TA", "flat", "BUY")  # a position closed in session 2
    fill(k, "TY", "held", "BUY")  # a position still open: its fills stay
    opens(k, keep=2)  # session 2
    fill(k, "TB", "flat", "SELL")
    order(k, "C", "submitted")  # still working
    assert sorted(k.store.get("trading.orders")) == ["A", "B", "C"]
    opens(k, keep=2)  # session 3: sessions 2 and 3 are kept
    assert sorted(k.store.get("trading.orders")) == ["C"]
    assert sorted(k.store.get("trading.trades")) == ["TB", "TY"]
    assert k.store.get("trading.working.C") is not None
    assert k.store.get(f"trading.positions.held:{SYM}")["net_quantity"] == 75
    history = k.store.get("trading.history")
    assert (history["trimmed_orders"], history["trimmed_fills"]) == (2, 1)
    assert len(history["session_opens"]) == 2


def test_a_stop_and_reverse_strategys_fills_are_trimmed_up_to_its_latest_reversal():
    # Never flat, its position counted as open since its very first fill, so every fill it
    # ever made stayed in the live book (sma_cross: ~250 a day, trimmed_fills 0 after 40 days).
    k = LocalKernel()
    opens(k, keep=1)
    fill(k, "T1", "s", "BUY")
    fill(k, "T2", "s", "SELL", 150)  # long -> short
    opens(k, keep=1)
    fill(k, "T3", "s", "BUY", 150)  # short -> long: the position held now opened here
    fill(k, "T4", "s", "BUY")
    opens(k, keep=1)
    assert sorted(k.store.get("trading.trades")) == ["T3", "T4"]
    position = k.store.get(f"trading.positions.s:{SYM}")
    assert position["net_quantity"] == 150 and position["opened_seq"] is not None
    assert k.store.get("trading.history")["trimmed_fills"] == 2


def test_a_position_s_last_fill_stays_however_old():
    # Its close's record (position.closed after a crash) is read from it.
    k = LocalKernel()
    opens(k, keep=1)
    fill(k, "T1", "s", "BUY")
    fill(k, "T2", "s", "SELL")
    opens(k, keep=1)
    opens(k, keep=1)
    assert sorted(k.store.get("trading.trades")) == ["T2"]


def test_a_replay_of_several_days_keeps_one_sessions_book_and_the_journal_keeps_every_trade(
    tmp_path,
):
    from tradelab.journal import JournalReader
    from tradelab.journal.verify import verify_journal
    from tradelab.lab import Lab
    from tradelab.runner import Strategy
    from tradelab.runner.tradelog import trades_frame

    class RoundTripADay(Strategy):
        strategy_name = "round_trip_a_day"

        def on_bar(self, ctx, bar):
            ctx.target("ACME", 0 if ctx.position("ACME") else 10)

    rows = ["Date,Open,High,Low,Close"]
    for day in (3, 4, 6):  # the 5th was a holiday
        rows += [f"2025-11-{day:02d} 09:{15 + m:02d},100,101,99,100" for m in range(3)]
    bars = tmp_path / "ACME.csv"
    bars.write_text("\n".join(rows) + "\n")
    journal = tmp_path / "r.duckdb"
    with Lab(
        journal_path=str(journal),
        feed="replay",
        replay_path=str(bars),
        as_fast_as_possible=True,
        bar_intervals=["1m"],
        book_history_sessions=1,
        strategies=[RoundTripADay()],
    ) as lab:
        assert lab.session_finished.wait(60)
        lab.engine.wait_applied()
        kept = lab.store.get("trading.trades")
        history = lab.store.get("trading.history")
    journaled = [
        e.payload["trade_id"] for e in JournalReader(journal).events(topic="trade.executed")
    ]
    assert len(journaled) > len(kept) and history["trimmed_fills"] > 0
    assert set(kept) <= set(journaled)
    assert len(trades_frame(journal)) == len(journaled) // 2  # every round trip, from the journal
    assert verify_journal(journal).ok  # a fold of the journal: replayed, it trims the same


def test_expired_contracts_leave_the_live_state_when_a_session_opens():
    # Bars and marks of every contract ever quoted stayed for good (~140 KB a session day of
    # weekly strikes), and so did their flat positions.
    from tradelab.lab_days import expired_symbols
    from tradelab.market.instruments import OptionUniverse
    from tradelab.runner import strategy_state

    k = LocalKernel()
    k.store.register_reducers(strategy_state.reducers())  # trade.logged: the logged exits
    old, live = "NIFTY25N1123900CE", SYM
    for symbol in (old, live):
        k.submit("mark.updated", {"symbol": symbol, "price": 100.0, "ts": 1}, key=symbol)
    bar = {"interval": "15m", "start": 0, "end": 900, "open": 1.0, "high": 1.0, "low": 1.0}
    k.submit("market.bar", {**bar, "symbol": old, "close": 1.0, "volume": 0, "ticks": 1}, key=old)
    fill(k, "T1", "s", "BUY")
    fill(k, "T2", "s", "SELL")  # flat in SYM: not expired, stays
    for trade_id, side in (("X1", "BUY"), ("X2", "SELL")):  # flat in the expired contract
        k.submit(
            "trade.executed",
            {
                "position_id": f"s:{old}", "strategy": "s", "symbol": old, "lot_size": 75,
                "quantity": 75, "side": side, "price": 100.0, "fee": 0.0, "trade_id": trade_id,
                "ts": 1,
            },
            key=f"s:{old}",
        )  # fmt: skip
    logged = {"position_id": f"s:{old}", "strategy": "s", "exit_trade_id": "X2"}
    k.submit("trade.logged", logged, key=f"s:{old}")
    assert expired_symbols(k.store, OptionUniverse(), "2025-11-12") == [old]
    assert expired_symbols(k.store, OptionUniverse(), "2025-11-11") == []
    k.submit(TOPIC, {"keep_sessions": 5, "expired_symbols": [old]}, key="trading")
    assert sorted(k.store.get("market.marks")) == [live]
    assert old not in (k.store.get("market.bars", None) or {})
    assert k.store.get(f"trading.positions.s:{SYM}") is not None
    assert k.store.get(f"trading.positions.s:{old}", None) is None
    assert f"s:{old}" not in (k.store.get("trading.logged_exits", None) or {})
    assert k.store.get("trading.history")["trimmed_contracts"] == 1


def test_fills_the_reconciler_has_not_covered_stay_however_old():
    # Gone from the book, the next reconciliation found them "missed" at the broker and booked
    # them again: double-booked fills, a wrong position, trading halted.
    from tradelab.state import reducers as state_reducers

    k = LocalKernel()
    k.store.register_reducers(state_reducers.reducers())  # reconciliation.completed
    opens(k, keep=1)
    for trade_id, side, fill_seq in (("T1", "BUY", 1), ("T2", "SELL", 2), ("T3", "BUY", 3)):
        k.submit(
            "trade.executed",
            {
                "position_id": f"s:{SYM}", "strategy": "s", "symbol": SYM, "lot_size": 75,
                "quantity": 75, "side": side, "price": 100.0, "fee": 0.0, "trade_id": trade_id,
                "ts": 1, "fill_seq": fill_seq,
            },
            key=f"s:{SYM}",
        )  # fmt: skip
    k.submit("reconciliation.completed", {"fill_point": 1, "account_id": "A"}, key="paper")
    opens(k, keep=1)
    assert sorted(k.store.get("trading.trades")) == ["T2", "T3"]  # T1 covered; T2 not
    k.submit("reconciliation.completed", {"fill_point": 3, "account_id": "A"}, key="paper")
    opens(k, keep=1)
    assert sorted(k.store.get("trading.trades")) == ["T3"]  # the open position's fill stays
