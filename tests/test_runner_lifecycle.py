"""StrategyRunner lifecycle: who asked, lockstep steps, restarts, and sma_cross's series of bars."""

import threading
import time

import pytest

from tradelab.runner import SmaCross, Strategy
from tradelab.runner.runner import StrategyRunner


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
def test_an_operators_stop_or_pause_and_parameters_outlive_a_restart(tmp_path, held, caplog):
    path = tmp_path / "j.duckdb"

    def operate(runner):
        runner.set_params("sma_cross", {"fast": "4", "slow": "12"}, who="bob")
        if held == "stopped":
            runner.stop_strategy("sma_cross", who="bob")
        else:
            runner.pause("sma_cross", who="bob")

    _session(path, operate)
    with caplog.at_level("WARNING"):
        strategy, events = _session(path)  # a restart: nothing asked this time
    assert (strategy.fast, strategy.slow) == (4, 12)
    # The configured values they replace are named: a --param given for this run is not
    # dropped without a word.
    default = SmaCross()
    assert f"fast=4 (configured {default.fast}), slow=12 (configured {default.slow})" in (
        caplog.text
    )
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


def test_a_strategy_that_sets_its_own_parameter_is_journaled_as_a_change_by_it(tmp_path):
    # `self.size = 5` in a hook went unrecorded: the store (and the console) kept size 1 while
    # it traded 5, and a restart brought back 1.
    import param

    from tests.test_backtest import write_bars
    from tradelab.analytics import Analytics
    from tradelab.journal import JournalReader
    from tradelab.runner import Strategy, run_backtest

    class SelfTune(Strategy):
        size = param.Integer(default=1, bounds=(1, 10))

        def on_bar(self, ctx, bar):
            self.bars = getattr(self, "bars", 0) + 1
            if self.bars == 3:
                self.size = 5
            if self.bars in (2, 4):
                ctx.buy(bar["symbol"], self.size)

    journal = tmp_path / "bt.duckdb"
    result = run_backtest(write_bars(tmp_path / "ABC.csv"), SelfTune(), journal_path=journal)
    assert [f["quantity"] for f in result.fills] == [1, 5]
    reader = JournalReader(journal)
    [event] = reader.events(topic="runner.params_changed")
    changed = event.payload
    assert (changed["params"], changed["previous"]) == ({"size": 5}, {"size": 1})
    assert changed["who"] == "self_tune"
    state = Analytics(journal).state_at(seq=reader.events()[-1].seq)
    assert state.get("runner.by_strategy.self_tune.params")["size"] == 5
