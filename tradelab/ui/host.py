"""`ConsoleHost`: the one running Lab of a console server process, the shared view its bus feeds,
the operator commands, and the session bookkeeping every browser session reports to.

Thread model: the view's handler runs on the engine's kernel thread; one `console-sampler`
thread records the equity curve; everything else (`frame`, `session_*`, `record_push`) is called
from session callbacks on the server's event loop and takes a short lock. No Bokeh here.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pandas as pd

from tradelab.errors import TradelabError
from tradelab.journal.journal_file import refuse_if_damaged
from tradelab.lab import Lab
from tradelab.market.instruments import IST
from tradelab.metrics_sampler import TOPIC as METRICS_TOPIC
from tradelab.ui import frames
from tradelab.ui.auth import AuthSettings
from tradelab.ui.closed_pages import ClosedPageNoise
from tradelab.ui.commands import OperatorCommands
from tradelab.ui.config import ConsoleConfig
from tradelab.ui.history import MetricsHistory
from tradelab.ui.view import SharedView

log = logging.getLogger(__name__)

HOST_CACHE_KEY = "tradelab.console.host"
CONFIG_ENV = "TRADELAB_CONFIG"
_PUSH_SAMPLES = 2048
# Sections costly to build (implied vols, resampling): rebuilt at most this often.
_MIN_REBUILD_S = {"marks": 1.0, "bars": 1.0}


class ConsoleHost:
    """One per server process: `ConsoleHost(lab, config).start()`, shared by every session."""

    def __init__(
        self, lab: Lab, config: ConsoleConfig | None = None, *, auth: AuthSettings | None = None
    ):
        """`auth`: how the server checks users (basic auth, OAuth); when configured only its
        operators may command, otherwise (local use) everyone may."""
        self.lab = lab
        self.config = config if config is not None else ConsoleConfig()
        self.view = SharedView(
            tape_size=self.config.tape_size,
            alert_size=self.config.alert_size,
            topic_rows=self.config.tape_rows,
        )
        self.auth = auth if auth is not None else AuthSettings()
        self.commands = OperatorCommands(lab, operators=self.auth.command_operators)
        self._lock = threading.Lock()
        self._frames: dict[str, tuple[int, Any, float]] = {}
        self._sessions: dict[str, dict[str, Any]] = {}
        self.sessions_opened = 0
        self.sessions_closed = 0
        self.pushes = 0
        self._push_lag_ms: deque[float] = deque(maxlen=_PUSH_SAMPLES)
        self._callbacks: weakref.WeakSet[Any] = weakref.WeakSet()
        # (exchange time ns, the day's net P&L): the intraday P&L chart's points, the sampler's
        # and a restart's seed; started over when a new exchange day opens (`_equity_day`).
        self.equity: deque[tuple[int, float]] = deque(maxlen=self.config.chart_points)
        self._equity_day: str | None = None
        # The journaled metrics samples (earlier runs' and this one's) for the metrics tab.
        self.metrics_history = MetricsHistory(self.config.chart_points)
        self._subscription: Any = None
        self._history_subscription: Any = None
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        # Tracebacks of pages closed during a push, dropped from the log (counted).
        self.closed_page_noise = ClosedPageNoise()
        self.started = False

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> ConsoleHost:
        """Subscribe the view before the Lab starts (it sees recovery and the first ticks),
        then start the Lab and the equity sampler."""
        if self.started:
            return self
        self.metrics_history.seed(self.lab.config.journal_path)  # before the engine holds it
        self.seed_equity(self.lab.config.journal_path)
        self.seed_tape(self.lab.config.journal_path)
        bus = self.lab.engine.bus
        self._subscription = bus.subscribe("*", self.view.on_event, name="console-view")
        self._history_subscription = bus.subscribe(
            METRICS_TOPIC, self.metrics_history.on_event, name="console-metrics-history"
        )
        sampler = self.lab.metrics_sampler
        if sampler is not None:  # the console's own figures go into the journaled samples
            sampler.add_source("console", self._sampled_figures)
        try:
            self.lab.start()
        except BaseException:
            self._subscription.unsubscribe()
            self._history_subscription.unsubscribe()
            raise
        self._sampler = threading.Thread(target=self._sample, name="console-sampler", daemon=True)
        self._sampler.start()
        self.closed_page_noise.install()
        self.started = True
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop sampling, then the Lab (it drains its queue and takes a snapshot)."""
        if not self.started:
            return
        self.started = False
        self.closed_page_noise.remove()
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout)
        for subscription in (self._subscription, self._history_subscription):
            if subscription is not None:
                subscription.unsubscribe()
        if self.lab.metrics_sampler is not None:
            self.lab.metrics_sampler.remove_source("console")
        self.lab.stop(timeout)

    def seed_tape(self, journal: str | Path) -> int:
        """The tape's rows an earlier run of `journal` left: the last `topic_rows` events of
        each topic (SharedView.seed); returns how many. Read before the engine holds the file;
        one that cannot be read leaves the tape to this run's events."""
        frame = _read_earlier_run(
            journal,
            "SELECT seq, ts, topic, key, payload FROM events "
            "QUALIFY row_number() OVER (PARTITION BY topic ORDER BY seq DESC) <= ? ORDER BY seq",
            [self.view.topic_rows],
            "tape history",
        )
        if frame is None:
            return 0
        decode = msgspec.json.decode
        self.view.seed(
            [
                (int(seq), int(ts), topic, key, decode(payload))
                for seq, ts, topic, key, payload in frame.itertuples(index=False)
            ]
        )
        return len(frame)

    def seed_equity(self, journal: str | Path) -> int:
        """The intraday P&L curve of the last exchange day an earlier run of `journal` left
        (its `equity` view less the net the day opened on), so a restarted console's chart goes
        on from it; returns how many points (0 with no journal yet). Read before the engine
        holds the file; one that cannot be read leaves the chart to the sampler."""
        frame = _read_earlier_run(
            journal,
            "SELECT exchange_ts, net FROM equity WHERE exchange_ts IS NOT NULL ORDER BY seq",
            None,
            "P&L history",
        )
        if frame is None or frame.empty:
            return 0
        days = pd.to_datetime(frame["exchange_ts"], unit="ns", utc=True).dt.tz_convert(IST).dt.date
        last = days.iloc[-1]
        before = frame["net"][days < last]
        opened_on = float(before.iloc[-1]) if len(before) else 0.0
        today = frame[days == last].tail(self.equity.maxlen)
        nets = (today["net"] - opened_on).tolist()
        self.equity.extend(zip(today["exchange_ts"].tolist(), nets, strict=True))
        self._equity_day = last.isoformat()
        return len(today)

    def _sample(self) -> None:
        store = self.lab.engine.store
        while not self._stop.wait(self.config.sample_seconds):
            daily = store.get("pnl.daily", None) or {}
            net, day = daily.get("net"), daily.get("session_date")
            if net is None:
                continue
            if day != self._equity_day:  # a new exchange day: its own curve
                self.equity.clear()
                self._equity_day = day
            # On the exchange clock, as the bars are: the two charts share one time axis.
            extend_curve(self.equity, self.lab.clock.now_ns(), float(net))

    # -- what sessions read ---------------------------------------------------------------------
    def frame(self, section: str) -> tuple[int, Any]:
        """(version, the section's table or header dict), built once per version of the section
        whatever the number of sessions (the option chain at most once a second); callers must
        not mutate it and ask again while `version` is older than the view's."""
        version = self.view.section_version(section)
        now = time.monotonic()
        with self._lock:
            cached = self._frames.get(section)
            if cached is not None and (
                cached[0] == version or now - cached[2] < _MIN_REBUILD_S.get(section, 0.0)
            ):
                return cached[3], cached[1]
        value = frames.build(section, self.lab, self.config)
        with self._lock:
            shown = version
            if cached is not None and _same(cached[1], value):
                # Marks bump the positions section even when no row changes: keep the version
                # sessions already show, so none of them resends an identical table.
                value, shown = cached[1], cached[3]
            self._frames[section] = (version, value, now, shown)
        return shown, value

    def equity_frame(self) -> pd.DataFrame:
        rows = list(self.equity)
        frame = pd.DataFrame(rows, columns=["time", "net_pnl"])
        # Naive IST: the chart's axis then reads in the exchange's clock, like the header.
        frame["time"] = (
            pd.to_datetime(frame["time"], unit="ns", utc=True)
            .dt.tz_convert(IST)
            .dt.tz_localize(None)
        )
        return frame

    # -- session bookkeeping --------------------------------------------------------------------
    def session_opened(self, session_id: str, user: str | None) -> None:
        with self._lock:
            self._sessions[session_id] = {"user": user, "opened_ns": time.time_ns()}
            self.sessions_opened += 1

    def session_closed(self, session_id: str) -> None:
        with self._lock:
            if self._sessions.pop(session_id, None) is not None:
                self.sessions_closed += 1

    def track_callback(self, callback: Any) -> None:
        """Remember a session's periodic callback (weakly) to count those still running."""
        self._callbacks.add(callback)

    def shared_watchers(self) -> int:
        """Watchers on the shared strategy objects: sessions must leave none behind. A strategy's
        own `@param.depends(watch=True)` methods are not counted: param registers those with a
        negative precedence, where `param.watch` (what a session would call) cannot; nor is the
        runner's own, which journals a strategy's change of its own parameters."""
        runner = self.lab.runner
        strategies = runner.strategies.values() if runner is not None else ()
        own = runner.params_watchers() if runner is not None else []
        return sum(
            1
            for strategy in strategies
            for per_param in strategy.param.watchers.values()
            for watchers in per_param.values()
            for watcher in watchers
            if watcher.precedence >= 0 and watcher not in own
        )

    def record_push(self, lag_ms: float) -> None:
        self.pushes += 1
        self._push_lag_ms.append(lag_ms)

    def _sampled_figures(self) -> dict[str, float | int | None]:
        figures = self.push_figures()
        return {
            "sessions": int(figures["console_sessions"]),
            "push_lag_ms_p99": figures.get("console_push_lag_ms_p99"),
        }

    def push_figures(self) -> dict[str, float]:
        """The console's own figures for /metrics (gauges `tradelab_console_<name>`)."""
        lags = sorted(self._push_lag_ms)
        with self._lock:
            sessions = len(self._sessions)
        figures = {
            "console_sessions": float(sessions),
            "console_pushes": float(self.pushes),
            "console_closed_page_noise": float(self.closed_page_noise.dropped),
        }
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            lag = _quantile(lags, q)
            if lag is not None:
                figures[f"console_push_lag_ms_{name}"] = lag
        return figures

    def metrics(self) -> dict[str, Any]:
        """Sessions, coalescing and push figures, with the engine's and the bus's own."""
        lags = sorted(self._push_lag_ms)
        engine = self.lab.engine
        bus = engine.bus.metrics()
        figures = engine.metrics()
        with self._lock:
            sessions = len(self._sessions)
        return {
            # First, so the metrics tab shows them unfolded: the journal as submitters feel it.
            "journal_commit_latency_ms": _latency(figures.get("journal_commit_latency")),
            "journal_critical_ack_latency_ms": _latency(
                figures.get("journal_critical_ack_latency")
            ),
            "sessions": sessions,
            "sessions_opened": self.sessions_opened,
            "sessions_closed": self.sessions_closed,
            "view_subscriptions": sum(
                1 for sub in engine.bus.subscriptions() if sub.name == "console-view"
            ),
            "session_callbacks": sum(1 for cb in list(self._callbacks) if cb.running),
            "shared_watchers": self.shared_watchers(),
            "pushes": self.pushes,
            "push_lag_ms_p50": _quantile(lags, 0.5),
            "push_lag_ms_p99": _quantile(lags, 0.99),
            "view": self.view.metrics(),
            "bus_events_per_s": bus["rate_per_s_recent"],
            "bus_handler_failures": bus["handler_failures_total"],
            "engine": figures,
        }


def _latency(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """An engine latency summary as the metrics tab shows it: ms rounded to the microsecond."""
    if summary is None:
        return None  # the engine has no journal writer running

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "p50": ms(summary["p50_ms"]),
        "p99": ms(summary["p99_ms"]),
        "max": ms(summary["max_ms"]),
        "batches": summary["count"],  # every one timed; the quantiles cover the window
        "window": summary["window"],
        "window_limit": summary["window_limit"],
    }


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, pd.DataFrame) or isinstance(new, pd.DataFrame):
        return isinstance(old, pd.DataFrame) and isinstance(new, pd.DataFrame) and old.equals(new)
    try:
        return bool(old == new)
    except (TypeError, ValueError):  # values without a plain truth value: treat as changed
        return False


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def host_from_settings(path: str | None = None) -> ConsoleHost:
    """A started host for the settings file at `path` (else $TRADELAB_CONFIG, else
    ./tradelab.yaml when present, else the defaults)."""
    from tradelab.settings import DEFAULT_FILE, load_settings

    if path is None:
        path = os.environ.get(CONFIG_ENV) or (
            DEFAULT_FILE if os.path.exists(DEFAULT_FILE) else None
        )
    settings = load_settings(path)
    auth = AuthSettings.from_panel_config(settings.console.operators)
    return ConsoleHost(settings.make_lab(), settings.console, auth=auth).start()


def shared_host(factory: Callable[[], ConsoleHost] | None = None) -> ConsoleHost:
    """The process-wide host: built by the first caller (`factory`, default
    `host_from_settings`), then the same object for every session, never rebuilt. It is
    stopped when the process exits (Ctrl-C on the server: the Lab drains and snapshots)."""
    import panel as pn

    def build() -> ConsoleHost:
        host = (factory or host_from_settings)()
        atexit.register(host.stop)
        return host

    return pn.state.as_cached(HOST_CACHE_KEY, build)


def extend_curve(curve: deque[tuple[int, float]], ts: int, net: float) -> None:
    """Add the sample (`ts`, `net`) to the bounded P&L curve. A flat stretch moves its end
    point instead of adding one: after the close (or in a silent market) a sample a second
    would otherwise roll the whole session out of the ring within `chart_points` seconds."""
    if curve and ts <= curve[-1][0]:
        return  # the clock did not move: nothing new to draw
    if len(curve) >= 2 and curve[-1][1] == net and curve[-2][1] == net:
        curve[-1] = (ts, net)
    else:
        curve.append((ts, net))


def _read_earlier_run(journal: str | Path, query: str, params: Any, what: str) -> Any:
    """`query` over an earlier run's `journal` (a DataFrame), or None: no journal yet, or one
    that cannot be read (said on the log; the console then starts from this run's events)."""
    if not Path(journal).exists():
        return None
    from tradelab.analytics import Analytics  # analytics only here: a console import

    try:
        return Analytics(journal).sql(query, params)
    except (TradelabError, duckdb.Error) as exc:
        refuse_if_damaged(exc, journal, what)
        log.warning("%s not read from %s: %s", what, journal, exc)
        return None
