"""`/metrics`: the live session's figures in Prometheus text format, read at scrape time.

`metrics_routes(lab, auth)` gives the tornado route to add beside the console (`pn.serve(...,
extra_patterns=routes)`). Each call builds its own prometheus_client CollectorRegistry (never the
process-wide default) holding the bus's `BusCollector` and a `SessionCollector` that reads the
engine, journal writer, runner, risk, broker and reconciler when scraped, plus `extra()` (the
console's sessions and push latency). Thread model: collection runs on the server's IO loop
thread and only reads counters and immutable store values.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tradelab.bus import BusCollector
from tradelab.trading.risk_state import ACTIVE, HALTED, REDUCING, control_state
from tradelab.ui.auth import AuthCheckedHandler, AuthSettings
from tradelab.ui.metric_families import (
    ENGINE_FIGURES,
    figure,
    labelled,
    latencies,
    trimmed,
)

if TYPE_CHECKING:
    from tradelab.lab import Lab
    from tradelab.ui.commands import OperatorCommands

log = logging.getLogger(__name__)

ExtraFigures = Callable[[], dict[str, float]]
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
RUNNER_STATES = ("added", "running", "paused", "stopped", "failed")


def metrics_routes(
    lab: Lab,
    auth: AuthSettings | None = None,
    extra: ExtraFigures | None = None,
    *,
    commands: OperatorCommands | None = None,
) -> list[tuple[str, type, dict]]:
    """The `/metrics` route for `lab`: auth-checked when `auth` is configured; `extra()` adds
    figures (name -> value, exported as gauges `tradelab_<name>`); `commands` adds the console
    commands carried out and refused."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BusCollector(lab.engine.bus))
    registry.register(SessionCollector(lab, extra=extra, commands=commands))
    return [("/metrics", MetricsHandler, {"registry": registry, "auth": auth})]


class MetricsHandler(AuthCheckedHandler):
    """GET: the registry's figures in the Prometheus text format."""

    def initialize(  # type: ignore[override]
        self, registry: CollectorRegistry, auth: AuthSettings | None = None
    ) -> None:
        super().initialize(auth=auth)
        self.registry = registry

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.set_header("Cache-Control", "no-store")
        self.write(generate_latest(self.registry))


class SessionCollector(Collector):
    """Reads one Lab's parts when scraped (a part not started yet is left out)."""

    def __init__(
        self,
        lab: Lab,
        *,
        extra: ExtraFigures | None = None,
        commands: OperatorCommands | None = None,
    ) -> None:
        self.lab, self.extra, self.commands = lab, extra, commands

    def describe(self) -> list[Metric]:
        return []  # names are checked at scrape time

    def collect(self) -> Iterator[Metric]:
        yield from self._engine()
        yield from self._bus_rate()
        yield from self._store()
        yield from self._runner()
        yield from self._feed()
        yield from self._commands()
        yield from self._extra()

    def _engine(self) -> Iterator[Metric]:
        metrics = self.lab.engine.metrics()
        yield labelled(
            "tradelab_engine_state", "Engine lifecycle state.", "state", metrics["state"]
        )
        for key, name, kind, doc in ENGINE_FIGURES:
            if metrics.get(key) is not None:
                yield figure(kind, name, doc, metrics[key])
        yield from latencies(metrics)
        if metrics.get("durable_seq") is not None:
            yield figure(
                "gauge",
                "tradelab_journal_unsynced_events",
                "Events applied and not yet durable (the journal's lag behind the store).",
                max(0, metrics["version"] - metrics["durable_seq"]),
            )

    def _bus_rate(self) -> Iterator[Metric]:
        bus = self.lab.engine.bus.metrics()
        yield figure(
            "gauge",
            "tradelab_bus_events_per_second",
            f"Events delivered per second over the last {bus['rate_window_s']:g} s.",
            bus["rate_per_s_recent"],
        )
        # Per-handler call-time histograms come from BusCollector; this is their sum.
        subs = self.lab.engine.bus.subscriptions()
        yield figure(
            "counter",
            "tradelab_bus_handler_sampled_seconds",
            "Sampled handler call time, all handlers (1 publish in sample_every).",
            sum(sub.call_time_buckets()[1] for sub in subs),
        )

    def _store(self) -> Iterator[Metric]:
        store = self.lab.engine.store
        get = store.get
        snapshot = get("journal.last_snapshot", None)
        if snapshot is not None:
            yield figure(
                "gauge",
                "tradelab_snapshot_age_seconds",
                "Seconds since the last state snapshot.",
                max(0.0, (time.time_ns() - snapshot["ts"]) / 1e9),
            )
        state = control_state(store)
        risk = GaugeMetricFamily(
            "tradelab_risk_state", "Risk control state (1 = current).", labels=["state"]
        )
        for each in (ACTIVE, HALTED, REDUCING):
            risk.add_metric([each], 1.0 if each == state else 0.0)
        yield risk
        positions = get("trading.positions", None) or {}
        book = (
            (
                "tradelab_orders",
                "Orders known to the book.",
                len(get("trading.orders", None) or {}),
            ),
            (
                "tradelab_orders_working",
                "Orders working at the broker.",
                len(get("trading.working", None) or {}),
            ),
            ("tradelab_trades", "Fills in the book.", len(get("trading.trades", None) or {})),
            (
                "tradelab_positions_open",
                "Open positions.",
                sum(1 for p in positions.values() if p.get("net_quantity")),
            ),
            (
                "tradelab_reconciliation_open_mismatches",
                "Differences the last reconciliation left open.",
                len(get("reconciliation.mismatches", None) or {}),
            ),
            (
                "tradelab_reconciliation_fixes",
                "Differences fixed by reconciliation.",
                get("reconciliation.fixed_count", None) or 0,
            ),
        )
        for name, doc, value in book:
            yield figure("gauge", name, doc, value)
        history = get("trading.history", None) or {}
        yield trimmed(
            "tradelab_book_history_trimmed",
            "Finished orders and fills the live book let go (the journal keeps them).",
            lambda kind: history.get(f"trimmed_{kind}", 0),
        )
        health = GaugeMetricFamily(
            "tradelab_broker_degraded", "1 while broker calls keep failing.", labels=["broker"]
        )
        for broker, record in (get("broker.health", None) or {}).items():
            health.add_metric([broker], 1.0 if record.get("state") == "degraded" else 0.0)
        yield health
        account = getattr(self.lab.broker, "account", None)  # a paper broker's own books
        if account is not None:
            yield trimmed(
                "tradelab_broker_history_trimmed",
                "Fills and finished orders the paper broker's account let go (its bound).",
                lambda kind: getattr(account, f"trimmed_{kind}"),
            )
        reconciler = self.lab.reconciler
        if reconciler is not None:
            yield figure(
                "counter", "tradelab_reconciliation_runs", "Reconciliation runs.", reconciler.runs
            )

    def _runner(self) -> Iterator[Metric]:
        runner = self.lab.runner
        if runner is None:
            return
        metrics = runner.metrics()
        states = GaugeMetricFamily(
            "tradelab_strategy_state",
            "Strategy lifecycle state (1 = current).",
            labels=["strategy", "state"],
        )
        for strategy, current in metrics["strategies"].items():
            for each in RUNNER_STATES:
                states.add_metric([strategy, each], 1.0 if each == current else 0.0)
        yield states
        for key, kind, doc in (  # each named tradelab_runner_<key>
            ("inbox_depth", "gauge", "Events waiting for the runner."),
            ("inbox_limit", "gauge", "Bound of the runner's inbox."),
            ("events_handled", "counter", "Journaled events handled."),
            ("ticks_dropped", "counter", "Ticks dropped (inbox full, or waiting at a stop)."),
            ("ticks_superseded", "counter", "Ticks superseded by a newer one of their symbol."),
            ("events_dropped", "counter", "Events dropped (inbox full)."),
            ("strategy_seconds", "counter", "Time in strategies."),
        ):
            yield figure(kind, f"tradelab_runner_{key}", doc, metrics[key])

    def _feed(self) -> Iterator[Metric]:
        router = self.lab.router
        yield figure(
            "counter", "tradelab_feed_ticks", "Ticks routed from the feed.", router.ticks_routed
        )
        yield figure("counter", "tradelab_feed_bars", "Bars submitted.", router.bars_submitted)
        yield figure("counter", "tradelab_feed_marks", "Marks submitted.", router.marks_submitted)

    def _commands(self) -> Iterator[Metric]:
        if self.commands is None:
            return
        counts = self.commands.metrics()
        done = CounterMetricFamily(
            "tradelab_console_commands", "Operator commands carried out.", labels=["command"]
        )
        for command, n in counts["executed"].items():
            done.add_metric([command], n)
        yield done
        refused = CounterMetricFamily(
            "tradelab_console_commands_refused", "Operator commands refused.", labels=["reason"]
        )
        for reason, n in counts["refused"].items():
            refused.add_metric([reason], n)
        yield refused

    def _extra(self) -> Iterator[Metric]:
        if self.extra is None:
            return
        try:
            figures = self.extra()
        except Exception:  # the console's figures must not take the engine's down with them
            log.exception("extra metrics failed; scraped without them")
            return
        for key, value in figures.items():
            name = f"tradelab_{key}"
            if not _METRIC_NAME.match(name):
                log.warning("extra metric %r is not a valid metric name; left out", key)
                continue
            yield figure("gauge", name, f"Console figure {key}.", value)
