"""StrategyRunner: lifecycle events carry who asked, a raising strategy is stopped and reported
while the others keep trading, and strategies run on the runner's thread, never the kernel's."""

import threading
import time

import param
import pytest

from tradelab.errors import InvalidInputError
from tradelab.journal import JournalReader
from tradelab.runner import SmaCross, Strategy
from tradelab.runner.backtest import run_backtest
from tradelab.runner.runner import StrategyRunner


class Boom(Strategy):
    strategy_name = "boom"
    after = param.Integer(default=3)

    def on_start(self, ctx):
        self.seen = 0
        self.threads = set()

    def on_bar(self, ctx, bar):
        self.threads.add(threading.current_thread().name)
        self.seen += 1
        if self.seen == self.after:
            raise RuntimeError("boom on purpose")


def write_bars(path, n=40):
    lines = ["Date,Open,High,Low,Close"]
    for i in range(n):
        c = 100 + (i % 10) - (5 if (i // 10) % 2 else 0)
        lines.append(f"2024-01-01T09:{15 + i:02d}:00+05:30,{c},{c + 1},{c - 1},{c}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("synchronous", [True, False])
def test_a_raising_strategy_is_stopped_and_reported_while_the_run_goes_on(
    tmp_path, caplog, synchronous
):
    bars = write_bars(tmp_path / "X.csv")
    boom = Boom(after=3)
    journal = tmp_path / "bt.duckdb"
    result = run_backtest(
        bars,
        [SmaCross(fast=2, slow=5), boom],
        journal_path=journal,
        synchronous=synchronous,
        stop_at_failure=False,
    )
    assert boom.seen == 3, "a failed strategy got more bars"
    # Threaded: the runner's own thread (never the kernel's); synchronous: the caller's.
    assert boom.threads == {threading.current_thread().name if synchronous else "backtest-thread"}
    assert len(result.fills) > 0, "the other strategy stopped trading"
    states = [
        (e.payload["strategy"], e.payload["state"], e.payload["who"])
        for e in JournalReader(journal).events(topic="runner.state_changed")
    ]
    assert ("boom", "failed", "runner") in states
    assert ("sma_cross", "stopped", "backtest") in states
    failed = next(
        e.payload
        for e in JournalReader(journal).events(topic="runner.state_changed")
        if e.payload["state"] == "failed"
    )
    assert "RuntimeError: boom on purpose" in failed["reason"]
    assert "boom on purpose" in caplog.text and "Traceback" in caplog.text


def test_lifecycle_events_say_who_asked(tmp_path):
    from tradelab.broker import PaperBroker
    from tradelab.engine import Engine
    from tradelab.trading.execution import ExecutionDesk

    engine = Engine(journal_path=str(tmp_path / "j.duckdb")).start()
    try:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit))
        runner.add(SmaCross())
        runner.start(who="alice")
        runner.pause("sma_cross", who="bob")
        runner.resume("sma_cross", who="carol")
        runner.stop(who="dave")
        engine.flush()
        events = [
            (e.topic, e.payload.get("state"), e.payload["who"])
            for e in engine.bus.history()
            if e.topic.startswith("runner.")
        ]
    finally:
        engine.stop()
    assert events == [
        ("runner.started", None, "alice"),
        ("runner.state_changed", "running", "alice"),
        ("runner.state_changed", "paused", "bob"),
        ("runner.state_changed", "running", "carol"),
        ("runner.state_changed", "stopped", "dave"),
        ("runner.stopped", None, "dave"),
    ]


class Echo(Strategy):
    """Answers every bar with one journaled event of its own (a reaction to settle)."""

    strategy_name = "echo"

    def on_bar(self, ctx, bar):
        ctx._runner.submit(
            "mark.updated",
            {"symbol": "X", "price": bar["close"], "bid": 0, "ask": 0, "last": 0, "ts": 0},
            key="X",
        )


def test_lockstep_plays_a_step_only_once_the_previous_one_and_its_reactions_are_handled(tmp_path):
    from tradelab.broker import PaperBroker
    from tradelab.engine import Engine
    from tradelab.trading.execution import ExecutionDesk

    engine = Engine(journal_path=str(tmp_path / "j.duckdb")).start()
    try:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit))
        runner.add(Echo())
        runner.start()
        seen, threads = [], set()

        def step():
            # Before step k: k bars and the strategy's k answers were all handled.
            seen.append(runner.events_handled)
            threads.add(threading.current_thread().name)
            if len(seen) > 20:
                return False
            bar = {"symbol": "X", "interval": "1m", "start": len(seen), "end": len(seen) + 1}
            engine.submit(
                "market.bar",
                {
                    **bar,
                    "open": 1.0,
                    "high": 1.0,
                    "low": 1.0,
                    "close": 1.0,
                    "volume": 0,
                    "ticks": 0,
                },
                key="X",
            )
            return True

        runner.lockstep(step).result(timeout=30)
        assert seen == [2 * k for k in range(21)]
        assert threads == {"runner-thread"}
        runner.stop()
    finally:
        engine.stop()


class RecordingContext:
    def __init__(self):
        self.targets = []
        self.signals = []

    def target(self, symbol, quantity):
        self.targets.append((symbol, quantity))

    def signal(self, name, **details):
        self.signals.append((name, details["direction"]))

    def bars(self, symbol, interval):
        return ()  # a store that holds no bars from before

    @property
    def store(self):
        return self  # holds no bar series: get() answers the default

    def get(self, path, default=None):
        return default


def test_sma_cross_keeps_one_series_per_symbol_never_mixing_intervals():
    # 1m closes fall then rise (one upward cross); interleaved 15m bars far above them would,
    # mixed into the same averages, cross first and back. With interval '' the strategy keeps
    # the first interval it saw (1m); with interval '15m' only the 15m bars count.
    closes_1m = [10, 9, 8, 7, 8, 10, 12]
    bars = []
    for i, close in enumerate(closes_1m):
        bars.append({"symbol": "X", "interval": "1m", "close": float(close), "end": i})
        if i % 2:
            bars.append({"symbol": "X", "interval": "15m", "close": 100.0 + i, "end": i})
    first_seen, ctx = SmaCross(fast=2, slow=3), RecordingContext()
    first_seen.on_start(ctx)
    for bar in bars:
        first_seen.on_bar(ctx, bar)
    assert ctx.targets == [("X", 1)] and ctx.signals == [("X", "long")]
    only_15m, ctx15 = SmaCross(fast=2, slow=3, interval="15m"), RecordingContext()
    only_15m.on_start(ctx15)
    for bar in bars:
        only_15m.on_bar(ctx15, bar)
    assert ctx15.targets == []  # 101, 103, 105: rising from its first full window, no cross


class HistoryContext(RecordingContext):
    """A store that already holds `closes` as closed 1m bars of X, and the bar being handled."""

    def __init__(self, closes):
        super().__init__()
        self.held = [{"symbol": "X", "interval": "1m", "close": c, "end": i} for i, c in closes]

    def bars(self, symbol, interval):
        return tuple(self.held)

    def get(self, path, default=None):
        return {"1m": self.held} if path == "market.bars.X" else default


def test_sma_cross_goes_on_from_the_bars_the_store_holds_after_a_restart():
    # Closed before the restart: 10, 9, 8 (fast 8.5 under slow 9). The first bar after it,
    # 12, crosses (fast 10 over slow 9.67): a strategy that forgot them would wait 3 bars.
    bar = {"symbol": "X", "interval": "1m", "close": 12.0, "end": 3}
    ctx = HistoryContext([(0, 10.0), (1, 9.0), (2, 8.0), (3, 12.0)])
    strategy = SmaCross(fast=2, slow=3)
    strategy.on_start(ctx)
    strategy.on_bar(ctx, bar)
    assert ctx.targets == [("X", 1)] and ctx.signals == [("X", "long")]


class NanThreshold(Strategy):
    strategy_name = "nan_threshold"
    threshold = param.Number(default=float("nan"))


def test_parameters_json_cannot_hold_are_refused_before_the_strategy_is_added(tmp_path):
    bars = write_bars(tmp_path / "X.csv")
    with pytest.raises(InvalidInputError, match=r"'nan_threshold'.*params\.threshold is nan"):
        run_backtest(bars, [SmaCross(fast=2, slow=5), NanThreshold()])
    result = run_backtest(bars, SmaCross(fast=2, slow=5), journal_path=tmp_path / "ok.duckdb")
    assert result.fills  # the same run without it trades
    from tradelab.broker import PaperBroker
    from tradelab.engine import Engine
    from tradelab.trading.execution import ExecutionDesk

    engine = Engine(journal_path=str(tmp_path / "j.duckdb")).start()
    try:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit))
        runner.add(NanThreshold(threshold=1.0))
        runner.start(who="test")
        with pytest.raises(InvalidInputError, match=r"params\.threshold is inf"):
            runner.set_params("nan_threshold", {"threshold": float("inf")})
        assert runner.strategies["nan_threshold"].threshold == 1.0
        runner.stop(who="test")
    finally:
        engine.stop()


class Exits(Strategy):
    strategy_name = "exits"

    def on_bar(self, ctx, bar):
        raise SystemExit("a strategy called sys.exit")


def test_a_strategy_calling_sys_exit_is_failed_while_the_runner_goes_on(tmp_path):
    bars = write_bars(tmp_path / "X.csv")
    journal = tmp_path / "bt.duckdb"
    result = run_backtest(
        bars,
        [Exits(), SmaCross(fast=2, slow=5)],
        journal_path=journal,
        synchronous=False,
        stop_at_failure=False,
    )
    assert len(result.fills) > 0, "the runner's thread ended with the exiting strategy"
    failed = [
        e.payload["reason"]
        for e in JournalReader(journal).events(topic="runner.state_changed")
        if e.payload["state"] == "failed"
    ]
    assert failed == ["on_bar raised SystemExit: a strategy called sys.exit"]


class Scribbles(Strategy):
    strategy_name = "scribbles"

    def on_bar(self, ctx, bar):
        bar["close"] = 1.0


class Reads(Strategy):
    strategy_name = "reads"

    def on_start(self, ctx):
        self.closes = []

    def on_bar(self, ctx, bar):
        self.closes.append(bar["close"])


def test_a_strategy_cannot_change_the_bar_the_next_one_sees(tmp_path):
    bars = write_bars(tmp_path / "X.csv", n=5)
    journal = tmp_path / "bt.duckdb"
    reads = Reads()
    run_backtest(bars, [Scribbles(), reads], journal_path=journal, stop_at_failure=False)
    assert 1.0 not in reads.closes and len(reads.closes) == 5
    failed = [
        e.payload["reason"]
        for e in JournalReader(journal).events(topic="runner.state_changed")
        if e.payload["state"] == "failed"
    ]
    assert len(failed) == 1 and "does not support item assignment" in failed[0]


class ExitsEarly(Strategy):
    strategy_name = "exits_early"

    def on_start(self, ctx):
        self.outcomes = []

    def on_bar(self, ctx, bar):
        symbol = bar["symbol"]
        if self.outcomes:
            return
        try:
            ctx.set_exit(symbol, stop=50.0)  # flat, nothing working: refused
        except InvalidInputError as exc:
            self.outcomes.append(str(exc))
        ctx.set_exit(symbol)  # clearing is always fine
        ctx.buy(symbol, 1)
        ctx.set_exit(symbol, stop=50.0)  # the position the working order opens: kept
        self.outcomes.append("kept")


def test_exit_levels_need_a_position_or_a_working_order(tmp_path):
    strategy = ExitsEarly()
    run_backtest(write_bars(tmp_path / "X.csv", n=3), strategy)
    refused, kept = strategy.outcomes
    assert "holds no position and no working order in 'X'" in refused and kept == "kept"


def _session(path, act=None):
    """One session on the journal at `path`: a runner of SmaCross started and stopped as a Lab
    does (who='lab'), `act(runner)` in between; returns the strategy and the session's events."""
    from tradelab.broker import PaperBroker
    from tradelab.engine import Engine
    from tradelab.trading.execution import ExecutionDesk

    engine = Engine(journal_path=str(path)).start()
    try:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit))
        strategy = runner.add(SmaCross())
        runner.start(who="lab")
        if act is not None:
            act(runner)
        runner.stop(who="lab")
        engine.flush()
        events = [
            (e.payload["state"], e.payload["who"], e.payload["reason"])
            for e in engine.bus.history()
            if e.topic == "runner.state_changed"
        ]
    finally:
        engine.stop()
    return strategy, events


@pytest.mark.parametrize("held", ["stopped", "paused"])
def test_an_operators_stop_or_pause_and_parameters_outlive_a_restart(tmp_path, held):
    path = tmp_path / "j.duckdb"

    def operate(runner):
        runner.set_params("sma_cross", {"fast": "4", "slow": "12"}, who="bob")
        if held == "stopped":
            runner.stop_strategy("sma_cross", who="bob")
        else:
            runner.pause("sma_cross", who="bob")

    _session(path, operate)
    strategy, events = _session(path)  # a restart: nothing asked this time
    assert (strategy.fast, strategy.slow) == (4, 12)
    verb = "start" if held == "stopped" else "resume"
    kept = [e for e in events if e[0] == held]
    assert kept and kept[0][1] == "lab"
    assert kept[0][2] == f"{held} by bob before the restart; {verb} it to trade"
    # The session's own stop at its end is not an operator's: the next start trades again.
    if held == "stopped":
        _session(path, lambda runner: runner.start_strategy("sma_cross", who="carol"))
    else:
        _session(path, lambda runner: runner.resume("sma_cross", who="carol"))
    _, events = _session(path)
    assert events[0][:2] == ("running", "lab") and held not in [e[0] for e in events[:-1]]


class Fills(Strategy):
    strategy_name = "fills"

    def on_start(self, ctx):
        self.fills = []

    def on_fill(self, ctx, fill):
        self.fills.append((fill["trade_id"], ctx.position(fill["symbol"])))


def test_a_fill_the_reconciler_adopted_reaches_its_strategy_as_its_own_fills_do(tmp_path):
    # A fill whose report the broker dropped (or made before a new journal was started beside
    # its account) comes as reconciliation.fixed: the strategy must count it, or it trades
    # again what it already holds.
    from tradelab.broker import PaperBroker
    from tradelab.engine import Engine
    from tradelab.trading.execution import ExecutionDesk

    engine = Engine(journal_path=str(tmp_path / "j.duckdb")).start()
    try:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit))
        strategy = runner.add(Fills())
        runner.start(who="test")
        deadline = time.monotonic() + 10
        while runner.state_of("fills") != "running" and time.monotonic() < deadline:
            time.sleep(0.01)  # seeded from the store: the fix comes after, on the bus
        trade = {
            "fill_seq": 1, "trade_id": "PB-F1", "order_id": "fills-1", "broker_order_id": "B1",
            "symbol": "X", "side": "SELL", "quantity": 75, "price": 100.0, "fee": 0.0,
            "ts": 1, "strategy": "fills", "lot_size": 75, "position_id": "fills:X",
        }  # fmt: skip
        payload = {"kind": "missed_fill", "item": "PB-F1", "expected": None, "actual": 75,
                   "action": "adopted the broker's fill", "trade": trade}  # fmt: skip
        engine.submit("reconciliation.fixed", payload, key="PB-F1", wait=True)
        engine.wait_applied()  # published to the runner's inbox before its stop
        runner.stop(who="test")
    finally:
        engine.stop()
    assert strategy.fills == [("PB-F1", -75)]
    assert engine.store.get("trading.positions.fills:X")["net_quantity"] == -75
