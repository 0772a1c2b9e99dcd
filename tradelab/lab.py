"""`Lab`: the embedded default session: an Engine, a simulated NIFTY feed, a paper broker, the
execution desk and its risk limits, wired together; what `tradelab run` and the console start.

Thread model: `start()` starts the engine's threads and one feed thread that routes ticks into
the engine; `place_order` may be called from any thread; `stop()` ends the feed, then the engine.
A restart of the same journal resumes the simulated session after the last journaled mark, so a
replayed stretch is never journaled twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import param

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.broker.reconcile import Reconciler, ReconcilerConfig
from tradelab.engine import Engine
from tradelab.errors import TradelabError
from tradelab.market.clock import run_paced
from tradelab.market.feeds import SimulatedFeed, SimulatedFeedConfig
from tradelab.market.instruments import IST
from tradelab.market.router import MarketDataRouter
from tradelab.market.ticks import Tick
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.risk import RiskConfig, RiskGate
from tradelab.trading.risk_monitor import DailyLossMonitor

log = logging.getLogger(__name__)


class LabConfig(param.Parameterized):
    """The embedded default: where the journal lives and how the simulated market runs."""

    journal_path = param.String(default="data/lab.duckdb", doc="DuckDB journal of the session.")
    seed = param.Integer(default=7, doc="Seed of the simulated market (same seed, same ticks).")
    ticks_per_second = param.Integer(
        default=500, bounds=(1, 10_000), doc="Ticks per wall-clock second."
    )
    speed = param.Number(
        default=60.0, bounds=(0.001, 1_000_000.0), doc="Simulated seconds per wall second."
    )
    strikes_each_side = param.Integer(
        default=5, bounds=(0, 40), doc="Option strikes quoted either side of the ATM strike."
    )


class Lab:
    """One paper-trading session: `Lab(config).start()`, `place_order(...)`, `stop()`."""

    def __init__(
        self,
        config: LabConfig | None = None,
        *,
        risk: RiskConfig | None = None,
        reconciler: ReconcilerConfig | None = None,
        **overrides: Any,
    ) -> None:
        self.config = config if config is not None else LabConfig()
        self.risk_config = risk if risk is not None else RiskConfig()
        if overrides:
            self.config.param.update(**overrides)
        cfg = self.config
        self.engine = Engine(journal_path=cfg.journal_path)
        self.feed = SimulatedFeed(
            SimulatedFeedConfig(
                seed=cfg.seed,
                ticks_per_second=cfg.ticks_per_second,
                speed=cfg.speed,
                strikes_each_side=cfg.strikes_each_side,
            )
        )
        # The broker's own account file sits beside the journal (git-ignored with it).
        self.broker = PaperBroker(
            PaperBrokerConfig(),
            clock=self.feed.clock,
            account_path=f"{cfg.journal_path}.broker.sqlite",
        )
        self.reconciler_config = reconciler if reconciler is not None else ReconcilerConfig()
        self.reconciler: Reconciler | None = None
        self.router = MarketDataRouter(
            self.engine.submit, self.engine.publish_transient, quote_sinks=[self.broker.on_quote]
        )
        self.desk: ExecutionDesk | None = None
        self.risk: RiskGate | None = None
        self.risk_monitor: DailyLossMonitor | None = None
        self.session_finished = threading.Event()
        self.resumed_after_ns = 0
        self._stop = threading.Event()
        self._feed_thread: threading.Thread | None = None

    @property
    def store(self):
        return self.engine.store

    def start(self) -> Lab:
        """Recover the journal, then stream the simulated session into the engine."""
        self.engine.start()
        store = self.engine.store
        # The desk reads positions, orders and the risk state from the recovered store.
        self.risk = RiskGate(self.risk_config, store, self.engine.submit)
        self.desk = ExecutionDesk(
            self.broker, self.engine.submit, universe=self.feed.universe, risk=self.risk
        )
        self.risk_monitor = DailyLossMonitor(
            self.risk_config, store, self.engine.submit, desk=self.desk, bus=self.engine.bus
        ).start()
        self.reconciler = Reconciler(
            self.broker, self.engine.submit, risk=self.risk, config=self.reconciler_config
        ).start()  # on start, then every interval_s
        marks = store.get("market.marks", None) or {}
        self.resumed_after_ns = max((m.get("ts") or 0 for m in marks.values()), default=0)
        self._feed_thread = threading.Thread(target=self._run_feed, name="lab-feed", daemon=True)
        self._feed_thread.start()
        return self

    def _run_feed(self) -> None:
        store = self.engine.store
        session_date = datetime.fromtimestamp(self.feed.open_ns / 1e9, tz=IST).date().isoformat()
        if (store.get("pnl.daily", None) or {}).get("session_date") != session_date:
            self.desk.reset_daily_pnl(session_date)
        if (store.get("market.session", None) or {}).get("session_date") != session_date:
            self.router.open_session(self.feed.open_ns)
        speed = None if self.feed.config.as_fast_as_possible else self.feed.config.speed
        try:
            run_paced(self._resumed_ticks(), self.router.on_tick, speed=speed, stop=self._stop)
            if (
                not self._stop.is_set()
                and (store.get("market.session", None) or {}).get("status") != "closed"
            ):
                self.router.close_session(self.feed.close_ns)
        except TradelabError:
            # The journal writer failed: nothing more can be journaled, so the session ends
            # here; `engine.journal_failure` says why (the caller reports it).
            if self.engine.journal_failure is None:
                raise
            log.info("feed stopped: the journal writer failed")
        finally:
            self.session_finished.set()

    def _resumed_ticks(self) -> Iterator[Tick]:
        """The feed's ticks after the last journaled mark; the stretch before it (journaled before
        a restart) is skipped unpaced, its latest quotes handed to the broker so it can fill."""
        latest_quotes: dict[str, Tick] = {}
        for tick in self.feed.ticks():
            if tick.ts <= self.resumed_after_ns:
                latest_quotes[tick.symbol] = tick
                continue
            if latest_quotes:
                for quote in latest_quotes.values():
                    self.broker.on_quote(quote)
                latest_quotes.clear()
            yield tick

    def place_order(self, symbol: str, side: str, quantity: int, **kwargs: Any) -> str:
        """Send an order through the desk; see `ExecutionDesk.place_order`."""
        if self.desk is None:
            raise RuntimeError("start() the lab before placing orders")
        return self.desk.place_order(symbol, side, quantity, **kwargs)

    def status(self) -> dict[str, Any]:
        """A one-line view of the session for humans: seq, exchange time, index, book."""
        store = self.engine.store
        index = (store.get("market.marks.NIFTY", None) or {}).get("price")
        positions = store.get("trading.positions", None) or {}
        daily = store.get("pnl.daily", None) or {}
        return {
            "state": self.engine.state,
            "seq": store.version,
            "exchange_time": datetime.fromtimestamp(self.feed.clock.now_ns() / 1e9, tz=IST),
            "index": index,
            "ticks": self.router.ticks_routed,
            "bars": self.router.bars_submitted,
            "open_positions": sum(1 for p in positions.values() if p.get("net_quantity")),
            "daily_pnl": daily.get("net"),
        }

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the feed thread, then the engine (drain, snapshot, close)."""
        self._stop.set()
        if self._feed_thread is not None:
            self._feed_thread.join(timeout)
        if self.risk_monitor is not None:
            self.risk_monitor.stop(timeout)
        if self.reconciler is not None:
            self.reconciler.stop(timeout)
        self.engine.stop(timeout)
        self.broker.close()

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
