"""Playing a bar file into a backtest: each bar as its open quote (and the limits it traded
through), its close quote, then its `market.bar`, on the runner's thread in lockstep with it.
See tradelab.runner.backtest for the fill model this makes.
"""

from __future__ import annotations

import contextlib
import time

from tradelab.market.bar_files import journal_volumes
from tradelab.market.ticks import Tick
from tradelab.runner.backtest_fills import limits_passed
from tradelab.runner.backtest_interrupt import BetweenBars
from tradelab.runner.runner import StrategyRunner

_QUOTE_SIZE = 1_000_000_000  # the bar's whole price level is available: no partial fills
PROGRESS_EVERY = 4096  # bars between progress calls: ~0.1-0.2 s at today's rate


def play_bars(
    series,
    engine,
    broker,
    clock,
    runner: StrategyRunner,
    progress,
    synchronous: bool,
    stop_at_failure: bool = True,
) -> tuple[float, float]:
    """Play every bar on the runner thread in lockstep with it (`StrategyRunner.drive`); returns
    the seconds spent playing bars (the feed's share of the run) and, of those, the engine's
    own work done inline (kernel and durable waits; synchronous runs only). Synchronous, a
    Ctrl-C is taken before the next bar (`BetweenBars`): the journal holds whole bars.
    `stop_at_failure`: once a strategy has failed no further bar is played
    (`runner.drive_ended_at`), so positions are valued, and the equity curve ends, at the close
    of the bar it failed on."""
    submit, on_quote, working = engine.submit, broker.on_quote, broker.account.working
    sym, interval = series.symbol, series.interval
    ts, opens, highs, lows, closes, volumes = (
        series.ts.tolist(),
        series.open.tolist(),
        series.high.tolist(),
        series.low.tolist(),
        series.close.tolist(),
        journal_volumes(series.volume),
    )
    # A bar ends where its length says, not where the next one starts (the gap may be a night
    # or a weekend: the close would be counted in the next day's P&L). A daily or longer bar
    # ends a second before its last midnight, so its close stays on its own date (a second,
    # not a nanosecond: times read as float seconds, in SQL too, would round that up).
    ends = series.ends.tolist()
    spent = [0.0, 0.0]
    perf = time.perf_counter

    def engine_work() -> float:
        return engine.kernel_seconds + engine.durable_wait_seconds

    def play(i: int) -> bool:
        if between_bars.requested:
            raise KeyboardInterrupt  # Ctrl-C during the previous bar, taken here
        if stop_at_failure and runner.failed_any:
            return False  # a strategy failed: the figures stop at the bar it failed on
        if progress is not None and not i % PROGRESS_EVERY:
            progress(i, len(ts))
        t0, e0 = perf(), engine_work()
        start = ts[i]
        clock.set(start)
        o, c = opens[i], closes[i]
        # The open: orders placed on the previous bar fill here. With none working it would
        # change nothing the close quote below does not set again, so it is left out.
        if working:
            on_quote(Tick(sym, start, o, o, o, _QUOTE_SIZE, _QUOTE_SIZE))
            for price in limits_passed(working, sym, o, c):
                on_quote(Tick(sym, start, price, price, price, _QUOTE_SIZE, _QUOTE_SIZE))
        # The close, before the bar is published: the runner's orders are checked against it.
        on_quote(Tick(sym, start, c, c, c, _QUOTE_SIZE, _QUOTE_SIZE))
        submit(
            "market.bar",
            {
                "symbol": sym,
                "interval": interval,
                "start": start,
                "end": ends[i],
                "open": o,
                "high": highs[i],
                "low": lows[i],
                "close": c,
                "volume": volumes[i],
                "ticks": 0,
                "mark": True,  # the bar's close is the symbol's mark: one event a bar
            },
            key=sym,
        )
        spent[0] += perf() - t0
        spent[1] += engine_work() - e0
        return True

    between_bars = BetweenBars()
    with between_bars if synchronous else contextlib.nullcontext():
        runner.drive(play, len(ts))
        # Generous: a bar takes well under a millisecond; this only catches a runner that died.
        runner.wait_for_bars(len(ts), timeout=60.0 + len(ts) * 0.01)
    if progress is not None:  # the bars played: fewer when a failed strategy stopped it
        ended = runner.drive_ended_at
        progress(len(ts) if ended is None else ended, len(ts))
    return spent[0], spent[1]
