"""The console header: runner, risk, engine and feed health, last seq and its time, staleness.

Per-session components (one `HeaderBar` of texts and the watchdog, a `Badge` for the halt banner;
never shared); `Header.apply_state` and `apply_changes` run in the session's own callback.
"""

from __future__ import annotations

import time
from typing import Any

import panel as pn

from tradelab.trading.risk_state import HALT_MODES
from tradelab.ui.badge import Badge
from tradelab.ui.frames import ist_day_minute, ist_ms
from tradelab.ui.header_bar import BarText, HeaderBar
from tradelab.ui.view import Changes
from tradelab.ui.watchdog import ConnectionWatchdog

_BANNER_STYLE = (
    "background:#f8d7da;color:#842029;padding:6px 10px;border-radius:4px;font-weight:bold"
)


class Header:
    """Texts with the stable CSS hooks (`tl-last-seq`, `tl-runner-state`, `tl-risk-state`,
    `tl-connection`, `tl-stale`) that browser tests and users rely on."""

    def __init__(self, stale_after_seconds: float) -> None:
        self.stale_after_ns = int(stale_after_seconds * 1e9)
        # Several beats per max age, at most one a second: a late beat is not a lost server.
        self.heartbeat_ns = int(min(1.0, stale_after_seconds / 3) * 1e9)
        self._last_beat_ns = 0
        # Set once the exchange session has closed: no tick and no event is owed until the
        # next open, so silence is not staleness then.
        self.market_closed_ns: int | None = None
        # The connection badge and the stale marker (the browser judges the server's silence).
        self.watchdog = ConnectionWatchdog(
            max_age_ms=max(100, int(stale_after_seconds * 1000)), margin=(4, 10)
        )
        self.bar = bar = HeaderBar(watchdog=self.watchdog, sizing_mode="stretch_width")
        BarText(bar, "tl-title", "tradelab", "margin:4px 10px;font-weight:bold")
        self.runner = BarText(bar, "tl-runner-state", "runner: starting")
        self.risk = BarText(bar, "tl-risk-state", "risk: -")
        self.engine = BarText(bar, "tl-engine-state", "engine: -")
        self.feed = BarText(bar, "tl-feed-state", "feed: -")
        # The exchange clock (a simulated session runs it 60x the wall's), to the minute: what
        # the trades, the bars and the P&L chart are timed by.
        self.market_time = BarText(bar, "tl-market-time", "market: -")
        BarText(bar, "tl-seq-label", "seq", "margin:4px 0")
        self.last_seq = BarText(bar, "tl-last-seq", "0")
        # When the engine journaled that seq: the wall clock, the server's liveness.
        self.last_time = BarText(bar, "tl-last-time", "journaled - IST")
        self.pnl = BarText(bar, "tl-pnl", "P&L: -")
        self.banner = Badge("tl-risk-banner", style=_BANNER_STYLE, hidden=True)
        # A strategy that raised is stopped while the session goes on: said as loudly as a halt.
        self.failures = Badge("tl-strategy-banner", style=_BANNER_STYLE, hidden=True)
        # A broker the reconciler could not reach: orders are rejected until it answers.
        self.broker = Badge("tl-broker-banner", style=_BANNER_STYLE, hidden=True)
        # A strategy hook that does not return holds every strategy and exit (hook_watch.py).
        self.stalled = Badge("tl-stalled-banner", style=_BANNER_STYLE, hidden=True)
        # A journal that can no longer be written: nothing the page shows after it is kept.
        self.journal = Badge("tl-journal-banner", style=_BANNER_STYLE, hidden=True)
        self.layout = pn.Column(
            bar,
            self.journal,
            self.banner,
            self.failures,
            self.broker,
            self.stalled,
            sizing_mode="stretch_width",
        )

    def apply_state(self, state: dict[str, Any]) -> None:
        """Runner, risk and engine badges from the host's header section."""
        holds = state.get("strategy_holds") or {}
        strategies = ", ".join(f"{n} {holds.get(n, s)}" for n, s in state["strategies"].items())
        # The runner's own status, or what its strategies say when one was paused / stopped.
        shown = state["runner_status"]
        values = set(state["strategies"].values())
        if shown == "running" and values and "running" not in values:
            shown = "paused" if "paused" in values else "stopped"
        self.runner.set(f"runner: {shown}" + (f" ({strategies})" if strategies else ""))
        risk = state["risk_state"]
        self.risk.set(f"risk: {risk}")
        control = state["risk_control"]
        self.banner.show(
            risk in HALT_MODES,
            f"Trading {risk.upper()} by {control.get('by') or '?'}: "
            f"{control.get('reason') or 'no reason given'}",
        )
        failed = dict(state.get("strategy_failures") or {})
        seq, names = state.get("overflow_stopped") or (0, [])
        for name in names:  # stopped by the runner, not by an operator: said as loudly
            if state["strategies"].get(name) == "stopped":
                failed[name] = f"the runner's inbox overflowed after seq {seq}: raise inbox_limit"
        self.failures.show(
            bool(failed),
            "; ".join(f"Strategy {name} FAILED ({why})" for name, why in failed.items())
            + ": stopped until an operator starts it again",
        )
        down = {
            name: health
            for name, health in (state.get("broker_health") or {}).items()
            if health.get("state") == "degraded"
        }
        self.broker.show(
            bool(down),
            "; ".join(
                f"Broker {name} DEGRADED ({health.get('reason') or 'no reason given'})"
                for name, health in down.items()
            )
            + ": orders are rejected and nothing reconciles until it answers",
        )
        self.engine.set(f"engine: {state['engine_status']}")
        pnl = state["pnl"] or {}
        net, day = pnl.get("net"), (pnl.get("daily") or {}).get("net")
        # The whole book's net beside the day's, which the intraday chart draws: alone, the
        # total read as the chart's last point and disagreed with it from the second day on.
        today = "" if day is None else f" (today {day:+,.2f})"
        self.pnl.set("P&L: -" if net is None else f"P&L: {net:,.2f}{today}")
        session = state.get("market_session") or {}
        closed = session.get("status") == "closed"
        self.market_closed_ns = (session.get("ts") or 0) if closed else None
        if closed and session.get("ts"):
            # The exchange clock stops at the close (15:30), not at the last tick before it
            # (15:29:59), and reads so whether the console saw the session or started after.
            self.market_time.set(f"market {ist_day_minute(session['ts'])} IST")

    def show_journal_failure(self, failure: BaseException | None) -> None:
        """The engine's journal failure, read on every push (no event follows one to show it)."""
        self.journal.show(
            failure is not None,
            f"Journal FAILED ({failure}): nothing is journaled any more; the console stops"
            if failure is not None
            else "",
        )

    def show_stalled(self, stalled: dict[str, Any] | None) -> None:
        """The runner's stuck hook (HookWatch.stalled), read on every push: while it lasts a
        session at max speed journals nothing, so no section would change to show it."""
        self.stalled.show(
            bool(stalled),
            f"Strategy {stalled['strategy']} STALLED in {stalled['hook']} for "
            f"{stalled['seconds']:.0f} s: every strategy and its exits (stop loss, target) wait "
            "for it"
            if stalled
            else "",
        )

    def apply_changes(
        self, changes: Changes, now_ns: int | None = None, feed_late_s: float | None = None
    ) -> bool:
        """Seq, its time, feed health and the stale marker; True while stale. `feed_late_s`:
        how late a paced feed is by its own schedule (Lab's `feed_late_s`): while it waits for
        a tick not due yet (a replay at 1x is 15 s between a 1m bar's ticks) quiet is no fault."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        on_schedule = feed_late_s is not None and feed_late_s * 1e9 <= self.stale_after_ns
        self.last_seq.set(str(changes.last_seq))
        if changes.last_event_ns:
            self.last_time.set(f"journaled {ist_ms(changes.last_event_ns)} IST")
        if self.market_closed_ns:
            self.market_time.set(f"market {ist_day_minute(self.market_closed_ns)} IST")
        elif changes.market_ns:
            self.market_time.set(f"market {ist_day_minute(changes.market_ns)} IST")
        event_age = (now_ns - changes.last_event_ns) if changes.last_event_ns else None
        tick_age = (now_ns - changes.last_tick_ns) if changes.last_tick_ns else None
        reasons = []
        if self.market_closed_ns is not None:
            closed_at = ist_ms(self.market_closed_ns)[:5] if self.market_closed_ns else "?"
            self.feed.set(f"feed: market closed at {closed_at} IST")
        elif tick_age is None:
            self.feed.set("feed: waiting")
        elif tick_age > self.stale_after_ns and not on_schedule:
            self.feed.set("feed: silent")
            reasons.append(f"no feed tick for {_age(tick_age)}")
        else:  # coarse on purpose: a text that changes every push would be resent every push
            self.feed.set("feed: live")
        if (
            self.market_closed_ns is None
            and event_age is not None
            and event_age > self.stale_after_ns
            and not on_schedule
        ):
            reasons.append(f"no engine event for {_age(event_age)}")
        stale_text = "STALE: " + "; ".join(reasons) if reasons else ""
        if self.watchdog.server_stale != stale_text:
            self.watchdog.server_stale = stale_text
        if now_ns - self._last_beat_ns >= self.heartbeat_ns:
            self._last_beat_ns = now_ns
            self.watchdog.heartbeat += 1
        return bool(reasons)

    @property
    def stale_text(self) -> str:
        """What the stale marker says by the server's verdict ('' while live)."""
        return self.watchdog.server_stale


def _age(ns: int) -> str:
    """How long a silence has lasted, as in 'no feed tick for 31.9 s'."""
    seconds = ns / 1e9
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
