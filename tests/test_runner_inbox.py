"""The runner's inbox: latest quote wins for a strategy slower than the feed, journaled events
keep their place, and a stop is not queued behind a backlog of ticks."""

import queue
import threading
import time
from types import SimpleNamespace

import pytest

from tradelab.broker import PaperBroker
from tradelab.engine import Engine
from tradelab.errors import LifecycleError
from tradelab.events import Event
from tradelab.journal import JournalReader
from tradelab.runner import Strategy
from tradelab.runner.inbox import RunnerInbox
from tradelab.runner.runner import StrategyRunner
from tradelab.trading.execution import ExecutionDesk


def tick(symbol, price):
    return Event(0, 0, "market.tick", symbol, {"symbol": symbol, "last": price}, False, 1)


def journaled(seq, topic="trade.executed"):
    return Event(seq, 0, topic, "A", {"symbol": "A", "price": 1.0}, False, 1)


def drained(inbox):
    out = []
    while inbox.qsize():
        item = inbox.get(False)
        if item is not None:  # None: a tick superseded
            out.append(
                (item.payload["symbol"], item.payload["last"]) if item.seq == 0 else item.seq
            )
    return out


def test_a_waiting_tick_is_superseded_by_its_symbols_next_in_feed_order_never_past_an_event():
    inbox = RunnerInbox(limit=100)
    fed = (tick("A", 1), tick("B", 1), tick("A", 2), journaled(7), tick("A", 3), tick("A", 4))
    for item in fed:
        (inbox.put_journaled if item.seq else inbox.put_tick)(item)
    # A's 2 superseded A's 1 and comes after B's 1, as fed; A's 3 and 4 came after seq 7.
    assert drained(inbox) == [("B", 1), ("A", 2), 7, ("A", 4)]
    assert inbox.ticks_superseded == 2 and inbox.ticks_dropped == 0
    inbox.put_tick(tick("A", 5))  # nothing of A waiting: it queues
    assert drained(inbox) == [("A", 5)]


def test_marks_are_prices_too_a_tick_supersedes_across_them_and_a_mark_its_predecessor():
    # A live session journals a mark for nearly every tick: as a barrier, no tick was ever
    # superseded, and a strategy 4 ms a tick slower than the feed fell minutes behind it.
    inbox = RunnerInbox(limit=100)
    fed = (tick("A", 1), journaled(7, "mark.updated"), tick("A", 2), journaled(8, "mark.updated"))
    for item in fed:
        (inbox.put_journaled if item.seq else inbox.put_tick)(item)
    assert drained(inbox) == [("A", 2), 8]
    assert inbox.ticks_superseded == 2
    for item in (tick("A", 3), journaled(9, "market.bar"), tick("A", 4)):
        (inbox.put_journaled if item.seq else inbox.put_tick)(item)
    assert drained(inbox) == [("A", 3), 9, ("A", 4)]  # a bar still comes after its ticks


def test_superseded_entries_do_not_count_against_the_bound():
    inbox = RunnerInbox(limit=3)
    for price in range(50):
        inbox.put_tick(tick("A", price))
        inbox.put_journaled(journaled(price + 1, "mark.updated"))
    assert inbox.qsize() == 2 and not inbox.overflowed and inbox.ticks_dropped == 0
    # Crowded (3 entries with the dead one), the newest took its waiting one's place.
    assert inbox._queue.qsize() == 3
    assert sorted(drained(inbox), key=str) == [("A", 49), 50]


def test_a_full_inbox_keeps_a_symbols_newest_tick_in_the_place_of_its_waiting_one():
    inbox = RunnerInbox(limit=2)
    for item in (tick("A", 1), tick("B", 1), tick("A", 2), tick("C", 1)):
        inbox.put_tick(item)
    assert drained(inbox) == [("A", 2), ("B", 1)]
    assert (inbox.ticks_superseded, inbox.ticks_dropped) == (1, 1)


class SlowOnTicks(Strategy):
    """Takes 20 ms a tick; says what it saw and whether on_stop ran. Its first tick waits for
    `go`, so the test's burst is all published before it looks for the next quote (publishing
    2,000 ticks can take longer than 20 ms on a busy machine)."""

    strategy_name = "slow"

    def __init__(self, **params):
        super().__init__(**params)
        self.seen, self.stopped = [], False
        self.first, self.go = threading.Event(), threading.Event()

    def on_tick(self, ctx, tick):
        self.seen.append(tick["last"])
        if not self.first.is_set():
            self.first.set()
            assert self.go.wait(30)
        time.sleep(0.02)

    def on_stop(self, ctx):
        self.stopped = True


def test_a_strategy_slower_than_the_feed_sees_the_latest_quote_and_stops_at_once(tmp_path):
    journal = tmp_path / "j.duckdb"
    with Engine(journal_path=str(journal), writer_process=False) as engine:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit), name="r")
        slow = runner.add(SlowOnTicks())
        runner.start(who="test")
        engine.publish_transient("market.tick", {"symbol": "A", "last": 0.0}, key="A")
        assert slow.first.wait(30)
        for i in range(1, 2001):  # 40 s of the strategy's time, published at once
            engine.publish_transient("market.tick", {"symbol": "A", "last": float(i)}, key="A")
        slow.go.set()
        time.sleep(0.1)
        started = time.perf_counter()
        assert runner.stop(who="test", timeout=30) is True
        took = time.perf_counter() - started
        engine.flush()
    # The strategy saw the newest quote after the one it was in, not the 2,000 in between.
    assert slow.seen[:2] == [0.0, 2000.0] and slow.stopped
    assert runner.ticks_superseded >= 1998
    assert took < 5  # generous: the backlog would take 40 s; a shared machine may stall
    states = [
        e.payload["state"] for e in JournalReader(journal).events(topic="runner.state_changed")
    ]
    assert states[-1] == "stopped"
    assert [e.topic for e in JournalReader(journal).events(topic="runner.stopped")]


class Stuck(Strategy):
    strategy_name = "stuck"

    def __init__(self, **params):
        super().__init__(**params)
        self.entered, self.release = threading.Event(), threading.Event()

    def on_tick(self, ctx, tick):
        self.entered.set()
        assert self.release.wait(30)


def runner_stuck_in_a_tick(engine, stall_after_s):
    """A started runner "r" whose one strategy is inside on_tick until `stuck.release` is set."""
    runner = StrategyRunner(
        engine,
        ExecutionDesk(PaperBroker(), engine.submit),
        name="r",
        hook_stall_after_s=stall_after_s,
    )
    stuck = runner.add(Stuck())
    runner.start(who="test")
    engine.publish_transient("market.tick", {"symbol": "A", "last": 1.0}, key="A")
    assert stuck.entered.wait(30)
    return runner, stuck


def test_a_stop_that_times_out_behind_a_hook_says_so(tmp_path, caplog):
    with Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False) as engine:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit), name="r")
        stuck = runner.add(Stuck())
        runner.start(who="test")
        engine.publish_transient("market.tick", {"symbol": "A", "last": 1.0}, key="A")
        assert stuck.entered.wait(30)
        assert runner.stop(who="test", timeout=0.2) is False
        assert runner.stopped_in_time is False
        assert "did not stop within 0.2 s" in caplog.text
        stopped_calls = []
        caplog.set_level("INFO", logger="tradelab.runner.runner")
        stuck.on_stop = lambda ctx: stopped_calls.append(ctx)
        stuck.release.set()  # the hook returns after the session's stop: on_stop is not called
        runner._thread.join(10)
        assert stopped_calls == [] and not runner._thread.is_alive()
        assert "its stop came after the session ended; on_stop not called" in caplog.text
        assert "failed to handle" not in caplog.text
        with pytest.raises(LifecycleError, match="was stopped"):
            runner.add(Stuck(name="late"))  # it would never start
        assert runner.stop(who="test") is False  # a second stop says the same


def test_a_stop_behind_a_hook_stalled_already_waits_a_short_grace_and_says_why(tmp_path, caplog):
    # A hook in a loop held Ctrl-C for the whole 60 s timeout, with nothing said.
    with Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False) as engine:
        runner, stuck = runner_stuck_in_a_tick(engine, stall_after_s=0.2)
        deadline = time.monotonic() + 30
        while runner.metrics()["stalled_hook"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        assert runner.stop(who="test", timeout=60) is False
        assert time.monotonic() - started < 30  # 1 s of grace; generous for a shared machine
        assert "strategy stuck's on_tick has run" in caplog.text
        assert "waiting 1 s more for it" in caplog.text
        assert "did not stop within 1 s" in caplog.text
        stuck.release.set()


@pytest.mark.parametrize("threaded", [True, False])
def test_operator_commands_after_the_runner_stopped_are_refused_not_queued(tmp_path, threaded):
    # Queued after a stop, nothing would ever read them, and set_params returned the values
    # as if they were applied.
    from tradelab.runner import SmaCross

    engine = Engine(journal_path=str(tmp_path / "j.duckdb")).start()
    try:
        runner = StrategyRunner(
            engine, ExecutionDesk(PaperBroker(), engine.submit), threaded=threaded
        )
        runner.add(SmaCross(fast=3))
        runner.start()
        runner.stop()
        commands = {
            "pause": lambda: runner.pause("sma_cross"),
            "resume": lambda: runner.resume("sma_cross"),
            "stop": lambda: runner.stop_strategy("sma_cross"),
            "start": lambda: runner.start_strategy("sma_cross"),
            "change the parameters of": lambda: runner.set_params("sma_cross", {"fast": 4}),
        }
        for what, command in commands.items():
            with pytest.raises(LifecycleError, match=f"is not running: cannot {what} 'sma_cross'"):
                command()
        assert runner.strategies["sma_cross"].fast == 3
        assert runner.state_of("sma_cross") == "stopped"
    finally:
        engine.stop()


def test_a_hook_that_does_not_return_is_said_while_it_lasts_and_when_it_returns(tmp_path, caplog):
    # Every strategy and the exits wait on the runner's one thread: it used to be said only
    # at the stop ("did not stop within 60 s").
    with Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False) as engine:
        runner, stuck = runner_stuck_in_a_tick(engine, stall_after_s=0.3)
        deadline = time.monotonic() + 30
        while "has been in on_tick" not in caplog.text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stalled = runner.metrics()["stalled_hook"]
        assert stalled["strategy"] == "stuck" and stalled["hook"] == "on_tick"
        assert stalled["seconds"] >= 0.3 and runner.metrics()["hook_stalls"] == 1
        assert "every strategy of runner r and the exits" in caplog.text
        stuck.release.set()
        while "returned after" not in caplog.text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert runner.metrics()["stalled_hook"] is None
        assert runner.stop(who="test") is True


def test_the_run_progress_line_says_which_hook_holds_the_runner(capsys, monkeypatch):
    import datetime as dt
    import os
    import shutil

    from tradelab.cli_progress import RunProgress

    status = {
        "seq": 1, "session_fraction": 0.5, "exchange_time": dt.datetime(2025, 1, 6, 10, 0),
        "symbol": "NIFTY", "index": 24000.0, "ticks": 1, "bars": 0, "orders": 0, "fills": 0,
        "open_positions": 0, "daily_pnl": None, "risk": "active", "broker": "ok",
        "stalled_hook": {"strategy": "hang", "hook": "on_tick", "seconds": 7.2},
    }  # fmt: skip

    class Lab:
        def status(self):
            return status

    RunProgress(Lab(), in_place=False).show()
    assert capsys.readouterr().out.rstrip().endswith("STALLED hang.on_tick 7s")
    # On a terminal narrower than the line it is shortened, not wrapped (a wrapped line is
    # rewritten one row at a time, the alerts at its end lost), and keeps the alerts.
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback: os.terminal_size((80, 24)))
    status["risk"] = "halted"
    RunProgress(Lab(), in_place=True).show()
    line = capsys.readouterr().out.split("\r")[-1].removesuffix("\x1b[K")
    assert len(line) <= 79
    assert line.startswith("seq 1  50%") and line.endswith("risk HALTED  STALLED hang.on_tick 7s")
    assert "06 Jan 10:00:00" in line  # the market's day too: a replay may span several


def test_a_hook_over_its_time_is_said_when_it_returns_though_no_poll_saw_it(caplog):
    # Back after 5-6 s, between two polls: STALLED was shown, but nothing was logged.
    from tradelab.runner.hook_watch import HookWatch

    watch = HookWatch("r", stall_after_s=5.0)
    outer = watch.enter("s", "on_tick", time.perf_counter() - 6.0)
    watch.leave(outer, 6.0)
    assert watch.stalls == 1 and "strategy s's on_tick returned after 6.0 s" in caplog.text
    caplog.clear()
    watch.leave(watch.enter("s", "on_bar", time.perf_counter()), 0.01)
    assert watch.stalls == 1 and caplog.text == ""


def test_a_stalled_consumer_never_lets_the_queue_grow_past_its_bound():
    # Superseded slots stayed in the queue uncounted: with the runner stuck in a hook, every
    # tick added one for good (2M ticks: 2M entries, qsize() 40).
    inbox = RunnerInbox(limit=1000)
    for i in range(20_000):
        inbox.put_tick(tick(f"S{i % 40}", float(i)))
    assert inbox._queue.qsize() <= 1000 and inbox.qsize() == 40
    assert inbox.ticks_dropped == 0  # each symbol's newest stays, in its waiting one's place
    newest = {item.payload["symbol"]: item.payload["last"] for item in iter_drained(inbox)}
    assert newest == {f"S{s}": float(19_960 + s) for s in range(40)}


def iter_drained(inbox):
    while True:
        try:
            item = inbox.get(False)
        except queue.Empty:
            return
        if item is not None:
            yield item


def test_a_hook_that_returns_after_its_runner_stopped_is_not_said_to_go_on(caplog):
    # After a stop that timed out behind it, its return was logged as "runner lab goes on".
    from tradelab.runner.hook_watch import HookWatch

    watch = HookWatch("lab", stall_after_s=1.0)
    outer = watch.enter("late", "on_tick", 0.0)
    watch.stop()  # the runner's stop gave up on it
    with caplog.at_level("WARNING", logger="tradelab.runner"):
        watch.leave(outer, 12.0)
    assert "had stopped meanwhile" in caplog.text and "goes on" not in caplog.text


def test_the_run_progress_line_says_when_the_feed_went_silent(capsys):
    # A dead market-data line showed the same seq and market time, line after line, and
    # nothing else: the console said "feed: silent" for the same session.
    import datetime as dt

    from tradelab.cli_progress import RunProgress

    status = {
        "seq": 1, "session_fraction": 0.5, "exchange_time": dt.datetime(2025, 1, 6, 10, 0),
        "symbol": "NIFTY", "index": 24000.0, "ticks": 10, "bars": 0, "orders": 0, "fills": 0,
        "open_positions": 0, "daily_pnl": None, "risk": "active", "broker": "ok",
    }  # fmt: skip
    progress = RunProgress(SimpleNamespace(status=lambda: status), in_place=False)
    for late in (None, -12.0, 4.0):  # max speed; a slow replay's next tick not due; on time
        status["feed_late_s"] = late
        progress.show()
        assert "FEED SILENT" not in capsys.readouterr().out
    status["feed_late_s"] = 7.2
    progress.show()
    assert capsys.readouterr().out.rstrip().endswith("FEED SILENT 7s")
    status["market_closed"] = True  # after the close no tick is due
    progress.show()
    assert "FEED SILENT" not in capsys.readouterr().out


def test_a_pacer_is_late_only_when_the_stream_stops_coming():
    from tradelab.market.clock import NS_PER_S, Pacer

    assert Pacer(None).late_s() is None  # unpaced: never late
    pacer = Pacer(1.0)
    assert pacer.late_s() is None  # nothing played yet
    pacer.wait_until(0)
    pacer.wait_until(NS_PER_S // 100)  # waited 10 ms for it: on time
    assert -0.05 < pacer.late_s() < 0.5
    time.sleep(0.2)  # no next event comes
    assert pacer.late_s() >= 0.2
