"""The page judges the server's silence itself: a frozen server (SIGSTOP: the websocket stays
open, so only the heartbeat can tell) and a killed one (SIGKILL) both show `tl-connection`
"disconnected" and a visible `tl-stale` within the configured max age (1.5 s here) and a
margin; a server that wakes up again is shown live again."""

from __future__ import annotations

import signal

import pytest

from tests.browser.conftest import ConsoleServer, wait_until

pytestmark = pytest.mark.browser

MAX_AGE = 1.5  # the test server's console.stale_after_seconds
MARGIN = 2.5  # the page's 250 ms check, the websocket's delivery, Playwright's polling


@pytest.fixture
def server(tmp_path, browser):
    started = ConsoleServer(tmp_path)
    try:
        started.wait_ready()
        yield started
    finally:
        if started.process.poll() is None:
            started.process.send_signal(signal.SIGCONT)
            started.stop()


def _connection(page) -> str:
    return page.locator(".tl-connection").inner_text()


def _stale_shown(page) -> bool:
    stale = page.locator(".tl-stale")
    return stale.count() == 1 and stale.is_visible()


def test_frozen_then_killed_server_shows_disconnected_and_stale(server, context):
    page = context.new_page()
    page.goto(server.url)
    page.locator(".tl-last-seq").wait_for(timeout=20_000)
    wait_until(lambda: _connection(page) == "live", 10, "the connection badge to say live")
    assert page.locator(".tl-stale").count() == 0

    server.process.send_signal(signal.SIGSTOP)  # a frozen server loop: the socket stays open
    wait_until(lambda: _connection(page) == "disconnected", MAX_AGE + MARGIN, "disconnected")
    assert _stale_shown(page)
    assert "STALE" in page.locator(".tl-stale").inner_text()

    server.process.send_signal(signal.SIGCONT)
    wait_until(lambda: _connection(page) == "live", 10, "live again once the server wakes")
    wait_until(lambda: page.locator(".tl-stale").count() == 0, 10, "the stale marker to go")

    server.process.kill()
    server.process.wait()
    wait_until(lambda: _connection(page) == "disconnected", MAX_AGE + MARGIN, "disconnected")
    assert _stale_shown(page)
