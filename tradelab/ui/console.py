"""`build_console(host, user)`: one browser session's console, and `ConsoleSession`, its updater.

Thread model: everything here runs in the session (its document's callbacks on the server's
event loop). The session pulls from the host's shared versioned view in its own async periodic
callback (never overlapping itself, removed by Panel when the session ends) and applies one
batch (`pn.io.hold`) per push. Nothing is attached to shared objects; the session unregisters
itself from the host in `on_session_destroyed`.
"""

from __future__ import annotations

import time
import uuid
from html import escape
from typing import Any

import pandas as pd
import panel as pn

from tradelab.lab_status import feed_late_s
from tradelab.ui.charts import Charts
from tradelab.ui.controls import Controls
from tradelab.ui.frames import (
    CALL_COLUMNS,
    PUT_COLUMNS,
    chain_rate,
    journaled_params,
    params_table,
)
from tradelab.ui.header import Header
from tradelab.ui.history import history_plot
from tradelab.ui.host import ConsoleHost
from tradelab.ui.tape import EventTape
from tradelab.ui.view import SECTIONS, TapeRow

_CHART_EVERY_NS = 1_000_000_000  # charts and metrics change slowly: at most once a second
# The metrics history gets a sample every few seconds and a redraw costs a HoloViews render.
_HISTORY_EVERY_NS = 5_000_000_000
_NOTIFY = {
    "trade.executed": ("info", "Trade executed: {side} {quantity} {symbol} @ {price}"),
    "position.closed": ("info", "Position closed: {position_id}"),
    "risk.daily_loss_breached": ("error", "Daily loss limit breached"),
    "reconciliation.mismatch": ("warning", "Reconciliation mismatch: {kind}"),
}


def _table(css: str, page_size: int, height: int = 260) -> pn.widgets.Tabulator:
    # Remote pagination: Tabulator resends its rows on every update, so only the page shown
    # goes to the browser.
    return pn.widgets.Tabulator(
        pd.DataFrame(),
        css_classes=[css],
        pagination="remote",
        page_size=page_size,
        disabled=True,
        show_index=False,
        sizing_mode="stretch_width",
        height=height,
    )


_POSITION_TITLES = {
    "net_quantity": "qty",
    "average_price": "avg price",
    "unrealized_pnl": "unrealized",
    "realized_pnl": "realized",
}
# The chain's column titles as a desk writes them (the frame's names say the units).
_CHAIN_TITLES = {"delta": "Δ", "gamma": "Γ", "vega/pt": "vega", "theta/day": "Θ/day"}
_CHAIN_NOTE = (
    "Implied vol and greeks from each option's mark (rate {rate:.1%}): vega per vol"
    " point, Θ per calendar day. The highlighted row is the strike nearest the index."
)


def _chain_row_style(row: pd.Series) -> list[str]:
    """The strike column stands out; the ATM strike's whole row is highlighted."""
    atm = bool(row.get("atm"))
    return [
        "background-color: #fff3bf; font-weight: bold"
        if atm
        else ("background-color: #f1f3f5; font-weight: bold" if name == "strike" else "")
        for name in row.index
    ]


class ConsoleSession:
    """One session's components and its `refresh()` (the periodic callback's body)."""

    def __init__(self, host: ConsoleHost, user: str | None = None) -> None:
        self.host, self.user = host, user
        config = host.config
        self.version = 0
        self.section_versions: dict[str, int] = {}
        self.header = Header(config.stale_after_seconds)
        self.positions = _table("tl-positions", 20)
        # Short titles: the money columns fit the half page's width before any sideways scroll.
        self.positions.titles = _POSITION_TITLES
        self.orders = _table("tl-orders", 20, 200)
        self.trades = _table("tl-trades", 20)
        self.signals = _table("tl-signals", 10, 160)
        self.chain = _table("tl-chain", 2 * config.chain_strikes + 1, 420)
        self.chain.param.update(
            hidden_columns=["atm"],
            # Grouped under calls / puts, each column titled by its figure alone: all 17 fit
            # the page's width, no sideways scroll.
            groups={"calls": CALL_COLUMNS, "puts": PUT_COLUMNS},
            titles={c: _CHAIN_TITLES.get(c[3:], c[3:]) for c in [*CALL_COLUMNS, *PUT_COLUMNS]},
            layout="fit_columns",
        )
        self.chain.style.apply(_chain_row_style, axis=1)  # re-applied to every new value
        self.tape = EventTape(config.tape_rows)
        self.tape_filter = self.tape.filter
        # A per-session widget: the filter's change is shown at once.
        self.tape_filter.param.watch(lambda _event: self.tape.show(), "value")
        lab = host.lab
        self.charts = Charts(config.chart_points, lab.router.bars.intervals, lab.chart_symbol)
        self.metrics = pn.pane.JSON({}, depth=2, css_classes=["tl-metrics"], height=420)
        self.metrics_history = pn.pane.HoloViews(
            None, css_classes=["tl-metrics-history"], sizing_mode="stretch_width"
        )
        self._history_version = -1
        self._last_history_ns = 0
        self._chain_note = _CHAIN_NOTE.format(rate=chain_rate(host.lab))
        strategies = host.lab.runner.strategies if host.lab.runner is not None else {}
        self.params = pn.widgets.Tabulator(
            params_table(strategies), disabled=True, show_index=False, css_classes=["tl-params"]
        )
        self.is_operator = host.commands.is_operator(user)
        self.controls = (
            Controls(
                host.commands,
                user,
                strategies,
                current_params=lambda name: journaled_params(lab).get(name),
            )
            if self.is_operator
            else None
        )
        # Loading spinners until the engine's first events reach this session.
        self._tables = (self.positions, self.orders, self.trades, self.signals, self.tape.pane)
        self._loading = True
        for table in self._tables:
            table.loading = True
        self._last_slow_ns = 0
        self._tape_period_ns = int(1e9 / config.tape_rate_hz)
        self._last_tape_ns = 0
        self.pushes = 0
        self.stale = False
        self.layout = self._layout()

    def _layout(self) -> pn.viewable.Viewable:
        card = pn.Card(title="Controls (operator)", collapsible=False, sizing_mode="stretch_width")
        if self.controls is not None:
            card.append(self.controls.layout)
        else:
            card.append(
                pn.pane.HTML(
                    f'<span class="tl-readonly">read-only: {escape(self.user or "viewer")} is '
                    "not an operator</span>"
                )
            )
        trading = pn.Column(
            "### Positions",
            self.positions,
            "### Open orders",
            self.orders,
            "### Trades",
            self.trades,
            "### Active signals",
            self.signals,
            sizing_mode="stretch_width",
        )
        tape = pn.Column(
            "### Event tape", self.tape_filter, self.tape.pane, sizing_mode="stretch_width"
        )
        tabs = [
            ("Charts", self.charts.layout),
            ("Option chain", pn.Column(self._chain_note, self.chain, sizing_mode="stretch_width")),
            ("Strategy parameters", self.params),
            (
                "Metrics",
                pn.Column(
                    "#### History (journaled samples)",
                    self.metrics_history,
                    "#### Live",
                    self.metrics,
                    sizing_mode="stretch_width",
                ),
            ),
        ]
        self.metrics_tab = len(tabs) - 1
        self.details = details = pn.Tabs(*tabs, dynamic=True, sizing_mode="stretch_width")
        # The history is drawn only while its tab is shown, and at once when it is opened.
        details.param.watch(lambda _event: self._show_history(), "active")  # a session widget
        return pn.Column(
            self.header.layout,
            card,
            pn.Row(trading, tape, sizing_mode="stretch_width"),
            details,
            sizing_mode="stretch_width",
        )

    # -- the periodic callback ------------------------------------------------------------------
    def refresh(self) -> None:
        """Apply everything that changed since the last push, in one batch."""
        host = self.host
        changes = host.view.changes_since(self.version, max_rows=host.config.tape_size)
        now = time.time_ns()
        with pn.io.hold():
            self.stale = self.header.apply_changes(changes, now, feed_late_s(host.lab))
            runner = host.lab.runner
            self.header.show_stalled(runner.hook_watch.stalled() if runner is not None else None)
            self.header.show_journal_failure(host.lab.engine.journal_failure)
            # The first push shows every section as the store has it: after a restart with the
            # market closed no event may ever touch the positions or trades again.
            first = frozenset(SECTIONS) if not self.pushes else frozenset()
            for section in changes.sections | self._behind() | first:
                self._apply_section(section)
            if changes.tape or changes.resync:
                self.tape.add(changes.tape, changes.resync)
            # The tape resends all its rows on every change: at most tape_rate_hz, so a storm
            # costs each browser a few table redraws a second while the header stays live.
            redraw_tape = self.tape.pending and now - self._last_tape_ns >= self._tape_period_ns
            if redraw_tape:
                self._last_tape_ns = now
                self.tape.show()
            if self.version:  # not on the first push: only what happens while it is open
                for row in changes.alerts:
                    self._notify(row)
            # After the first push, never in the same batch as a tape redraw: the browser applies
            # a batch in one task, and a table redraw plus a chart relayout is one long frame.
            apart = not redraw_tape or not self.pushes
            if apart and now - self._last_slow_ns > _CHART_EVERY_NS:
                self._last_slow_ns = now
                self.charts.show_equity(host.equity_frame())
                self.metrics.object = host.metrics()
            if now - self._last_history_ns > _HISTORY_EVERY_NS:
                self._last_history_ns = now
                self._show_history()
        if self._loading and changes.version:
            self._loading = False  # the engine has spoken: the views show what it has
            for table in self._tables:
                table.loading = False
        if changes.tape and self.pushes:  # a first push shows the past: no lag to measure
            host.record_push((time.time_ns() - changes.tape[-1].received_ns) / 1e6)
        self.version = changes.version
        self.pushes += 1

    async def refresh_async(self) -> None:
        self.refresh()

    def _show_history(self) -> None:
        # A new HoloViews plot is a whole new figure sent to the browser (~80 ms of script in a
        # storm with five pages): never for a hidden tab.
        if self.details.active != self.metrics_tab:
            return
        version, frame = self.host.metrics_history.frame()
        if version != self._history_version and not frame.empty:
            self._history_version = version
            self.metrics_history.object = history_plot(frame)

    def _behind(self) -> set[str]:
        """Sections whose last build was throttled (older than what the view has)."""
        view = self.host.view
        return {s for s, v in self.section_versions.items() if v < view.section_version(s)}

    def _apply_section(self, section: str) -> None:
        if section == "params" and self.controls is not None:
            # This page's forms follow the journal's values, even when the table (built from
            # the strategy objects) was already rebuilt with them and keeps its version.
            self.controls.follow(journaled_params(self.host.lab))
        version, value = self.host.frame(section)
        if self.section_versions.get(section) == version:
            return  # a throttled section not rebuilt yet: this session already shows it
        self.section_versions[section] = version
        if section == "positions":
            self.positions.value = value
        elif section == "orders":
            self.orders.value = value
        elif section == "trades":
            self.trades.value = value
        elif section == "signals":
            self.signals.value = value
        elif section == "marks":
            self.chain.value = value
        elif section == "bars":
            self.charts.show_bars(value)
        elif section == "params":  # a change made from any page shows here too
            self.params.value = value
        else:
            self.header.apply_state(value)

    def _notify(self, row: TapeRow) -> None:
        notifications = pn.state.notifications
        if notifications is None:
            return
        kind, text = _NOTIFY[row.topic]
        try:
            message = text.format(**row.payload)
        except (KeyError, IndexError):
            message = text.split(":")[0]
        getattr(notifications, kind)(message, duration=4000)


def served_console(user: str | None = None) -> pn.viewable.Viewable:
    """The served page: the process's console, or, when its session cannot start (a journal
    refused as damaged, a bad setting), a page that says why (not a blank one)."""
    from tradelab.errors import TradelabError
    from tradelab.ui.host import shared_host

    try:
        host = shared_host()
    except TradelabError as exc:
        return pn.pane.Alert(
            f"**The console cannot start.** {escape(str(exc))}", alert_type="danger"
        )
    return build_console(host, user=user)


def build_console(host: ConsoleHost, user: str | None = None) -> pn.viewable.Viewable:
    """One session's console over `host`. Served, it reports to the host and, once its page has
    loaded, pushes from a periodic callback; outside a server (a notebook, a test) call
    `.refresh()` on `console.tl_session` to update it."""
    session = ConsoleSession(host, user)
    session.refresh()
    doc = pn.state.curdoc
    context = getattr(doc, "session_context", None) if doc is not None else None
    if context is not None:
        session_id = context.id or uuid.uuid4().hex
        host.session_opened(session_id, user)
        period_ms = max(1, int(1000 / host.config.push_rate_hz))
        callbacks: list[Any] = []

        def start() -> None:
            # Once the page has loaded, not before: Panel drops changes to plain Bokeh models
            # (the charts' ranges, their streamed points) made between the document's
            # serialization and the browser's ready signal, so a page opened just as the first
            # P&L point came showed an empty chart.
            callback = pn.state.add_periodic_callback(session.refresh_async, period=period_ms)
            host.track_callback(callback)
            callbacks.append(callback)

        pn.state.onload(start)

        def destroyed(context: Any) -> None:
            for callback in callbacks:
                callback.stop()
            host.session_closed(session_id)
            forget_views_of(context._document)

        pn.state.on_session_destroyed(destroyed)
    layout = session.layout
    layout.tl_session = session  # for notebooks and tests; a plain attribute, not a param
    return layout


def forget_views_of(document: Any) -> int:
    """Drop Panel's views rendered into `document`, a closed session's; how many. Panel 1.9's
    notification area registers one per page and never removes it, which kept every closed
    page's whole Bokeh document alive (~2.5 MB a page load, for good)."""
    views = pn.state._views
    gone = [ref for ref, view in list(views.items()) if view[2] is document]
    for ref in gone:
        views.pop(ref, None)
    return len(gone)
