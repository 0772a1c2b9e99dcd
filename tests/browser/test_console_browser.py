"""The live console in a real Chromium against a real `tradelab serve`: live data, an engine
trade in positions and tape, an operator's pause / resume / stop / start seen by every session, the stale marker when
the feed stalls, and sessions that leave nothing behind. Tests run in file order on one server
whose simulated feed goes silent 25 s after it starts (the stale test comes last)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import wait_until

pytestmark = pytest.mark.browser


def _open(context, url: str):
    page = context.new_page()
    page.goto(url)
    page.locator(".tl-last-seq").wait_for(timeout=20_000)
    return page


def _seq(page) -> int:
    return int(page.locator(".tl-last-seq").inner_text())


def test_page_loads_with_live_data(console_server, context):
    page = _open(context, console_server.url)
    first = wait_until(lambda: _seq(page), 10, "a first seq")
    wait_until(lambda: _seq(page) > first, 10, "the seq to advance")
    assert "running" in page.locator(".tl-runner-state").inner_text()
    assert "risk:" in page.locator(".tl-risk-state").inner_text()
    assert page.locator(".tl-stale").count() == 0  # live: no stale marker


def test_engine_trade_shows_in_positions_and_tape(console_server, context):
    page = _open(context, console_server.url + "?tape=trade.executed")
    positions = page.locator(".tl-positions .tabulator-row")
    wait_until(lambda: positions.count() > 0, 15, "a position row")
    row = positions.first.inner_text()
    assert "short_straddle" in row and "NIFTY" in row
    tape = page.locator(".tl-tape tr.tl-tape-row")
    wait_until(lambda: tape.count() > 0, 10, "a trade on the filtered tape")
    assert "trade.executed" in tape.first.inner_text()
    trades = page.locator(".tl-trades .tabulator-row")
    wait_until(lambda: trades.count() > 0, 10, "a trade row")


def test_position_money_is_in_view_without_scrolling_on_a_laptop(console_server, context):
    page = context.new_page()
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(console_server.url)
    rows = page.locator(".tl-positions .tabulator-row")
    wait_until(lambda: rows.count() > 0, 20, "a position row")
    table = page.locator(".tl-positions .tabulator-tableholder").bounding_box()
    for field, title in (("unrealized_pnl", "unrealized"), ("realized_pnl", "realized")):
        header = page.locator(f'.tl-positions .tabulator-col[tabulator-field="{field}"]')
        assert header.inner_text().strip() == title
        box = header.bounding_box()
        assert box["x"] + box["width"] <= table["x"] + table["width"], (field, box, table)


def test_operator_controls_are_seen_by_every_session(console_server, context):
    operator = _open(context, console_server.url)
    other = _open(context, console_server.url)
    state = ".tl-runner-state"
    wait_until(lambda: "running" in other.locator(state).inner_text(), 10, "running")
    for button, shown in [
        ("pause", "paused"),
        ("resume", "running"),
        ("stop", "stopped"),
        ("start", "running"),
    ]:
        operator.locator(f".tl-runner-{button}").click()
        for page in (operator, other):
            wait_until(lambda p=page, s=shown: s in p.locator(state).inner_text(), 10, shown)


def test_twenty_sessions_leave_no_callbacks_or_watchers(console_server, context):
    before = console_server.stats()
    pages = [context.new_page() for _ in range(20)]
    for page in pages:  # all loading at once
        page.goto(console_server.url, wait_until="commit")
    for page in pages:
        wait_until(lambda p=page: p.locator(".tl-last-seq").count(), 30, "a session's page")
    assert console_server.stats()["sessions"] >= 20
    for page in pages:
        page.close()

    def settled():
        stats = console_server.stats()
        return stats if stats["sessions"] == 0 and stats["session_callbacks"] == 0 else None

    stats = wait_until(settled, 20, "every closed session destroyed")
    assert stats["sessions_opened"] >= before["sessions_opened"] + 20
    assert stats["sessions_closed"] == stats["sessions_opened"]
    assert stats["shared_watchers"] == 0
    assert stats["view_subscriptions"] == 1


def test_stale_marker_appears_when_the_feed_stops(console_server, context):
    page = _open(context, console_server.url)
    stale = page.locator(".tl-stale")
    # The feed stalls 25 s after the server started (FEED_STALL_SECONDS); 1.5 s later, stale.
    wait_until(lambda: stale.count() and stale.is_visible(), 45, "the stale marker")
    assert "STALE" in stale.inner_text() and "no feed tick" in stale.inner_text()
    assert page.locator(".tl-feed-state").inner_text() == "feed: silent"
