"""A header badge in a real Chromium: a text set on the server reaches the page as text (a
markup-looking text is shown as typed, no element made of it), in the element carrying the
badge's hook class, and a hidden badge has no such element."""

from __future__ import annotations

import itertools
import urllib.request

import panel as pn
import pytest

from tests.browser.conftest import wait_until
from tradelab.benchmarking.browser import free_port
from tradelab.ui.badge import Badge

pytestmark = pytest.mark.browser
MARKUP = '<b>halted</b> & <img src=x onerror="window.hit=1">'


@pytest.fixture
def badge_url():
    counter = itertools.count()

    def app():
        shown = Badge("tl-test-badge", "starting")
        hidden = Badge("tl-test-hidden", hidden=True)

        def tick() -> None:  # a session's own periodic callback, as the console's
            shown.set(f"{MARKUP} {next(counter)}")

        pn.state.add_periodic_callback(tick, period=100)
        return pn.Column(shown, hidden)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = pn.serve(
        {"app": app}, port=port, address="127.0.0.1", threaded=True, show=False, liveness=True
    )

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/liveness", timeout=5):
                return True
        except OSError:
            return False

    try:
        wait_until(up, 30, "the server")
        yield f"{base}/app"
    finally:
        server.stop()


def test_badge_text_updates_reach_the_page_as_text(context, badge_url):
    page = context.new_page()
    page.goto(badge_url)
    badge = page.locator(".tl-test-badge")
    wait_until(lambda: badge.inner_text().startswith(MARKUP), 20, "the badge's text")
    first = badge.inner_text()
    wait_until(lambda: badge.inner_text() != first, 10, "a second update")
    assert page.locator(".tl-test-badge b, .tl-test-badge img").count() == 0
    assert page.evaluate("window.hit") is None
    assert page.locator(".tl-test-hidden").count() == 0
