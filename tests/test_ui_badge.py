"""The header's text badges: a change of text is one property change carrying the text as it
is (the browser sets it as text: nothing is escaped or parsed), an unchanged text sends nothing,
and a hidden badge has no element; the header bar sends its texts the same way."""

from __future__ import annotations

import datetime as dt

from bokeh.document import Document

from tradelab.ui.badge import Badge
from tradelab.ui.header import Header
from tradelab.ui.header_bar import BarText, HeaderBar


def test_a_badge_update_is_its_text_as_is_and_an_unchanged_text_sends_nothing():
    badge = Badge("tl-last-seq", "0")
    model = badge.get_root(Document())
    changes: list[str] = []  # what Panel syncs to the browser: the param's change events
    badge.param.watch(lambda event: changes.append(event.new), "text")
    badge.set("41")
    badge.set("41")
    assert changes == ["41"] and model.data.text == "41"
    markup = '<b>risk</b> & "<script>alert(1)</script>"'
    badge.set(markup)
    assert model.data.text == markup  # the browser's textContent: shown, never parsed


def test_a_hidden_badge_has_no_text_and_shows_it_when_asked():
    banner = Badge("tl-risk-banner", hidden=True)
    assert not banner.visible and banner.text == ""
    banner.show(True, "Trading HALTED by alice: <feed>")
    assert banner.visible and banner.text == "Trading HALTED by alice: <feed>"
    banner.show(False)
    assert not banner.visible and banner.text == ""


def test_header_badges_keep_their_css_hooks():
    header = Header(stale_after_seconds=5.0)
    hooks = {b.css for b in (header.runner, header.risk, header.engine, header.feed)}
    assert hooks == {"tl-runner-state", "tl-risk-state", "tl-engine-state", "tl-feed-state"}
    assert (header.last_seq.css, header.last_seq.text) == ("tl-last-seq", "0")


def test_header_bar_texts_are_sent_as_is_and_only_when_they_change():
    bar = HeaderBar()
    seq = BarText(bar, "tl-last-seq", "0")
    pnl = BarText(bar, "tl-pnl", "P&L: -")
    model = bar.get_root(Document())
    sent: list[list] = []  # what Panel syncs to the browser: the param's change events
    bar.param.watch(lambda event: sent.append(event.new), "items")
    seq.set("41")
    seq.set("41")
    assert len(sent) == 1 and [item[1] for item in model.data.items] == ["41", "P&L: -"]
    pnl.set("P&L: <b>1</b> & more")
    assert model.data.items[1][:2] == ["tl-pnl", "P&L: <b>1</b> & more"]  # set as textContent
    assert (seq.text, pnl.text) == ("41", "P&L: <b>1</b> & more")


def test_the_header_is_one_bar_of_texts_and_the_watchdog():
    header = Header(stale_after_seconds=5.0)
    assert header.bar.watchdog is header.watchdog
    hooks = [item[0] for item in header.bar.items]
    assert hooks[1:5] == ["tl-runner-state", "tl-risk-state", "tl-engine-state", "tl-feed-state"]
    assert hooks[-3:] == ["tl-last-seq", "tl-last-time", "tl-pnl"]


def test_a_failed_strategy_gets_a_banner_naming_it_and_why_until_it_runs_again():
    header = Header(stale_after_seconds=5.0)
    state = {
        "runner_status": "running",
        "strategies": {"sma_cross": "failed"},
        "strategy_failures": {"sma_cross": "on_bar raised ZeroDivisionError: division by zero"},
        "risk_state": "normal",
        "risk_control": {},
        "engine_status": "running",
        "pnl": {},
    }
    header.apply_state(state)
    assert header.failures.visible and header.failures.css == "tl-strategy-banner"
    assert header.failures.text == (
        "Strategy sma_cross FAILED (on_bar raised ZeroDivisionError: division by zero): "
        "stopped until an operator starts it again"
    )
    assert header.runner.text == "runner: stopped (sma_cross failed)"
    header.apply_state({**state, "strategies": {"sma_cross": "running"}, "strategy_failures": {}})
    assert not header.failures.visible and header.failures.text == ""


def test_strategies_an_inbox_overflow_stopped_get_the_failed_banner_until_started():
    # The page said only "runner: stopped", as if an operator had stopped them.
    header = Header(stale_after_seconds=5.0)
    state = {
        "runner_status": "running",
        "strategies": {"sma_cross": "stopped"},
        "strategy_failures": {},
        "overflow_stopped": (12, ["sma_cross"]),
        "risk_state": "normal",
        "risk_control": {},
        "engine_status": "running",
        "pnl": {},
    }
    header.apply_state(state)
    assert header.failures.visible and header.failures.text.startswith(
        "Strategy sma_cross FAILED (the runner's inbox overflowed after seq 12: raise inbox_limit)"
    )
    header.apply_state({**state, "strategies": {"sma_cross": "running"}})
    assert not header.failures.visible


def test_a_degraded_broker_gets_a_banner_naming_it_and_why_until_it_answers():
    header = Header(stale_after_seconds=5.0)
    state = {
        "runner_status": "running",
        "strategies": {},
        "strategy_failures": {},
        "risk_state": "active",
        "risk_control": {},
        "engine_status": "running",
        "pnl": {},
        "broker_health": {"paper": {"state": "degraded", "reason": "broker is disconnected"}},
    }
    header.apply_state(state)
    assert header.broker.visible and header.broker.css == "tl-broker-banner"
    assert header.broker.text.startswith("Broker paper DEGRADED (broker is disconnected)")
    header.apply_state({**state, "broker_health": {"paper": {"state": "ok"}}})
    assert not header.broker.visible


def test_a_stalled_strategy_hook_gets_a_banner_while_it_lasts():
    # Every strategy and its exits wait for it on the runner's thread; only the stop said so.
    header = Header(stale_after_seconds=5.0)
    header.show_stalled({"strategy": "hang", "hook": "on_tick", "seconds": 12.3})
    assert header.stalled.visible and header.stalled.css == "tl-stalled-banner"
    assert header.stalled.text.startswith("Strategy hang STALLED in on_tick for 12 s")
    header.show_stalled(None)
    assert not header.stalled.visible


def test_a_journal_that_failed_gets_a_banner_and_ends_the_served_console():
    # The page said "engine: running" over an engine that journaled nothing, and served on.
    from types import SimpleNamespace

    from tradelab.cli_serve import _stop_if_journal_failed
    from tradelab.errors import RecoveryError

    header = Header(stale_after_seconds=5.0)
    failure = RecoveryError("the journal file is damaged: Corrupt database file")
    header.show_journal_failure(failure)
    assert header.journal.visible and header.journal.css == "tl-journal-banner"
    assert header.journal.text.startswith("Journal FAILED (the journal file is damaged")
    header.show_journal_failure(None)
    assert not header.journal.visible
    stopped = []
    loop = SimpleNamespace(stop=lambda: stopped.append(True))
    _stop_if_journal_failed(SimpleNamespace(engine=SimpleNamespace(journal_failure=None)), loop)
    assert stopped == []
    _stop_if_journal_failed(SimpleNamespace(engine=SimpleNamespace(journal_failure=failure)), loop)
    assert stopped == [True]


def test_a_header_on_a_closed_session_shows_the_market_clock_at_the_close():
    # Started again on a session that closed, no tick comes: it read "market: -".
    from tradelab.market.instruments import IST

    header = Header(stale_after_seconds=5.0)
    close = int(dt.datetime(2025, 11, 12, 15, 30, tzinfo=IST).timestamp()) * 10**9
    state = {"runner_status": "running", "strategies": {}, "risk_state": "active"}
    state |= {"risk_control": {}, "engine_status": "running", "pnl": {}}
    header.apply_state(state | {"market_session": {"status": "closed", "ts": close}})
    assert header.market_time.text == "market Wed 12 Nov 15:30 IST"


def test_a_held_strategy_says_who_held_it_and_why():
    # The header said only "sma_cross paused": not whether an operator or the strategy itself
    # (ctx.pause) had paused it, nor why.
    header = Header(stale_after_seconds=5.0)
    state = {
        "runner_status": "running",
        "strategies": {"sma_cross": "paused", "straddle": "running"},
        "strategy_holds": {"sma_cross": "paused by sma_cross: three losses in a row"},
        "strategy_failures": {},
        "risk_state": "normal",
        "risk_control": {},
        "engine_status": "running",
        "pnl": {},
    }
    header.apply_state(state)
    assert header.runner.text == (
        "runner: running (sma_cross paused by sma_cross: three losses in a row, straddle running)"
    )


def test_the_header_gives_the_books_net_and_the_days_the_chart_draws():
    # The header's total disagreed with the intraday chart's last point from the second day on.
    header = Header(stale_after_seconds=5.0)
    state = {"runner_status": "running", "strategies": {}, "risk_state": "active"}
    state |= {"risk_control": {}, "engine_status": "running"}
    header.apply_state(state | {"pnl": {}})
    assert header.pnl.text == "P&L: -"
    header.apply_state(state | {"pnl": {"net": -99.52, "daily": {"net": 129.7}}})
    assert header.pnl.text == "P&L: -99.52 (today +129.70)"
    header.apply_state(state | {"pnl": {"net": -1234.5}})  # no day yet (an older journal)
    assert header.pnl.text == "P&L: -1,234.50"
