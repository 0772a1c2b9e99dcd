"""PositionMonitor exits, exit levels over restarts, halts and a full inbox, scripted."""

from __future__ import annotations

import threading

import param
import pytest

from tests.test_runner_scripted import CE, LOT, PE, exits, fills, run_script
from tradelab.broker import PaperBroker
from tradelab.engine import Engine
from tradelab.market.ticks import Tick
from tradelab.runner import InstrumentUniverse, PlainInstrument, ShortStraddle, Strategy
from tradelab.runner.runner import StrategyRunner
from tradelab.trading.execution import ExecutionDesk


class Enter(Strategy):
    """Trade `quantity` (signed) on the first bar and set exit levels on its fill."""

    strategy_name = "enter"
    quantity = param.Integer(default=10)
    stop = param.Number(default=None, allow_None=True)
    target = param.Number(default=None, allow_None=True)
    trail = param.Number(default=None, allow_None=True)

    def on_start(self, ctx):
        self.done = False

    def on_bar(self, ctx, bar):
        if not self.done:
            self.done = True
            ctx.target(bar["symbol"], self.quantity)

    def on_fill(self, ctx, fill):
        if ctx.position(fill["symbol"]) == self.quantity:
            ctx.set_exit(fill["symbol"], stop=self.stop, target=self.target, trail=self.trail)


def monitor_script(prices):
    minutes = [f"10:{i:02d}" for i in range(len(prices))]
    return [(m, {"ABC": p}, None) for m, p in zip(minutes, prices, strict=True)]


PID = "enter:ABC"


@pytest.mark.parametrize(
    ("levels", "prices", "exit_fill", "updates"),
    [
        # Long 10 from 100, stop 95: 96 holds, 94 hits, the exit fills at the next quote, 93.
        (
            {"quantity": 10, "stop": 95.0},
            [100, 100, 96, 94, 93, 90],
            ("SELL", 10, 93.0),
            [("set", 95.0), ("exit_stop", 95.0)],
        ),
        # Long 10, target 110: 109 holds, 111 hits, the exit fills at 112.
        (
            {"quantity": 10, "target": 110.0},
            [100, 100, 109, 111, 112],
            ("SELL", 10, 112.0),
            [("set", None), ("exit_target", None)],
        ),
        # Long 10, trail 5: the stop starts at 95, from the fill price when it is armed, follows
        # the best mark (103 -> 107) and never falls back; 106 hits it, the exit fills at 105.
        (
            {"quantity": 10, "trail": 5.0},
            [100, 100, 108, 104, 112, 106, 105],
            ("SELL", 10, 105.0),
            [
                ("set", 95.0),
                ("trailed", 103.0),
                ("trailed", 107.0),
                ("exit_stop", 107.0),
            ],
        ),
        # Short 10 from 100, trail 4 and a stop at 103: the trail tightens it to 101 at 97.
        (
            {"quantity": -10, "stop": 103.0, "trail": 4.0},
            [100, 100, 97, 99, 102, 104],
            ("BUY", 10, 104.0),
            [("set", 103.0), ("trailed", 101.0), ("exit_stop", 101.0)],
        ),
        # Long 10 from 100, a stop at 90 and a trail of 2: the trail tightens it to 98 at once
        # (it stayed at 90 until a new high, so 97 did not exit and 91 was the next chance).
        (
            {"quantity": 10, "stop": 90.0, "trail": 2.0},
            [100, 100, 97, 96, 91],
            ("SELL", 10, 96.0),
            [("set", 98.0), ("exit_stop", 98.0)],
        ),
    ],
    ids=["stop", "target", "trailing", "short-trailing", "stop-and-trail"],
)
def test_position_monitor_exits_through_the_desk(tmp_path, levels, prices, exit_fill, updates):
    universe = InstrumentUniverse({"ABC": PlainInstrument("ABC", 1, 1000.0)})
    events, positions = run_script(
        tmp_path, Enter(**levels), monitor_script(prices), universe=universe, bar_symbol="ABC"
    )
    entry_side = "BUY" if levels["quantity"] > 0 else "SELL"
    assert fills(events) == [("ABC", entry_side, 10, 100.0), ("ABC", *exit_fill)]
    assert [(pid, reason, stop) for pid, reason, stop in exits(events)] == [
        (PID, reason, stop) for reason, stop in updates
    ]
    exit_order = next(
        e.payload
        for e in events
        if e.topic == "order.submitted" and e.payload["order_id"].startswith("exit-")
    )
    assert exit_order["strategy"] == "enter" and exit_order["side"] == exit_fill[0]
    assert positions == {"ABC": 0}
    [trip] = [e.payload for e in events if e.topic == "trade.logged"]
    assert trip["exit_price"] == exit_fill[2]


class ReArm(Enter):
    """Enter with a trailing stop, then set the same trail again on every bar and add a far
    target on the third: levels not given are kept, and the stop trailed so far stays."""

    strategy_name = "enter"

    def on_bar(self, ctx, bar):
        super().on_bar(ctx, bar)
        self.bars = getattr(self, "bars", 0) + 1
        if ctx.position(bar["symbol"]):
            ctx.set_exit(bar["symbol"], trail=self.trail)
            if self.bars == 3:
                ctx.set_exit(bar["symbol"], target=500.0)


def test_setting_an_exit_again_keeps_the_levels_it_does_not_name(tmp_path):
    universe = InstrumentUniverse({"ABC": PlainInstrument("ABC", 1, 1000.0)})
    events, positions = run_script(
        tmp_path, ReArm(quantity=10, trail=5.0), monitor_script([100, 100, 108, 104, 112, 106, 105]),
        universe=universe, bar_symbol="ABC",
    )  # fmt: skip
    # As with the trail set once: the stop follows 95 -> 103 -> 107; 106 hits it, exit at 105.
    assert fills(events) == [("ABC", "BUY", 10, 100.0), ("ABC", "SELL", 10, 105.0)]
    assert positions == {"ABC": 0}
    stops = [stop for _, reason, stop in exits(events) if reason == "set" and stop is not None]
    assert stops and all(stop == max(stops[: i + 1]) for i, stop in enumerate(stops))
    [stopped] = [e.payload for e in events if e.topic == "trade.exit_updated"
                 and e.payload["reason"] == "exit_stop"]  # fmt: skip
    assert (stopped["stop"], stopped["target"], stopped["trail"]) == (107.0, 500.0, 5.0)


def test_exit_levels_survive_a_restart_trailed_as_far_as_they_were(tmp_path):
    universe = InstrumentUniverse({"ABC": PlainInstrument("ABC", 1, 1000.0)})
    before, _ = run_script(
        tmp_path, Enter(quantity=10, trail=5.0), monitor_script([100, 100, 108]),
        universe=universe, bar_symbol="ABC",
    )  # fmt: skip
    assert exits(before)[-1] == (PID, "trailed", 103.0)
    # The same journal, a new runner: Enter orders nothing (it holds its 10) and sets no level.
    after = [(f"11:{i:02d}", {"ABC": p}, None) for i, p in enumerate([104, 112, 106, 105])]
    events, positions = run_script(
        tmp_path, Enter(quantity=10, trail=5.0), after, universe=universe, bar_symbol="ABC"
    )
    # 104 is above the stop of 103; 112 trails it from the best of 108 to 107; 106 hits it.
    assert exits(events) == [(PID, "trailed", 107.0), (PID, "exit_stop", 107.0)]
    assert fills(events) == [("ABC", "SELL", 10, 105.0)]
    assert positions == {"ABC": 0}


class Gate(Strategy):
    """Holds the runner thread inside its first on_bar until the test releases it."""

    strategy_name = "gate"

    def __init__(self, **params):
        super().__init__(**params)
        self.entered, self.release = threading.Event(), threading.Event()
        self.ticks = 0

    def on_bar(self, ctx, bar):
        self.entered.set()
        assert self.release.wait(30)

    def on_tick(self, ctx, tick):
        self.ticks += 1


def test_full_inbox_drops_ticks_counted_and_a_dropped_event_stops_every_strategy(tmp_path):
    from tradelab.journal import JournalReader

    journal = tmp_path / "j.duckdb"
    engine = Engine(journal_path=str(journal), writer_process=False).start()
    try:
        runner = StrategyRunner(
            engine, ExecutionDesk(PaperBroker(), engine.submit), inbox_limit=3, name="small"
        )
        gate, other = Gate(), Strategy(name="other")
        runner.add(gate)
        runner.add(other)
        runner.start(who="test")
        bar = {"symbol": "ABC", "interval": "1m", "start": 0, "end": 60, "open": 1.0}
        bar |= {"high": 1.0, "low": 1.0, "close": 1.0, "volume": 0, "ticks": 0}
        engine.submit("market.bar", bar, key="ABC")
        assert gate.entered.wait(30)  # the runner thread is now held: nothing leaves the inbox
        quote = Tick("ABC", 1, 1.0, 1.0, 1.0).to_payload()
        for symbol in ("ABC", "D", "E"):  # fills the inbox
            engine.publish_transient("market.tick", {**quote, "symbol": symbol}, key=symbol)
        for _ in range(4):  # full: each takes the place of the one of its symbol waiting
            engine.publish_transient("market.tick", quote, key="ABC")
        assert runner.metrics()["inbox_depth"] == 3 and runner.ticks_superseded == 4
        for symbol in ("B", "C"):  # full, and no tick of theirs waiting: dropped
            engine.publish_transient("market.tick", {**quote, "symbol": symbol}, key=symbol)
        assert runner.metrics()["inbox_depth"] == 3 and runner.ticks_dropped == 2
        assert runner.events_dropped == 0
        # Commands come from people and are not bounded: a pause still gets in.
        runner.pause("other", who="ops")
        assert runner.metrics()["inbox_depth"] == 4
        # A journaled event that finds the inbox full is dropped too; the kernel does not wait.
        engine.submit("market.bar", {**bar, "start": 60, "end": 120}, key="ABC")
        engine.flush()
        assert runner.events_dropped == 1
        gate.release.set()
        runner.stop(who="test")
        engine.flush()
    finally:
        engine.stop()
    states = [
        (e.payload["strategy"], e.payload["state"], e.payload["who"], e.payload["reason"])
        for e in JournalReader(journal).events(topic="runner.state_changed")
    ]
    overflow = "inbox overflow: events were dropped"
    # Both are stopped by the runner right after the held bar, before anything else is fed to
    # them (a strategy never sees a gap): the queued ticks and the pause find them stopped.
    assert states[2:] == [
        ("gate", "stopped", "runner", overflow),
        ("other", "stopped", "runner", overflow),
    ]
    assert gate.ticks == 0


def halt(gate):
    gate.halt(by="test", reason="checking the feed")


def resume(gate):
    gate.resume(by="test", reason="feed checked")


def test_an_exit_refused_in_a_halt_is_tried_again_a_minute_later_until_trading_resumes(
    tmp_path, caplog
):
    # A halt refuses the CE's stop exit and the time exit. Neither is dropped: the strategy
    # keeps running, each exit is tried again a minute of market time later (not on every
    # mark), and once an operator resumes, both go out.
    steps = [
        ("09:20", {"NIFTY": 24010.0, CE: 150.0, PE: 140.0}, None, None),
        ("09:21", {"NIFTY": 24000.0, CE: 150.0, PE: 140.0}, None, None),  # both legs fill
        ("09:30", {"NIFTY": 24100.0, CE: 200.0, PE: 120.0}, None, halt),  # stop exit refused
        ("09:30", {"NIFTY": 24100.0, CE: 201.0, PE: 120.0}, None, None),  # too soon to retry
        ("09:31", {"NIFTY": 24110.0, CE: 205.0, PE: 118.0}, None, None),  # refused again
        ("09:32", {"NIFTY": 24110.0, CE: 206.0, PE: 118.0}, None, resume),  # out
        ("09:33", {"NIFTY": 24110.0, CE: 207.0, PE: 118.0}, None, None),  # the CE exit fills
        ("15:15", {"NIFTY": 24200.0, CE: 210.0, PE: 100.0}, None, halt),  # time exit refused
        ("15:16", {"NIFTY": 24200.0, CE: 210.0, PE: 101.0}, None, resume),  # time exit again
        ("15:17", {"NIFTY": 24200.0, CE: 210.0, PE: 102.0}, None, None),  # PE exit fills
    ]
    strategy = ShortStraddle(entry_time="09:20", exit_time="15:15", stop_loss_pct=30.0)
    events, positions = run_script(tmp_path, strategy, steps, risk=True)
    denied = [(e.payload["symbol"], e.payload["side"]) for e in events if e.topic == "order.denied"]
    assert denied == [(CE, "BUY"), (CE, "BUY"), (PE, "BUY")]
    assert [(p, r) for p, r, _ in exits(events)][2:] == [
        (f"short_straddle:{CE}", "exit_stop"),
        (f"short_straddle:{CE}", "exit_refused"),
        (f"short_straddle:{CE}", "exit_stop"),
        (f"short_straddle:{CE}", "exit_refused"),
        (f"short_straddle:{CE}", "exit_stop"),
    ]
    assert [f for f in fills(events) if f[1] == "BUY"] == [
        (CE, "BUY", LOT, 207.0),
        (PE, "BUY", LOT, 102.0),
    ]
    assert positions == {CE: 0, PE: 0}  # the PE's time exit at 15:16: the strategy ran on
    # Refused twice for one reason, journaled twice: told once on the log, not every retry.
    told = [r.getMessage() for r in caplog.records if "exit of short_straddle:" in r.getMessage()]
    assert len(told) == 1 and "refused" in told[0]


class BuyOneLot(Strategy):
    strategy_name = "buy_one_lot"

    def on_bar(self, ctx, bar):
        ctx.target(CE, LOT)  # lets a refusal through: no try/except of its own


def test_a_strategy_whose_order_is_refused_in_a_halt_keeps_running_and_trades_after_it(tmp_path):
    steps = [
        ("09:20", {"NIFTY": 24010.0, CE: 150.0}, None, halt),  # refused: the hook raises
        ("09:21", {"NIFTY": 24010.0, CE: 151.0}, None, resume),  # bought
        ("09:22", {"NIFTY": 24010.0, CE: 152.0}, None, None),  # filled
    ]
    events, positions = run_script(tmp_path, BuyOneLot(), steps, risk=True)
    assert [e.payload["symbol"] for e in events if e.topic == "order.denied"] == [CE]
    assert fills(events) == [(CE, "BUY", LOT, 152.0)]
    assert positions == {CE: LOT}


def test_each_inbox_overflow_that_stops_strategies_is_said(tmp_path, caplog):
    # The first was said; one after an operator started them again stopped them in silence.
    engine = Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False).start()
    try:
        runner = StrategyRunner(
            engine, ExecutionDesk(PaperBroker(), engine.submit), threaded=False, name="small"
        )
        runner.add(Strategy(name="one"))
        runner.start(who="test")
        for _ in range(2):
            runner._inbox.overflowed = True  # as a full inbox leaves it for the runner
            runner._dispatch(lambda: None)
            assert runner.state_of("one") == "stopped"
            assert runner.overflow_stopped == (runner.current_seq, ["one"])
            runner.start_strategy("one", who="ops")
        said = [r for r in caplog.records if "its inbox overflowed" in r.getMessage()]
        assert len(said) == 2 and "one stopped after seq" in said[1].getMessage()
        runner.stop(who="test")
    finally:
        engine.stop()
