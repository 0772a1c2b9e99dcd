"""The console header: runner, risk, engine and feed health, last seq and its time, staleness.

Per-session Panel panes (never shared); `Header.update` runs in the session's own callback.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import panel as pn

from tradelab.market.instruments import IST
from tradelab.trading.risk_state import HALT_MODES
from tradelab.ui.view import Changes


def _badge(css: str, text: str = "") -> pn.pane.HTML:
    return pn.pane.HTML(text, css_classes=[css], margin=(4, 10))


class Header:
    """Badges with the stable CSS hooks (`tl-last-seq`, `tl-runner-state`, `tl-risk-state`,
    `tl-stale`) that browser tests and users rely on."""

    def __init__(self, stale_after_seconds: float) -> None:
        self.stale_after_ns = int(stale_after_seconds * 1e9)
        self.runner = _badge("tl-runner-state", "runner: starting")
        self.risk = _badge("tl-risk-state", "risk: -")
        self.engine = _badge("tl-engine-state", "engine: -")
        self.feed = _badge("tl-feed-state", "feed: -")
        self.pnl = _badge("tl-pnl", "P&L: -")
        self.last_seq = pn.pane.Str("0", css_classes=["tl-last-seq"], margin=(4, 2))
        self.last_time = pn.pane.Str("-", css_classes=["tl-last-time"], margin=(4, 10))
        self.connection = _badge("tl-connection", "connected")
        self.banner = pn.pane.Alert(
            "", alert_type="danger", visible=False, css_classes=["tl-risk-banner"]
        )
        self.stale = pn.pane.Alert(
            "", alert_type="warning", visible=False, css_classes=["tl-stale"]
        )
        self.layout = pn.Column(
            pn.Row(
                pn.pane.HTML("<b>tradelab</b>", margin=(4, 10)),
                self.runner,
                self.risk,
                self.engine,
                self.feed,
                pn.pane.HTML("seq", margin=(4, 2)),
                self.last_seq,
                self.last_time,
                self.pnl,
                self.connection,
            ),
            self.banner,
            self.stale,
            sizing_mode="stretch_width",
        )

    def apply_state(self, state: dict[str, Any]) -> None:
        """Runner, risk and engine badges from the host's header section."""
        strategies = ", ".join(f"{n} {s}" for n, s in state["strategies"].items())
        # The runner's own status, or what its strategies say when one was paused / stopped.
        shown = state["runner_status"]
        values = set(state["strategies"].values())
        if shown == "running" and values and "running" not in values:
            shown = "paused" if "paused" in values else "stopped"
        _set(self.runner, f"runner: {shown}" + (f" ({strategies})" if strategies else ""))
        risk = state["risk_state"]
        _set(self.risk, f"risk: {risk}")
        if risk in HALT_MODES:
            control = state["risk_control"]
            _set(
                self.banner,
                f"Trading {risk.upper()} by {control.get('by') or '?'}: "
                f"{control.get('reason') or 'no reason given'}",
            )
        if self.banner.visible != (risk in HALT_MODES):
            self.banner.visible = risk in HALT_MODES
        _set(self.engine, f"engine: {state['engine_status']}")
        net = (state["pnl"] or {}).get("net")
        _set(self.pnl, "P&L: -" if net is None else f"P&L: {net:,.2f}")

    def apply_changes(self, changes: Changes, now_ns: int | None = None) -> bool:
        """Seq, its time, feed health and the stale marker; True while stale."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        _set(self.last_seq, str(changes.last_seq))
        if changes.last_event_ns:
            when = datetime.fromtimestamp(changes.last_event_ns / 1e9, tz=IST)
            _set(self.last_time, when.strftime("%H:%M:%S.%f")[:-3])
        event_age = (now_ns - changes.last_event_ns) if changes.last_event_ns else None
        tick_age = (now_ns - changes.last_tick_ns) if changes.last_tick_ns else None
        _set(self.feed, "feed: -" if tick_age is None else f"feed: {_age(tick_age)}")
        reasons = []
        if tick_age is not None and tick_age > self.stale_after_ns:
            reasons.append(f"no feed tick for {_age(tick_age)}")
        if event_age is not None and event_age > self.stale_after_ns:
            reasons.append(f"no engine event for {_age(event_age)}")
        stale = bool(reasons)
        if stale:
            _set(self.stale, "STALE: " + "; ".join(reasons))
        if self.stale.visible != stale:
            self.stale.visible = stale
        return stale


def _age(ns: int) -> str:
    seconds = ns / 1e9
    return f"{seconds * 1000:.0f} ms ago" if seconds < 1 else f"{seconds:.1f} s ago"


def _set(pane: Any, text: str) -> None:
    """Set a pane's text only when it changed: an unchanged value sends nothing."""
    if pane.object != text:
        pane.object = text
