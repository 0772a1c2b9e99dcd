"""Backtest a strategy on a bar file through the live path: Engine, StrategyRunner, PaperBroker,
ExecutionDesk and the book, with the journal on (what it reports besides fills: backtest_report).

Fill model: each bar is played as its open quote, then its close quote, then one `market.bar`
event that also marks the symbol at the close (`"mark": true`, see tradelab.market.reducers: the
store, the runner's position monitor and analytics take it as a `mark.updated` too, so a bar
costs one event); the broker fills only on a quote that comes after an order (1 ms
latency in exchange time), so a market order placed while bar N is handled fills at bar N+1's
open, at that price as the file has it, unrounded (no spread, no slippage; a fill's fee is the
commission, a fraction of the traded value, plus the flat fee_per_fill).
Bars are played on the runner's thread, bar N+1 only once the runner has handled bar N
(lockstep, `StrategyRunner.drive`): no look-ahead, and every event of the run is submitted from
that one thread, so the journal is the same run after run. Positions still open at the end are
valued at the last close.
Thread model: by default (`synchronous=True`) everything runs on the caller's thread: the
engine's kernel inline (`Engine(inline_kernel=True)`), the runner unthreaded, so a bar costs no
thread hand-off; and a fill or order does not wait for its own sync (`durable_acks=False`):
the journal is whole and durable when `run_backtest` returns, as before. `synchronous=False` runs the live arrangement (kernel thread, runner thread;
`run_backtest` blocks until the runner has played every bar). Both give the same journal.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.engine import Engine
from tradelab.errors import InvalidInputError
from tradelab.market.calendar import TradingCalendar
from tradelab.market.clock import MarketHours, SimulatedClock
from tradelab.market.instruments import looks_like_option
from tradelab.runner.backtest_inputs import (
    check_backtestable,
    check_risk,
    check_settings,
    check_symbol_pick,
    symbols_as_ids,
)
from tradelab.runner.backtest_interrupt import InterruptedWhileStopping
from tradelab.runner.backtest_play import play_bars
from tradelab.runner.backtest_report import (
    content_hash,
    fill_row,
    held_by_symbol,
    max_drawdown,
    refused_orders,
    time_split,
)
from tradelab.runner.barfile import load_bar_file
from tradelab.runner.instruments import InstrumentUniverse, PlainInstrument
from tradelab.runner.runner import StrategyRunner
from tradelab.runner.strategy import Strategy, check_strategy_inputs, checked_strategies
from tradelab.runner.tradelog import trades_frame
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.risk import RiskGate
from tradelab.trading.risk_config import RiskConfig


@dataclass
class BacktestResult:
    symbol: str
    interval: str
    bars: int
    cash: float
    fills: list[dict[str, Any]]
    trades: list[dict[str, Any]]
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    final_equity: float
    # Units held at the end per symbol, summed over the strategies (as the broker holds them);
    # per strategy (`<strategy>:<symbol>`) in `open_positions_by_strategy`.
    open_positions: dict[str, int]
    content_hash: str
    journal: str | None
    seconds: float  # the bars' loop and the journal's close: what bars_per_second divides
    bars_per_second: float
    time_split: dict[str, float] = field(default_factory=dict)
    # Strategies that raised and were stopped (name: why). By default no bar after the one a
    # strategy failed on is played (`bars` counts those played): the figures end there.
    failed_strategies: dict[str, str] = field(default_factory=dict)
    # The equity curve's deepest fall below its running peak (<= 0), valued after each fill and
    # each bar's close: the journal's `drawdown` view.
    max_drawdown: float = 0.0
    # Orders still working when the bars ran out (placed on the last bar, or in on_stop).
    unfilled_orders: list[str] = field(default_factory=list)
    # Orders refused by the broker (e.g. margin) or a risk limit: order_id, symbol, side,
    # quantity, status (rejected / denied) and reason; a strategy that let the refusal through
    # went on (see README).
    refused_orders: list[dict[str, Any]] = field(default_factory=list)
    # The whole call, as a user waits for it: reading the file, starting the engine, the run,
    # and this report (trades, content hash, drawdown read back from the journal).
    wall_seconds: float = 0.0
    open_positions_by_strategy: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __repr__(self) -> str:
        # Short: the dataclass's own would print every fill and round trip.
        return (
            f"<BacktestResult {self.symbol} ({self.interval}): {self.bars:,} bars, "
            f"{len(self.fills):,} fills, {len(self.trades):,} round trips, final equity "
            f"{self.final_equity:,.2f} on cash {self.cash:,.2f}, max drawdown "
            f"{self.max_drawdown:,.2f}, journal {self.journal or 'temporary (gone)'}>"
        )

    def _repr_html_(self) -> str:
        """In a notebook: the figures a reader looks for first, as on the --html page."""
        from tradelab.runner.backtest_page import figures_html  # noqa: PLC0415 (imports this)

        return figures_html(self)

    def plot(self) -> Any:
        """The price with every fill, the equity and its drawdown (a HoloViews layout, drawn
        from the run's journal: run it with `journal_path=` to keep one)."""
        if self.journal is None:
            raise InvalidInputError(
                "this backtest's journal was temporary and is gone; run it with journal_path= "
                "to plot it"
            )
        from tradelab.analytics import Analytics
        from tradelab.analytics.plots import backtest_overview

        return backtest_overview(Analytics(self.journal), self.symbol)


def run_backtest(
    path: str | Path,
    strategy: Strategy | Sequence[Strategy],
    *,
    symbol: str | None = None,
    cash: float = 1_000_000.0,
    commission: float = 0.0,
    fee_per_fill: float = 0.0,
    journal_path: str | Path | None = None,
    engine_overrides: dict[str, Any] | None = None,
    synchronous: bool = True,
    progress: Callable[[int, int], object] | None = None,
    stop_at_failure: bool = True,
    risk: RiskConfig | None = None,
) -> BacktestResult:
    """Replay `path` bar by bar through `strategy` (or several, one runner); see the module docstring for the fill model.

    `journal_path` must not exist yet (a backtest is one fresh journal); None journals to a
    temporary file that is removed afterwards. `progress(bars_played, bars)` is called every
    PROGRESS_EVERY (backtest_play) bars and once at the end, on the thread playing them.
    `stop_at_failure`: a strategy that raises ends the run at that bar, for every strategy (the
    P&L, positions and drawdown are those at its close); False: the others play on, and the
    failed one's positions are valued at later closes.
    `risk`: pre-trade limits (tradelab.trading.risk.RiskConfig: order quantity, open positions,
    notional, orders per minute of market time), which deny orders as in a session; its daily
    loss limit is not applied (a backtest resets no daily P&L), said on the log.
    """
    called = time.perf_counter()
    if not isinstance(path, str | Path):
        raise InvalidInputError(
            f"run_backtest reads a bar file (a CSV or Parquet path), not a {type(path).__name__}"
            "; save a DataFrame first, e.g. frame.to_parquet('bars.parquet')"
        )
    strategies = checked_strategies(strategy)
    if not strategies:
        raise InvalidInputError("no strategy to backtest; pass one (e.g. SmaCross()) or several")
    check_settings(cash, commission, fee_per_fill, engine_overrides, progress)
    if not isinstance(stop_at_failure, bool):
        raise InvalidInputError(f"stop_at_failure {stop_at_failure!r} must be True or False")
    if symbol is not None and not isinstance(symbol, str):
        raise InvalidInputError(f"symbol {symbol!r} must be text (a symbol of the file), or None")
    check_backtestable(strategies)
    check_risk(risk)
    symbols_as_ids(strategies)  # TCS.NS -> TCS_NS, as the file's rows trade
    named = {name for s in strategies for name in s.symbols_needed()}
    source = f"bar file {str(path)!r}"

    def check_named(symbols: Collection[str]) -> None:
        check_strategy_inputs(strategies, source, symbols=symbols, intervals=None)

    series = load_bar_file(path, symbol, named=named, check_named=check_named)
    if not len(series):
        raise InvalidInputError(f"{source} has no bars for {series.symbol}")
    if symbol is not None:
        check_symbol_pick(strategies, series.symbol, source)
    check_strategy_inputs(strategies, source, symbols={series.symbol}, intervals={series.interval})
    if journal_path is not None and Path(journal_path).exists():
        raise InvalidInputError(
            f"journal {str(journal_path)!r} already exists; a backtest writes a new journal"
        )
    with tempfile.TemporaryDirectory(prefix="tradelab-bt-") as scratch:
        journal = Path(journal_path) if journal_path is not None else Path(scratch) / "bt.duckdb"
        result = _run(
            series,
            strategies,
            cash=cash,
            commission=commission,
            fee_per_fill=fee_per_fill,
            journal=journal,
            overrides=engine_overrides or {},
            synchronous=synchronous,
            progress=progress,
            stop_at_failure=stop_at_failure,
            risk=risk,
        )
        if journal_path is None:
            result.journal = None
    result.wall_seconds = time.perf_counter() - called
    return result


def _run(
    series: Any,
    strategies: list[Strategy],
    *,
    cash: float,
    commission: float,
    fee_per_fill: float,
    journal: Path,
    overrides: dict[str, Any],
    synchronous: bool,
    progress: Callable[[int, int], object] | None,
    stop_at_failure: bool,
    risk: RiskConfig | None,
) -> BacktestResult:
    sym = series.symbol
    # A NIFTY option keeps its lot size (as in a session); anything else trades in units, its
    # short margin on the price it sells at (never the file's later prices: no look-ahead).
    universe = InstrumentUniverse()
    if not looks_like_option(sym):
        universe.add(PlainInstrument(sym, 1))
    clock = SimulatedClock(int(series.ts[0]))
    broker = PaperBroker(
        PaperBrokerConfig(
            slippage_ticks=0,
            latency_ms=1,
            brokerage_per_fill=fee_per_fill,
            charges_rate=commission,
            capital=cash,
            enforce_market_hours=False,
        ),
        universe=universe,
        clock=clock,
        # Hours are not enforced (above), so the broker gets a calendar of its own rather than
        # the NSE one, whose first build (~0.4 s, the pandas_market_calendars import) it would
        # never use.
        hours=MarketHours(calendar=TradingCalendar(name="backtest")),
        id_prefix="BT",
    )
    # No snapshots on a timer or an event count during the run (stop() still takes one): a
    # snapshot's `snapshot.taken` is announced by the writer when it is written, so it would
    # take a seq at a point that thread timing decides, and strategies' order ids carry seqs.
    # The kernel hands the writer 256 events at a time (~75 KB of bars): through the default
    # 16 KiB pipe each hand-off waited for the writer process to finish the batch before; a
    # 1 MiB pipe lets the two overlap (no critical submitter waits behind it in a backtest).
    # Commits every 200 ms instead of 10: nothing waits for a commit during a backtest (no
    # durable acks; stop() commits and syncs the rest before the run returns), and a commit
    # every 10 ms cost the writer process ~25 % of its CPU.
    for key in ("snapshot_every_seconds", "snapshot_every_events"):
        if overrides.get(key):
            raise InvalidInputError(
                f"engine.{key}: a backtest takes no snapshot during its run, only at its end "
                "(where the writer announces one would change the journal's seqs, and its "
                "content hash, run to run); leave it out of the backtest's config"
            )
    settings = {
        "snapshot_every_events": 0,
        "snapshot_every_seconds": 0.0,
        "writer_pipe_bytes": 1 << 20,
        "group_commit_ms": 200.0,
        **overrides,
    }
    engine = Engine(
        journal_path=str(journal),
        inline_kernel=synchronous,
        durable_acks=not synchronous,  # durable when the run ends (engine.stop), not per fill
        **settings,
    )
    engine.start()
    runner = None
    try:
        gate = None if risk is None else RiskGate(risk, engine.store, engine.submit, clock=clock)
        desk = ExecutionDesk(broker, engine.submit, universe=universe, risk=gate)
        runner = StrategyRunner(
            engine, desk, clock=clock, name="backtest", threaded=not synchronous
        )
        runner.bar_intervals = frozenset({series.interval})  # the file's, and no other
        runner.quoted_symbols = frozenset({series.symbol})
        for one in strategies:
            runner.add(one)
        runner.start(who="backtest")
        started = time.perf_counter()
        feed_seconds, engine_in_feed = play_bars(
            series, engine, broker, clock, runner, progress, synchronous, stop_at_failure
        )
        loop_seconds = time.perf_counter() - started
        try:
            runner.stop(who="backtest")
        except KeyboardInterrupt as exc:
            runner = None  # its on_stop hooks were called: not again below
            raise InterruptedWhileStopping() from exc
        failed = runner.failures()  # after the stop: a strategy's on_stop may fail too
        played = len(series) if runner.drive_ended_at is None else runner.drive_ended_at
        # No bar after the last: an order placed on it (or in on_stop) never fills.
        unfilled = sorted(broker.account.working)
        strategy_seconds = runner.strategy_seconds
        kernel_seconds, durable_waits = engine.kernel_seconds, engine.durable_wait_seconds
        store_seconds = engine.store.apply_seconds
        runner = None
        store = engine.store
        fills = sorted((store.get("trading.trades", None) or {}).values(), key=lambda t: t["seq"])
        refused = refused_orders(store.get("trading.orders", None) or {})
        pnl = store.get("pnl", None) or {}
        positions = store.get("trading.positions", None) or {}
        stop_started = time.perf_counter()
        engine.stop()
        stop_seconds = time.perf_counter() - stop_started
    finally:
        if runner is not None:
            runner.stop(who="backtest")
        if engine.state != "stopped":
            engine.stop()
    seconds = loop_seconds + stop_seconds
    realized, unrealized, fees = (
        float(pnl.get(k, 0.0)) for k in ("realized", "unrealized", "fees")
    )
    return BacktestResult(
        symbol=sym,
        interval=series.interval,
        bars=played,
        cash=cash,
        fills=[fill_row(f) for f in fills],
        trades=trades_frame(journal).to_dict(orient="records"),
        realized_pnl=realized,
        unrealized_pnl=unrealized,
        fees=fees,
        final_equity=cash + realized + unrealized - fees,
        open_positions=held_by_symbol(positions.values()),
        open_positions_by_strategy={
            pid: int(p["net_quantity"]) for pid, p in sorted(positions.items()) if p["net_quantity"]
        },
        content_hash=content_hash(journal),
        max_drawdown=max_drawdown(journal),
        unfilled_orders=unfilled,
        refused_orders=refused,
        journal=str(journal),
        seconds=seconds,
        bars_per_second=played / seconds if seconds > 0 else 0.0,
        time_split=time_split(
            synchronous,
            loop_seconds,
            feed_seconds,
            engine_in_feed,
            strategy_seconds,
            kernel_seconds,
            store_seconds,
            durable_waits,
            stop_seconds,
        ),
        failed_strategies=failed,
    )
