"""`ConsoleConfig`: how the console is served and how often it pushes, one settings section.

Plain param (no Panel import), read by `tradelab serve` and `ConsoleHost` at start.
"""

from __future__ import annotations

import param


class ConsoleConfig(param.Parameterized):
    """The live console: where it listens, how fast it pushes, what it keeps, who may act."""

    address = param.String(
        default="127.0.0.1",
        doc="Address the console listens on; 127.0.0.1 keeps it on this machine.",
    )
    port = param.Integer(default=5006, bounds=(1, 65535), doc="TCP port of the console.")
    push_rate_hz = param.Number(
        default=15.0,
        bounds=(1.0, 60.0),
        doc="Updates per second each browser session gets at most; events between two "
        "updates are coalesced (latest value per key, tape rows batched).",
    )
    tape_size = param.Integer(
        default=1000,
        bounds=(10, 100_000),
        doc="Events the shared tape ring keeps; the oldest is dropped when full (counted). A "
        "session that fell further behind, or a page that opens, starts its tape again from the "
        "ring and the newest tape_rows events of each topic.",
    )
    tape_rate_hz = param.Number(
        default=4.0,
        bounds=(0.5, 60.0),
        doc="Redraws per second of the event tape at most (each redraw resends its rows); new "
        "rows wait for the next one. The header follows push_rate_hz.",
    )
    tape_rows = param.Integer(
        default=20,
        bounds=(10, 2000),
        doc="Rows of the event tape each session shows, newest first, and keeps of each topic "
        "for its topic filter (the shared view keeps as many of each topic for pages opened "
        "later); every redraw renders them all again in each browser (200 rows: "
        "100-300 ms frames with five pages in a storm). Beyond 20 rows the tape scrolls.",
    )
    alert_size = param.Integer(
        default=200,
        bounds=(1, 10_000),
        doc="Critical events (fills, closed positions, breaches, mismatches) kept for "
        "notifications; the oldest is dropped when full.",
    )
    stale_after_seconds = param.Number(
        default=5.0,
        bounds=(0.1, 3600.0),
        doc="The stale marker shows when the feed or the engine has been silent this long, "
        "and (judged by the browser) when the page has heard nothing from the server this long: "
        "its connection badge then says disconnected.",
    )
    chart_points = param.Integer(
        default=2000,
        bounds=(10, 100_000),
        doc="Samples of the intraday equity / P&L curve kept (oldest dropped when full).",
    )
    sample_seconds = param.Number(
        default=1.0,
        bounds=(0.05, 60.0),
        doc="Wall seconds between two samples of the equity / P&L curve.",
    )
    chain_strikes = param.Integer(
        default=5, bounds=(1, 40), doc="Option chain rows shown either side of the ATM strike."
    )
    unused_session_seconds = param.Number(
        default=15.0,
        bounds=(0.5, 3600.0),
        doc="A browser session whose page was closed is destroyed (its callbacks removed) "
        "after this long; it is checked for every half of it.",
    )
    operators = param.List(
        default=[],
        item_type=str,
        doc="Users allowed to use the controls when auth is configured (--basic-auth or "
        "OAuth); empty with no auth: anyone on 127.0.0.1 is an operator.",
    )
