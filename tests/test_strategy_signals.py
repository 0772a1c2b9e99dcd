"""Strategy signals: `ctx.signal` / `ctx.clear_signal` journal `signal.detected` / `.cleared`, the
store keeps one active row per signal (the console's Signals table), bad names and details are
refused before anything is journaled, a restart remembers what is active, and the example
strategies signal what they trade."""

import math

import pandas as pd
import param
import pytest

from tradelab.analytics import Analytics
from tradelab.broker import PaperBroker
from tradelab.engine import Engine
from tradelab.errors import InvalidInputError, OrderRejectedError
from tradelab.journal import JournalReader
from tradelab.runner import SmaCross, Strategy
from tradelab.runner.backtest import run_backtest
from tradelab.runner.runner import StrategyRunner
from tradelab.trading.execution import ExecutionDesk


def write_bars(path, n=8):
    lines = ["Date,Open,High,Low,Close"]
    for i in range(n):
        lines.append(f"2024-03-{i + 1:02d},{100 + i},{101 + i},{99 + i},{100 + i}")
    path.write_text("\n".join(lines) + "\n")
    return path


class Scripted(Strategy):
    """Signals on bar 2, again (new details) on bar 4, clears on bar 6 and tries once more on 7."""

    strategy_name = "scripted"

    def on_start(self, ctx):
        self.bar = 0
        self.seen = {}  # bar -> (active rows in the store, clear_signal's answer)

    def on_bar(self, ctx, bar):
        self.bar += 1
        answer = None
        if self.bar == 2:
            assert ctx.signal("breakout", level=101.0, side="BUY") == "scripted-breakout"
            self.second_bar_end = bar["end"]
        elif self.bar == 4:
            ctx.signal("breakout", level=103.0, side="SELL")
        elif self.bar in (6, 7):
            answer = ctx.clear_signal("breakout")
        self.seen[self.bar] = (dict(ctx.store.get("signals.active", None) or {}), answer)
        self.seen[self.bar] += (ctx.active_signals(),)


def test_a_signal_is_journaled_replaced_and_cleared_once(tmp_path):
    journal = tmp_path / "bt.duckdb"
    strategy = Scripted()
    run_backtest(write_bars(tmp_path / "ABC.csv"), strategy, journal_path=journal)

    active, _, names = strategy.seen[2]
    assert names == ["breakout"]
    row = active["scripted-breakout"]
    assert (row["strategy"], row["name"], row["level"], row["side"]) == (
        "scripted",
        "breakout",
        101.0,
        "BUY",
    )
    assert row["signal_id"] == "scripted-breakout" and row["seq"] > 0 and row["detected_ts"] > 0
    assert row["ts"] == strategy.second_bar_end  # the market clock of the bar it saw
    # Detected again: the same row, its details replaced.
    active, _, _ = strategy.seen[4]
    assert list(active) == ["scripted-breakout"] and active["scripted-breakout"]["side"] == "SELL"
    # Cleared: gone; a second clear answers False and journals nothing.
    assert strategy.seen[6] == ({}, True, [])
    assert strategy.seen[7] == ({}, False, [])
    events = [
        (e.topic, e.key, e.payload.get("level"))
        for e in JournalReader(journal).events()
        if e.topic.startswith("signal.")
    ]
    assert events == [
        ("signal.detected", "scripted-breakout", 101.0),
        ("signal.detected", "scripted-breakout", 103.0),
        ("signal.cleared", "scripted-breakout", None),
    ]
    rows = Analytics(journal).sql("SELECT event, signal_id, strategy, name, time FROM signals")
    assert rows.drop(columns="time").values.tolist() == [
        ["detected", "scripted-breakout", "scripted", "breakout"],
        ["detected", "scripted-breakout", "scripted", "breakout"],
        ["cleared", "scripted-breakout", "scripted", "breakout"],
    ]
    # On the market clock, each at the end of the daily bar it was seen on (bars 2, 4 and 6 of
    # 2024-03-01..08 end at 23:59:59 of their own date): not the run's wall clock.
    times = [t.isoformat() for t in rows["time"]]
    assert times == ["2024-03-02T23:59:59", "2024-03-04T23:59:59", "2024-03-06T23:59:59"]


class BadSignals(Strategy):
    strategy_name = "bad_signals"

    def on_start(self, ctx):
        self.errors = []

    def on_bar(self, ctx, bar):
        if self.errors:
            return
        attempts = [
            lambda: ctx.signal("a.b"),
            lambda: ctx.signal(""),
            lambda: ctx.signal("x", seq=5),
            lambda: ctx.signal("x", ts=5),
            lambda: ctx.signal("x", strategy="other", name="y"),
            lambda: ctx.signal("x", level=object()),
            lambda: ctx.clear_signal("a b"),
        ]
        for attempt in attempts:
            try:
                attempt()
            except InvalidInputError as exc:
                self.errors.append(str(exc))
            else:
                self.errors.append("accepted")
        self.left_active = ctx.active_signals()


def test_bad_signal_names_and_details_are_refused_naming_them_and_journal_nothing(tmp_path):
    journal = tmp_path / "bt.duckdb"
    strategy = BadSignals()
    run_backtest(write_bars(tmp_path / "ABC.csv"), strategy, journal_path=journal)
    dotted, empty, reserved, own_time, two_reserved, unencodable, spaced = strategy.errors
    assert "signal 'a.b' of 'bad_signals'" in dotted and "not a valid id" in dotted
    assert "signal name must be non-empty text" in empty
    assert "seq is set by tradelab" in reserved
    assert "ts is set by tradelab" in own_time
    assert "name, strategy are set by tradelab" in two_reserved
    assert "level" in unencodable
    assert "signal 'a b'" in spaced
    assert strategy.left_active == []
    assert not [e for e in JournalReader(journal).events() if e.topic.startswith("signal.")]


class Remembers(Strategy):
    strategy_name = "remembers"
    act = param.Selector(default="signal", objects=["signal", "clear"])

    def on_start(self, ctx):
        self.active_at_start = ctx.active_signals()
        if self.act == "signal":
            ctx.signal("regime", state="trending")
        else:
            self.cleared = ctx.clear_signal("regime")


def run_session(journal, strategy):
    engine = Engine(journal_path=str(journal)).start()
    try:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit))
        runner.add(strategy)
        runner.start(who="test")
        runner.stop(who="test")
        engine.flush()
        return dict(engine.store.get("signals.active", None) or {})
    finally:
        engine.stop()


def test_a_restarted_strategy_knows_its_active_signals_and_can_clear_them(tmp_path):
    journal = tmp_path / "live.duckdb"
    first = Remembers(act="signal")
    assert list(run_session(journal, first)) == ["remembers-regime"]
    assert first.active_at_start == []
    again = Remembers(act="clear")
    assert run_session(journal, again) == {}
    assert again.active_at_start == ["regime"] and again.cleared is True


class SignalsThenFails(Strategy):
    strategy_name = "signals_then_fails"

    def on_bar(self, ctx, bar):
        if not ctx.active_signals():
            ctx.signal("setup", level=bar["close"])
        else:
            raise RuntimeError("broken on purpose")


def test_a_failed_strategys_signals_are_cleared(tmp_path):
    journal = tmp_path / "bt.duckdb"
    run_backtest(write_bars(tmp_path / "ABC.csv"), SignalsThenFails(), journal_path=journal)
    topics = [e.topic for e in JournalReader(journal).events() if e.topic.startswith("signal.")]
    assert topics == ["signal.detected", "signal.cleared"]


class LimitThenCancel(Strategy):
    """A limit buy far below the market on bar 2, cancelled on bar 4; records what it saw."""

    strategy_name = "limit_then_cancel"

    def on_start(self, ctx):
        self.working, self.errors, self.last_bar_ok = [], [], True

    def on_bar(self, ctx, bar):
        bars = ctx.bars(bar["symbol"], bar["interval"])
        self.last_bar_ok &= bars[-1]["start"] == bar["start"]
        if len(bars) == 2:
            self.order = ctx.buy(bar["symbol"], 1, order_type="LIMIT", limit_price=1.0)
        elif len(bars) == 4:
            ctx.cancel(self.order)
            for bad in (self.order, "nobody-1-1"):  # cancelled already; never placed
                try:
                    ctx.cancel(bad)
                except (InvalidInputError, OrderRejectedError) as exc:
                    self.errors.append(str(exc))
        self.working.append(ctx.working(bar["symbol"]))


def test_a_strategy_cancels_its_working_order_and_reads_bars_as_of_the_bar_handled(tmp_path):
    journal = tmp_path / "bt.duckdb"
    strategy = LimitThenCancel()
    result = run_backtest(write_bars(tmp_path / "ABC.csv"), strategy, journal_path=journal)
    # Working from bar 2 until it is cancelled on bar 4: no longer once cancel() returns.
    assert strategy.working == [0, 1, 1, 0, 0, 0, 0, 0] and not result.fills
    statuses = [e.topic for e in JournalReader(journal).events() if e.topic.startswith("order.")]
    assert statuses == ["order.submitted", "order.accepted", "order.cancelled"]
    again, unknown = strategy.errors
    assert f"order {strategy.order!r} is not a working order" in again and "cancelled" in again
    assert "'nobody-1-1' is not a working order of strategy 'limit_then_cancel'" in unknown
    assert strategy.last_bar_ok


def test_bars_never_show_a_strategy_a_bar_after_the_one_it_handles():
    from types import SimpleNamespace

    from tradelab.runner.context import StrategyContext

    held = tuple({"start": i, "end": i + 1, "close": float(i)} for i in range(10))
    runner = SimpleNamespace(
        engine=SimpleNamespace(store=SimpleNamespace(get=lambda path, default: held)),
        current_ts=6,  # handling the bar that ends at 6; the store has three more already
        bar_intervals=None,
        quoted_symbols=None,
    )
    ctx = StrategyContext(runner, Scripted())
    assert [b["end"] for b in ctx.bars("X", "1m")] == [1, 2, 3, 4, 5, 6]
    runner.current_ts = 10
    assert len(ctx.bars("X", "1m")) == 10


class ChangesWindows(SmaCross):
    """sma_cross whose windows an operator changes at bar 100 (as set_params would)."""

    new_slow = param.Integer(default=30)

    def on_bar(self, ctx, bar):
        self.seen = getattr(self, "seen", 0) + 1
        if self.seen == 100:
            self.param.update(slow=self.new_slow)
        super().on_bar(ctx, bar)


@pytest.mark.parametrize("new_slow", [30, 10], ids=["longer", "shorter"])
def test_sma_cross_changed_windows_average_the_new_number_of_closes(tmp_path, new_slow):
    closes = [round(100 + 10 * math.sin(i / 7), 2) for i in range(400)]
    path = tmp_path / "SINE.csv"
    day = pd.Timestamp("2020-01-01")
    rows = ["Date,Open,High,Low,Close"]
    for i, c in enumerate(closes):
        rows.append(f"{(day + pd.Timedelta(days=i)):%Y-%m-%d},{c},{c},{c},{c}")
    path.write_text("\n".join(rows) + "\n")
    journal = tmp_path / "j.duckdb"
    run_backtest(path, ChangesWindows(fast=5, slow=20, new_slow=new_slow), journal_path=journal)
    signals = [e.payload for e in JournalReader(journal).events(topic="signal.detected")]
    after = [s for s in signals if s["ts"] >= int((day + pd.Timedelta(days=100)).value)]
    assert len(after) >= 4  # it keeps trading on the new windows
    for signal in after:
        i = int((pd.Timestamp(signal["ts"]) - day) / pd.Timedelta(days=1))
        expected = sum(closes[i - new_slow + 1 : i + 1]) / new_slow
        assert signal["slow_sma"] == pytest.approx(expected)


def test_sma_cross_without_an_interval_reads_the_shortest_series_even_if_a_longer_bar_comes_first():
    # After a restart at a quarter hour, the bars of one end come 15m, 1h, 1m: it took the
    # 15m series for the rest of the run (15 round trips where the uninterrupted run made 70).
    from types import SimpleNamespace

    from tradelab.runner import SmaCross

    series = {"1m": [], "15m": [], "1h": []}
    seen = []
    ctx = SimpleNamespace(
        store=SimpleNamespace(
            get=lambda path, default=None: series if path.endswith("NIFTY") else default
        ),
        bars=lambda symbol, interval: seen.append(interval) or (),
    )
    strategy = SmaCross(fast=2, slow=3)
    strategy.on_start(ctx)
    bar = {"symbol": "NIFTY", "close": 1.0, "end": 900}
    for interval in ("15m", "1h", "1m"):
        strategy.on_bar(ctx, {**bar, "interval": interval})
    assert seen == ["1m"]  # only the 1m bar was read (its history asked for once)


def test_sma_crosss_averages_are_exact_sums_the_same_on_every_python(tmp_path):
    # Python 3.12 changed how sum() adds floats: the averages' last digit, and so the journal's
    # content hash, differed between 3.11 and 3.12 for one bar file. Correctly rounded sums
    # (math.fsum) are the same everywhere. These closes cross at bar 5, where sum() of 3.11
    # and fsum() give different averages.
    from math import fsum

    from tradelab.journal import JournalReader
    from tradelab.runner import SmaCross
    from tradelab.runner.backtest import run_backtest

    closes = [2.2, 3.3, 1.3, 2.2, 1.3, 1.3]
    rows = [f"2024-01-0{i + 1},{c},{c},{c},{c}" for i, c in enumerate(closes)]
    (tmp_path / "ABC.csv").write_text("Date,Open,High,Low,Close\n" + "\n".join(rows) + "\n")
    journal = tmp_path / "bt.duckdb"
    run_backtest(tmp_path / "ABC.csv", SmaCross(fast=2, slow=3), journal_path=journal)
    signals = [e.payload for e in JournalReader(journal).events(topic="signal.detected")]
    [signal] = [s for s in signals if s["direction"] == "long"]  # bar 5's (4 and 6: short)
    assert (signal["fast_sma"], signal["slow_sma"]) == (
        fsum([2.2, 1.3]) / 2,
        fsum([1.3, 2.2, 1.3]) / 3,
    )
