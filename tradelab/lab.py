"""`Lab`: the embedded default session: an Engine, a simulated (or replayed) NIFTY feed, a paper
broker, the execution desk and its risk limits, and a StrategyRunner trading an example strategy
(`short_straddle` unless told otherwise), wired together; what `tradelab run` and the console start.

Thread model: `start()` starts the engine's threads, one feed thread that routes ticks into the
engine and the runner's thread; `place_order` may be called from any thread; `stop()` ends the
feed, then the runner (it drains what reached it), then the engine.
A restart of the same journal resumes the simulated session after the last journaled mark, so a
replayed stretch is never journaled twice.
A session at max speed (simulated or replayed) runs in lockstep with the runner
(`StrategyRunner.lockstep`): the ticks of one timestamp are played on the runner thread once
everything before them has settled (so a strategy never falls behind the feed), the
daily loss check runs there between two timestamps, and the reconciler runs once before the
feed instead of on a wall-clock timer; a fresh session's broker ids have a fixed prefix. So the
same file (or seed), strategy and settings give the same journal content (`content_hash`) run
after run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.broker.account_file import check_account_of_journal
from tradelab.broker.reconcile import Reconciler, ReconcilerConfig
from tradelab.config import EngineConfig
from tradelab.engine import Engine
from tradelab.errors import (
    InvalidInputError,
    JournalInUseError,
    LifecycleError,
    TradelabError,
)
from tradelab.lab_config import (
    LabConfig,
    check_lab_parts,
    check_not_a_backtest,
    check_tradable_hours,
    configured_strategies,
    lab_settings,
    replay_session,
    session_inputs_check,
    sim_session,
    tradable_symbols,
)
from tradelab.lab_days import TradingDays
from tradelab.lab_lockstep import run_lockstep
from tradelab.lab_sessions import (
    ClosedSession,
    PacedDays,
    check_same_market,
    journaled_bar_starts,
    last_mark_ns,
    market_source,
    resumed_ticks,
    say_if_nothing_was_left,
)
from tradelab.lab_status import session_status, wait_for_mark
from tradelab.market.bars import interval_seconds, session_intervals
from tradelab.market.clock import NS_PER_S, SimulatedClock
from tradelab.market.feeds import ReplayFeedConfig, SimulatedFeedConfig
from tradelab.market.router import MarketDataRouter
from tradelab.market.ticks import Tick
from tradelab.metrics_sampler import MetricsSampler
from tradelab.runner import StrategyRunner
from tradelab.runner.runner_config import RunnerConfig
from tradelab.runner.strategy import Strategy, checked_strategies
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.risk import RiskConfig, RiskGate
from tradelab.trading.risk_monitor import DailyLossMonitor

if TYPE_CHECKING:
    from tradelab.state import StateStore

log = logging.getLogger(__name__)


FRESH_ID_PREFIX = "PB000000"  # a fresh session's broker ids (see Lab.__init__)


class Lab:
    """One paper-trading session: `Lab(config).start()`, `place_order(...)`, `stop()`."""

    def __init__(
        self,
        config: LabConfig | None = None,
        *,
        risk: RiskConfig | None = None,
        reconciler: ReconcilerConfig | None = None,
        engine: EngineConfig | None = None,
        sim_feed: SimulatedFeedConfig | None = None,
        replay_feed: ReplayFeedConfig | None = None,
        broker: PaperBrokerConfig | None = None,
        runner: RunnerConfig | None = None,
        strategies: list[Strategy] | None = None,
        **overrides: Any,
    ) -> None:
        """`strategies`: trade these instead of the config's `strategy` (a notebook's own).
        `engine`, `sim_feed`, `replay_feed`, `broker`: their other settings; the journal path,
        seed, pace and strikes always come from `config`."""
        check_lab_parts(config=config, risk=risk, reconciler=reconciler, engine=engine)
        check_lab_parts(sim_feed=sim_feed, replay_feed=replay_feed, broker=broker, runner=runner)
        self.runner_config = runner if runner is not None else RunnerConfig()
        self.config = lab_settings(config, overrides)
        self.risk_config = risk if risk is not None else RiskConfig()
        cfg = self.config
        # Strategy and feed first: a bad name, parameter or file fails before any file is opened.
        self.strategies = (
            checked_strategies(strategies) if strategies is not None else configured_strategies(cfg)
        )
        session = (
            replay_session(cfg, replay_feed) if cfg.feed == "replay" else sim_session(cfg, sim_feed)
        )
        self.feed, self.universe, self.open_ns, self.close_ns = session
        # The session's exchange time: the last tick routed. Not the feed's clock, which its
        # iterator sets when it reads a tick: at max speed the next timestamp's first tick is
        # read before the strategies have reacted to this one, whose fills would carry it.
        self.clock = SimulatedClock(self.feed.clock.now_ns())
        # The instrument the console charts: the index, or a replayed file's first instrument
        # when the file holds no NIFTY (a stock's bars).
        plain = self.universe.instruments if cfg.feed == "replay" else {}
        self.chart_symbol = "NIFTY" if "NIFTY" in plain or not plain else next(iter(plain))
        intervals = session_intervals(
            cfg.bar_intervals, self.feed.file_bar_seconds if cfg.feed == "replay" else None
        )
        # A strategy with nothing to trade is refused, not run idle; so is such a change of
        # its parameters later (the runner's set_params, the console's parameters tab).
        quoted = set(self.feed.symbols)
        self._inputs_check = session_inputs_check(
            cfg, quoted, intervals, tradable_symbols(self.universe, quoted)
        )
        self._inputs_check(self.strategies)
        self._bar_intervals = frozenset(intervals)  # what ctx.bars can ever return
        self.market_source = market_source(cfg, self.feed if cfg.feed != "replay" else None)
        if cfg.feed == "replay":
            check_tradable_hours(self.feed, self.strategies)
        # At max speed either feed is played in lockstep with the runner (module docstring).
        self.lockstep = cfg.as_fast_as_possible
        if self.lockstep and cfg.feed_stall_after_seconds:
            raise InvalidInputError(
                "feed_stall_after_seconds needs a paced feed: it stalls after wall seconds, "
                "and as_fast_as_possible has no wall clock"
            )
        check_not_a_backtest(cfg.journal_path)
        account_path = f"{cfg.journal_path}.broker.sqlite"
        # A fresh session (no journal, no account) has no ids to collide with: a fixed prefix
        # keeps its ids, and so its journal, the same run after run.
        fresh = not Path(cfg.journal_path).exists() and not Path(account_path).exists()
        # Made by this Lab: removed again if start() refuses the journal (a refused run must not
        # leave an account a later fresh session would adopt).
        self._new_account = None if Path(account_path).exists() else Path(account_path)
        self.engine = Engine(engine, journal_path=cfg.journal_path)
        every = 0.0 if self.lockstep else cfg.metrics_sample_seconds
        self.metrics_sampler = MetricsSampler(self.engine, every) if every > 0 else None
        # The broker's own account file sits beside the journal (git-ignored with it).
        self.broker = PaperBroker(
            broker if broker is not None else PaperBrokerConfig(),
            universe=self.universe,
            clock=self.clock,
            account_path=account_path,
            id_prefix=FRESH_ID_PREFIX if fresh else None,
        )
        self.reconciler_config = reconciler if reconciler is not None else ReconcilerConfig()
        self.reconciler: Reconciler | None = None
        self.router = MarketDataRouter(
            self.engine.submit,
            self.engine.publish_transient,
            intervals=intervals,
            quote_sinks=[self.broker.on_quote],
            sessions=self.feed.hours.session,  # a special session's bars follow its hours
        )
        self.desk: ExecutionDesk | None = None
        self.risk: RiskGate | None = None
        self.risk_monitor: DailyLossMonitor | None = None
        self.runner: StrategyRunner | None = None
        self.session_finished = threading.Event()
        # Why the feed stopped before its session's end (the engine refused its events for
        # longer than the submit timeout, or the feed itself failed), or None; the session
        # ends there too.
        self.feed_failure: Exception | None = None
        self.resumed_after_ns: int | None = None  # the journal's last mark (None: none yet)
        self.ticks_played = 0  # by the feed after that mark
        self._closed_session: ClosedSession | None = None  # a restart may play more of it
        self.days: TradingDays | None = None  # from start(), the journal recovered
        self.paced_days: PacedDays | None = None  # a paced session's, from its feed's start
        self._stop = threading.Event()
        self._feed_thread: threading.Thread | None = None
        self._started = False

    @property
    def store(self) -> StateStore:
        return self.engine.store

    def start(self) -> Lab:
        """Recover the journal, then stream the simulated session into the engine. Once per Lab."""
        # Checked before anything: a second call (a re-run notebook cell) must not reach the
        # failure path below, which would close the broker and remove the running account.
        if self._started:
            raise LifecycleError(
                f"start() was called on this Lab already (its engine is {self.engine.state}); "
                "a Lab starts once: stop() it and make a new Lab to start again"
            )
        self._started = True
        try:
            self.engine.start()
        except BaseException as exc:
            if self._new_account is not None:
                self.broker.close()
                # Not when another engine holds the journal: the account is that engine's,
                # even if this Lab made the file (both started on a new journal at once).
                if not isinstance(exc, JournalInUseError):
                    self._new_account.unlink(missing_ok=True)
            raise
        try:
            self._start_session()
        except BaseException:
            # What started is stopped (the engine and its writer, the monitors): with
            # `with Lab(...)` nothing else could stop them, and the journal stayed held.
            self.stop()
            raise
        return self

    def _start_session(self) -> None:
        store = self.engine.store
        self.resumed_after_ns = last = last_mark_ns(store)
        self.router.skip_bars_through(journaled_bar_starts(store))
        if last is not None and last > self.clock.now_ns():  # as late as the journal
            self.clock.set(last)
        self._closed_session = ClosedSession.of(store)
        self.days = TradingDays(self)
        check_same_market(store, self.market_source, max(self.open_ns, last or self.open_ns))
        check_account_of_journal(self.broker, self.engine)
        # The desk reads positions, orders and the risk state from the recovered store.
        self.risk = RiskGate(self.risk_config, store, self.engine.submit, clock=self.clock)
        self.desk = ExecutionDesk(
            self.broker, self.engine.submit, universe=self.universe, risk=self.risk
        )
        self.desk.journal_missed_closes()  # a crash between a closing fill and its close
        self.risk_monitor = DailyLossMonitor(
            self.risk_config, store, self.engine.submit, desk=self.desk, bus=self.engine.bus
        )
        self.reconciler = Reconciler(
            self.broker, self.engine.submit, risk=self.risk, config=self.reconciler_config
        )
        self.reconciler.journal_connection()  # the last session may have ended in an outage
        # Halted before this start: what a failed cancel left working must not fill now, and a
        # breach's flatten a crash cut short is done, on a book reconciled first.
        self.risk_monitor.finish_after_restart(
            self.reconciler.run_once if self.reconciler_config.run_on_start else None
        )
        if not self.lockstep:
            self.risk_monitor.start()
            self.reconciler.start()  # on start, then every interval_s
        elif self.reconciler_config.run_on_start:
            self.reconciler.run_once()  # done before anything else runs: same place every run
        # Subscribed before the feed starts: the strategies see the session from its first tick.
        limits = self.runner_config.param.values()
        del limits["name"]  # the param object's own: the runner is "lab"
        self.runner = StrategyRunner(self.engine, self.desk, clock=self.clock, name="lab", **limits)
        self.runner.inputs_check = self._inputs_check
        self.runner.bar_intervals = self._bar_intervals
        self.runner.quoted_symbols = frozenset(self.feed.symbols)
        self.runner.lists_new_strikes = self.config.feed == "sim"
        for strategy in self.strategies:
            self.runner.add(strategy)
        self.runner.start(who="lab")
        self._feed_thread = threading.Thread(target=self._run_feed, name="lab-feed", daemon=True)
        self._feed_thread.start()
        if self.metrics_sampler is not None:
            self.metrics_sampler.start()

    def _run_feed(self) -> None:
        speed = None if self.feed.config.as_fast_as_possible else self.feed.config.speed
        try:
            if self.lockstep:
                run_lockstep(self)
            else:
                self.days.open()
                self.paced_days = days = PacedDays(
                    self.days.close_finished_day, self.days.open, self.resumed_after_ns
                )
                stall = self.config.feed_stall_after_seconds
                days.run(self._resumed_ticks(), self._route, speed, self._stop, stall)
                self.days.close_session()
                say_if_nothing_was_left(self)
        except TradelabError as exc:
            # The journal writer failed (nothing more can be journaled) or the broker is down
            # (its account file cannot be written): the session ends here;
            # `engine.journal_failure` or `broker.failure` says why (the caller reports it).
            if self._stop.is_set():
                log.debug("feed stopped by the session's stop", exc_info=True)
            elif self.engine.journal_failure is None and self.broker.failure is None:
                self.feed_failure = exc
                log.error("the feed stopped: %s", self.feed_failure)
            else:
                log.info("feed stopped: the journal writer failed or the broker is down")
        except Exception as exc:  # a fault of the feed itself (a bad file, a bug): said once
            log.error("the feed failed", exc_info=True)
            self.feed_failure = exc
        finally:
            self.session_finished.set()

    def _resumed_ticks(self) -> Iterator[Tick]:
        resumed = self.resumed_after_ns
        longest = max(map(interval_seconds, self.router.bars.intervals)) * NS_PER_S
        for tick in resumed_ticks(
            self.feed.ticks(),
            resumed,
            self._quote_skipped,
            self.router.build_bars_only,
            bars_from_ns=(resumed or 0) - longest,  # the ticks of every bar still open
        ):
            self.ticks_played += 1
            yield tick

    def _route(self, tick: Tick) -> None:
        if self._closed_session is not None:  # a restart: more of the day a file closed?
            if self._closed_session.reopened_by(tick.ts):
                self.router.open_session(tick.ts, source=self.market_source)
            if self._closed_session.done:
                self._closed_session = None
        self.clock.set(tick.ts)  # the feed's order: never backwards
        self.router.on_tick(tick)

    def _quote_skipped(self, tick: Tick) -> None:
        # A resumed session's latest quotes of the stretch journaled before, one per symbol in
        # no time order: the clock moves to the latest of them.
        if tick.ts > self.clock.now_ns():
            self.clock.set(tick.ts)
        self.broker.on_quote(tick)

    def place_order(self, symbol: str, side: str, quantity: int, **kwargs: Any) -> str:
        """Send an order through the desk; see `ExecutionDesk.place_order`. A market order
        needs a quote of `symbol` first (`wait_for_quote`, right after `start()`)."""
        if self.desk is None:
            raise LifecycleError("start() the lab before placing orders")
        return self.desk.place_order(symbol, side, quantity, **kwargs)

    def wait_for_quote(self, symbol: str, timeout: float = 10.0) -> dict[str, Any]:
        """Block until the store holds a mark of `symbol` (the feed's first quote of it comes
        just after `start()`); returns that mark (`lab_status.wait_for_mark`)."""
        return wait_for_mark(self, symbol, timeout)

    def status(self) -> dict[str, Any]:
        """The session at a glance, as a dict: seq, exchange time, the charted mark, the book,
        risk and broker state (`lab_status.session_status`; the progress line prints it)."""
        return session_status(self)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the feed thread, then the runner, then the engine (drain, snapshot, close)."""
        on_runner = self.runner is not None and self.runner.handler_ident == threading.get_ident()
        if on_runner or self.engine.on_kernel_thread():
            # Refused before anything stops: it waits for that very thread to finish.
            where = "a strategy's hook" if on_runner else "a bus handler (the kernel thread)"
            raise LifecycleError(
                f"stop() was called from {where}; it waits for that thread, so call it from "
                "another one: threading.Thread(target=lab.stop).start()"
            )
        self._stop.set()
        if self._feed_thread is not None:
            self._feed_thread.join(timeout)
        if self.runner is not None:
            self.runner.stop(who="lab", timeout=timeout)
        if self.risk_monitor is not None:
            self.risk_monitor.stop(timeout)
        if self.reconciler is not None:
            self.reconciler.stop(timeout)
        if self.metrics_sampler is not None:
            self.metrics_sampler.stop(timeout)
        if self.desk is not None and not self.desk.close(min(timeout, 10.0)):
            log.warning(
                "orders still on their way to the broker at the stop: the restart's "
                "reconciliation settles them"
            )
        self.engine.stop(timeout)
        self.broker.close()
        if self.desk is not None:
            self.desk.refuse("this Lab is stopped: make a new Lab(...) and start() it to trade")

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
