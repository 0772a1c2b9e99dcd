"""The embedded default session (`make console`): trading, refusals, and stops beside orders."""

import subprocess
import sys
import time

import pytest

from tradelab.errors import (
    InvalidInputError,
    JournalInUseError,
    LifecycleError,
    OrderRejectedError,
)
from tradelab.lab import Lab
from tradelab.runner import Strategy
from tradelab.trading.risk import RiskConfig


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def fast_lab(path, strategy="none", **settings):
    # 10K ticks/s at 600x: the whole session takes ~40 s, so tests stop it part way.
    return Lab(
        journal_path=str(path),
        ticks_per_second=10_000,
        speed=600.0,
        strikes_each_side=1,
        strategy=strategy,
        **settings,
    )


def test_lab_books_an_order_against_the_simulated_market(tmp_path):
    with fast_lab(tmp_path / "lab.duckdb") as lab:
        symbol = lab.feed.symbols[2]
        assert wait_for(lambda: lab.store.get(f"market.marks.{symbol}") is not None)
        lab.place_order(symbol, "BUY", 75, strategy="manual")
        assert wait_for(
            lambda: (
                (lab.store.get(f"trading.positions.manual:{symbol}") or {}).get("net_quantity")
                == 75
            )
        )
        assert lab.status()["open_positions"] == 1
    # After the stop, an order cell run again is told the Lab is stopped, not "stopping".
    with pytest.raises(LifecycleError, match="this Lab is stopped: make a new Lab"):
        lab.place_order(symbol, "BUY", 75, strategy="manual")


def test_the_runner_runs_with_the_configured_bounds(tmp_path):
    from tradelab.runner.runner_config import RunnerConfig

    config = RunnerConfig(inbox_limit=321, hook_stall_after_s=0.25)
    with fast_lab(tmp_path / "lab.duckdb", runner=config) as lab:
        assert lab.runner.metrics()["inbox_limit"] == 321
        assert lab.runner.hook_watch.stall_after_s == 0.25


def test_order_rate_is_counted_in_market_time_whatever_the_replay_speed(tmp_path):
    # At 600x a market minute passes in 0.1 s: the limit counts the session's minutes, as a
    # backtest of the same session would, not the wall clock's.
    with fast_lab(tmp_path / "lab.duckdb", risk=RiskConfig(max_orders_per_minute=1)) as lab:
        symbol = lab.feed.symbols[2]
        lab.wait_for_quote(symbol)
        lab.place_order(symbol, "BUY", 75)
        later = lab.clock.now_ns() + 61 * 10**9
        assert wait_for(lambda: lab.clock.now_ns() > later)
        lab.place_order(symbol, "BUY", 75)  # about 0.1 s of wall time after the first
        assert wait_for(lambda: lab.status()["fills"] == 2)


def test_tradelab_run_stops_cleanly_and_reports_the_journal(tmp_path):
    path = tmp_path / "run.duckdb"
    cmd = [
        sys.executable,
        "-m",
        "tradelab.cli",
        "run",
        "--journal",
        str(path),
        "--duration",
        "1",
        "--every",
        "0.2",
        "--ticks-per-second",
        "2000",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "recovered" in done.stdout and "stopped cleanly at seq" in done.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "snapshot" in again.stdout.splitlines()[0]


def test_default_lab_trades_the_short_straddle_within_seconds_and_stops_its_runner(tmp_path):
    # The default strategy sells the ATM straddle at 09:20: 5 session minutes, 0.5 s at 600x.
    lab = Lab(
        journal_path=str(tmp_path / "lab.duckdb"),
        ticks_per_second=10_000,
        speed=600.0,
        strikes_each_side=2,
    ).start()
    try:
        assert lab.config.strategy == "short_straddle"
        # Generous (2 shared cores); the straddle fills seconds after the start.
        assert wait_for(lambda: lab.status()["fills"] >= 2, timeout=60)
    finally:
        lab.stop()
    first = sorted(lab.store.get("trading.trades").values(), key=lambda t: t["seq"])[:2]
    # The entry: both legs sold (a leg's stop may already have bought it back since).
    assert [(t["strategy"], t["side"]) for t in first] == [("short_straddle", "SELL")] * 2
    assert sorted(t["symbol"][-2:] for t in first) == ["CE", "PE"]
    assert lab.store.get("runner.status") == "stopped"


def test_lab_refuses_an_unknown_strategy_parameter_before_opening_the_journal(tmp_path):
    import pytest

    from tradelab.errors import InvalidInputError

    path = tmp_path / "lab.duckdb"
    with pytest.raises(InvalidInputError, match="no parameter 'fast'.*entry_time"):
        Lab(journal_path=str(path), strategy_params={"fast": "3"})
    assert not path.exists()


@pytest.mark.parametrize(
    "arguments, said",
    [
        ({"risk": {"daily_loss_limit": 0}}, r"risk must be a RiskConfig .*got dict .*RiskConfig\("),
        ({"engine": {"group_commit_ms": 5}}, r"engine must be an EngineConfig .*got dict"),
        ({"config": 5}, r"config must be a LabConfig .*got int 5"),
        ({"config": {"seed": 1}}, r"config must be a LabConfig .*Lab\(\*\*settings\)"),
        ({"broker": "paper"}, r"broker must be a PaperBrokerConfig .*got str 'paper'"),
        ({"runner": {"inbox_limit": 5}}, r"runner must be a RunnerConfig .*got dict"),
    ],
)
def test_a_settings_object_of_the_wrong_kind_is_refused_naming_it(tmp_path, arguments, said):
    # A risk dict used to be taken: the daily loss monitor died on its thread and every order
    # raised an AttributeError from inside the risk gate.
    path = tmp_path / "lab.duckdb"
    config = arguments.pop("config", None)
    with pytest.raises(InvalidInputError, match=said):
        Lab(config, journal_path=str(path), strategy="none", **arguments)
    assert not path.exists()


def test_a_feed_stall_needs_a_paced_feed(tmp_path):
    import pytest

    from tradelab.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="feed_stall_after_seconds needs a paced feed"):
        Lab(
            journal_path=str(tmp_path / "j.duckdb"),
            as_fast_as_possible=True,
            feed_stall_after_seconds=1.0,
        )
    assert not (tmp_path / "j.duckdb").exists()


def test_a_lab_refused_for_a_journal_another_lab_holds_leaves_that_labs_account(tmp_path):
    path = tmp_path / "lab.duckdb"
    # Made before the first, `second` made the account file, as when two runs start together.
    second = fast_lab(path)
    first = fast_lab(path)
    account = tmp_path / "lab.duckdb.broker.sqlite"
    with first:
        with pytest.raises(JournalInUseError, match="held by an engine running in this process"):
            second.start()
        assert account.exists()  # the running session's paper account


def test_a_second_start_is_refused_and_leaves_the_running_session_trading(tmp_path):
    # A re-run notebook cell: the running Lab's broker, account file and feed carry on.
    path = tmp_path / "lab.duckdb"
    account = tmp_path / "lab.duckdb.broker.sqlite"
    lab = fast_lab(path)
    with lab:
        with pytest.raises(LifecycleError, match="a Lab starts once"):
            lab.start()
        assert account.exists()
        symbol = lab.feed.symbols[2]
        lab.wait_for_quote(symbol)
        lab.place_order(symbol, "BUY", 75, strategy="manual")
        assert wait_for(lambda: lab.status()["fills"] == 1)
        assert lab._feed_thread.is_alive()
    with pytest.raises(LifecycleError, match="a Lab starts once"):
        lab.start()  # stopped: still refused, and its account kept for the next Lab
    assert account.exists()


class StopsTheLab(Strategy):
    """Calls lab.stop() from its first tick's hook, and keeps what it got."""

    strategy_name = "stops_the_lab"
    # Set before the session starts, not in on_start: that runs on the runner's thread and may
    # come after the test has handed over the Lab (it was reset then, and `refused` missing).
    lab: object = None
    refused: LifecycleError | None = None

    def on_tick(self, ctx, tick):
        if self.refused is None and self.lab is not None:
            try:
                self.lab.stop()
            except LifecycleError as exc:
                self.refused = exc


def test_stop_from_a_strategys_hook_or_a_bus_handler_is_refused_with_nothing_stopped(tmp_path):
    # From a hook it raised a bare RuntimeError ("cannot join current thread") after stopping
    # the feed; from a bus handler the LifecycleError came after feed, runner, monitors had
    # stopped: either way a session that no longer traded with its engine running.
    strategy = StopsTheLab()
    with fast_lab(tmp_path / "lab.duckdb", strategies=[strategy]) as lab:
        strategy.lab = lab
        assert wait_for(lambda: strategy.refused is not None)
        assert "from a strategy's hook" in str(strategy.refused)
        handled = []

        def stop_from_handler(event):
            if not handled:
                try:
                    lab.stop()
                except LifecycleError as exc:
                    handled.append(exc)

        lab.engine.bus.subscribe("market.bar", stop_from_handler)
        assert wait_for(lambda: handled)
        assert "bus handler" in str(handled[0])
        seq = lab.store.version
        assert wait_for(lambda: lab.store.version > seq + 50)  # the feed still runs
        assert lab._feed_thread.is_alive() and lab.engine.state == "running"


def test_a_bus_handler_ordering_beside_a_thread_ordering_the_same_symbol_never_deadlocks(tmp_path):
    # The desk held a lock per strategy and symbol while it waited for the kernel to apply the
    # submission; a bus handler (on the kernel thread) ordering the same pair waited for that
    # lock: the kernel stopped for good, and so did the session.
    import threading

    lab = fast_lab(tmp_path / "lab.duckdb")
    hedged = []

    def hedge(event):
        trade = event.payload
        if trade.get("strategy") == "demo" and trade.get("side") == "BUY":
            hedged.append(
                lab.place_order(trade["symbol"], "SELL", trade["quantity"], strategy="demo")
            )

    lab.engine.bus.subscribe("trade.executed", hedge, name="hedger")
    with lab:
        symbol = lab.feed.contracts[2].symbol
        lot = lab.feed.universe.lot_size(symbol)
        lab.wait_for_quote(symbol)
        bought = []
        buyer = threading.Thread(
            target=lambda: bought.extend(
                lab.place_order(symbol, "BUY", lot, strategy="demo") for _ in range(20)
            ),
            daemon=True,
        )
        buyer.start()
        buyer.join(60)
        assert not buyer.is_alive() and len(bought) == 20
        assert wait_for(lambda: len(hedged) == 20)


def test_a_stop_while_threads_place_orders_leaves_no_order_the_broker_never_had(tmp_path):
    # The engine stopped between an order's journaled submission and the broker's answer:
    # the answer was lost, and the order stayed working in the book for good, unknown to the
    # broker (its caller told "engine is stopping" instead of the broker's rejection).
    import threading

    lab = fast_lab(tmp_path / "lab.duckdb").start()
    symbol = lab.feed.contracts[2].symbol
    lot = lab.feed.universe.lot_size(symbol)
    lab.wait_for_quote(symbol)
    stop, refused = threading.Event(), []

    def place(i):
        while not stop.is_set():
            try:  # far past the paper account's margin: the broker rejects each one
                lab.place_order(symbol, "BUY", lot * 1000, strategy=f"p{i}")
            except (OrderRejectedError, LifecycleError) as exc:
                refused.append(type(exc).__name__)

    placers = [threading.Thread(target=place, args=(i,)) for i in range(4)]
    for placer in placers:
        placer.start()
    assert wait_for(lambda: refused.count("OrderRejectedError") > 20)
    lab.stop()
    stop.set()
    for placer in placers:
        placer.join(30)
    orders = lab.store.get("trading.orders") or {}
    assert [o for o, order in orders.items() if order["status"] == "submitted"] == []
    assert not lab.store.get("trading.working")
    with pytest.raises(LifecycleError, match="this Lab is stopped"):
        lab.place_order(symbol, "BUY", lot)


def test_a_strategy_parameter_that_cannot_be_journaled_is_refused_before_a_file_is_made(tmp_path):
    import param

    class Odd(Strategy):
        when = param.Parameter(default=object())  # not a JSON value

    journal = tmp_path / "lab.duckdb"
    with pytest.raises(InvalidInputError, match="'odd': its parameters are journaled"):
        Lab(journal_path=str(journal), strategies=[Odd()])
    assert not list(tmp_path.iterdir())


def test_a_start_that_fails_after_the_engine_started_stops_what_it_started(tmp_path, monkeypatch):
    # Only two early checks were undone: anything later left the engine, its writer and the
    # monitors running, and `with Lab(...)` gave no handle to stop them (the journal held).
    import threading

    from tradelab.runner.runner import StrategyRunner

    def refuse(self, who="system"):
        raise RuntimeError("the runner could not start")

    journal = tmp_path / "lab.duckdb"
    before = {t.name for t in threading.enumerate()}
    with monkeypatch.context() as patched:
        patched.setattr(StrategyRunner, "start", refuse)
        with pytest.raises(RuntimeError, match="could not start"), fast_lab(journal):
            pass
    assert wait_for(lambda: {t.name for t in threading.enumerate()} <= before)
    with fast_lab(journal) as lab:  # the journal is free and whole
        assert lab.engine.state == "running"
