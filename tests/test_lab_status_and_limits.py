"""A Lab's status of open positions, wait_for_quote after a restart, and the daily loss limit of
a max-speed session."""

from tests.test_lab import fast_lab, wait_for


def test_status_counts_a_closed_position_as_not_open(tmp_path):
    with fast_lab(tmp_path / "lab.duckdb") as lab:
        symbol = lab.feed.symbols[2]
        assert wait_for(lambda: lab.store.get(f"market.marks.{symbol}") is not None)
        lab.place_order(symbol, "BUY", 75, strategy="manual")
        assert wait_for(lambda: lab.status()["fills"] == 1)
        lab.place_order(symbol, "SELL", 75, strategy="manual")
        assert wait_for(lambda: lab.status()["fills"] == 2)
        position = lab.store.get(f"trading.positions.manual:{symbol}")
        assert position is not None and position["net_quantity"] == 0
        assert lab.status()["open_positions"] == 0


def test_wait_for_quote_after_a_restart_never_returns_the_journals_old_mark(tmp_path):
    # The suite's test of this (test_lab_sessions) passes under the mutant by timing: its fast
    # feed has quoted the symbol again before wait_for_quote looks. Here the restarted session
    # has ended without quoting it again: its old mark must not be returned as this run's.
    import threading
    from types import SimpleNamespace

    import pytest

    from tradelab.errors import LifecycleError
    from tradelab.lab_status import wait_for_mark

    path = tmp_path / "lab.duckdb"
    with fast_lab(path) as lab:
        symbol = lab.feed.symbols[2]
        lab.wait_for_quote(symbol)
        store = lab.store
        old = store.get(f"market.marks.{symbol}")
    ended = threading.Event()
    ended.set()
    restarted = SimpleNamespace(
        engine=SimpleNamespace(store=store),
        resumed_after_ns=max(m["ts"] for m in store.get("market.marks").values()),
        session_finished=ended,
    )
    assert old["ts"] <= restarted.resumed_after_ns
    with pytest.raises(LifecycleError, match="the session ended"):
        wait_for_mark(restarted, symbol, timeout=1.0)


def test_a_max_speed_session_halts_on_the_daily_loss_limit_during_the_day(tmp_path):
    # In lockstep the loss monitor has no thread: the check between two timestamps is what
    # enforces the limit. Without it the whole day plays on past the breach.
    from tests.test_cli_run_replay import SAMPLE
    from tradelab.lab import Lab
    from tradelab.runner import Strategy
    from tradelab.trading.risk import RiskConfig
    from tradelab.trading.risk_state import control_state

    class BuyBig(Strategy):
        strategy_name = "buy_big"

        def on_bar(self, ctx, bar):
            if bar["symbol"] == "NIFTY" and not ctx.position("NIFTY") and not ctx.working("NIFTY"):
                ctx.buy("NIFTY", 40)  # within the paper account's margin

    lab = Lab(
        journal_path=str(tmp_path / "lab.duckdb"),
        feed="replay",
        replay_path=SAMPLE,
        as_fast_as_possible=True,
        strategies=[BuyBig()],
        risk=RiskConfig(daily_loss_limit=1.0),
    ).start()
    try:
        assert lab.session_finished.wait(120)
        orders = lab.store.get("trading.orders") or {}
        assert orders, "no order"
        assert lab.store.get("trading.positions.buy_big:NIFTY") is not None, list(orders.values())[
            :1
        ]
        assert control_state(lab.store) != "active"
    finally:
        lab.stop()


def test_status_gives_the_days_pnl_to_the_paisa():
    # A sum of marks times units carries float noise: the status read -1547.500000000002.
    import threading
    from types import SimpleNamespace

    from tradelab.lab_status import session_status

    values = {"pnl.daily": {"net": -1547.500000000002}}
    store = SimpleNamespace(get=lambda path, default=None: values.get(path, default), version=9)
    lab = SimpleNamespace(
        engine=SimpleNamespace(store=store, state="running"),
        chart_symbol="NIFTY",
        broker=SimpleNamespace(name="paper"),
        clock=SimpleNamespace(now_ns=lambda: 0),
        open_ns=0,
        close_ns=1,
        session_finished=threading.Event(),
        router=SimpleNamespace(ticks_routed=0, bars_submitted=0),
        runner=None,
        risk_monitor=None,
    )
    assert session_status(lab)["daily_pnl"] == -1547.5
    values.clear()
    assert session_status(lab)["daily_pnl"] is None
