"""The page judges the server's silence itself: a frozen server (SIGSTOP: the websocket stays
open, so only the heartbeat can tell) and a killed one (SIGKILL) both show `tl-connection`
"disconnected" and a visible `tl-stale` within the configured max age (1.5 s here) and a
margin; a server that wakes up again is shown live again."""

from __future__ import annotations

import signal

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

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

    pause = page.get_by_role("button", name="Pause")
    pause.click(trial=True, timeout=5_000)  # there, and clickable while connected
    server.process.send_signal(signal.SIGSTOP)  # a frozen server loop: the socket stays open
    wait_until(lambda: _connection(page) == "disconnected", MAX_AGE + MARGIN, "disconnected")
    assert _stale_shown(page)
    assert "STALE" in page.locator(".tl-stale").inner_text()
    # The veil: the last known state stays readable, no control can be clicked.
    veil = page.locator("#tl-offline-veil")
    assert veil.is_visible() and "controls are off" in veil.inner_text()
    with pytest.raises(PlaywrightTimeout):
        pause.click(timeout=1_000)  # the veil intercepts it

    server.process.send_signal(signal.SIGCONT)
    wait_until(lambda: _connection(page) == "live", 10, "live again once the server wakes")
    wait_until(lambda: page.locator(".tl-stale").count() == 0, 10, "the stale marker to go")
    wait_until(lambda: page.locator("#tl-offline-veil").count() == 0, 10, "the veil to go")

    server.process.kill()
    server.process.wait()
    wait_until(lambda: _connection(page) == "disconnected", MAX_AGE + MARGIN, "disconnected")
    assert _stale_shown(page)
