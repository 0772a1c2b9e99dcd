"""The console's text components in a real Chromium: a header badge's and a header bar's texts
and the event tape's cells set on the server reach the page as text (a markup-looking text is shown as typed, no
element made of it), in the elements carrying the hook classes; a hidden badge has no element,
and the tape shows as many rows as it was given; the operator controls' result shows what the
operator typed, and the parameters table a strategy's value, as text."""

from __future__ import annotations

import itertools
import urllib.request

import panel as pn
import param
import pytest

from tests.browser.conftest import wait_until
from tradelab.benchmarking.browser import free_port
from tradelab.runner import Strategy
from tradelab.ui.badge import Badge
from tradelab.ui.controls import Controls
from tradelab.ui.frames import params_table
from tradelab.ui.header_bar import BarText, HeaderBar
from tradelab.ui.tape import TapeTable

pytestmark = pytest.mark.browser
MARKUP = '<b>halted</b> & <img src=x onerror="window.hit=1">'


@pytest.fixture
def badge_url():
    counter = itertools.count()

    def app():
        shown = Badge("tl-test-badge", "starting")
        hidden = Badge("tl-test-hidden", hidden=True)
        tape = TapeTable(css_classes=["tl-test-tape"], height=200, width=600)
        bar = HeaderBar(sizing_mode="stretch_width")
        BarText(bar, "tl-test-label", "label")
        in_bar = BarText(bar, "tl-test-bar", "starting")

        def tick() -> None:  # a session's own periodic callback, as the console's
            n = next(counter)
            shown.set(f"{MARKUP} {n}")
            in_bar.set(f"{MARKUP} {n}")
            # Newest first, one more row each tick up to three.
            tape.cells = [[str(k), "09:15:00.000", "mark.updated", MARKUP] for k in
                          range(n, max(-1, n - 3), -1)]  # fmt: skip

        pn.state.add_periodic_callback(tick, period=100)
        return pn.Column(bar, shown, hidden, tape)

    yield from _served(app)


def _served(app):
    """Serve `app` on a free port; yields its URL, stops the server after the test."""
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
    for hook in (".tl-test-badge", ".tl-test-bar"):
        badge = page.locator(hook)
        wait_until(lambda b=badge: b.inner_text().startswith(MARKUP), 20, f"{hook}'s text")
        first = badge.inner_text()
        wait_until(lambda b=badge, f=first: b.inner_text() != f, 10, "a second update")
        assert page.locator(f"{hook} b, {hook} img").count() == 0
    assert page.locator(".tl-test-label").inner_text() == "label"
    assert page.evaluate("window.hit") is None
    assert page.locator(".tl-test-hidden").count() == 0


def test_tape_cells_reach_the_page_as_text_in_rows(context, badge_url):
    page = context.new_page()
    page.goto(badge_url)
    rows = page.locator(".tl-test-tape tr.tl-tape-row")
    wait_until(lambda: rows.count() == 3, 20, "three tape rows")
    first = rows.first.locator("td").all_inner_texts()
    assert first[2:] == ["mark.updated", MARKUP]
    wait_until(lambda: rows.first.locator("td").first.inner_text() != first[0], 10, "a redraw")
    assert page.locator(".tl-test-tape th").all_inner_texts() == [
        "seq",
        "journal time (IST)",
        "topic",
        "key",
    ]
    assert page.locator(".tl-test-tape b, .tl-test-tape img").count() == 0
    assert page.evaluate("window.hit") is None


class Noted(Strategy):
    strategy_name = "noted"
    note = param.String(default=MARKUP)


class Echo:
    """Answers as the real commands do: the reason as given."""

    def execute(self, user, command, **args):
        return f"trading resumed ({args['reason']})"


@pytest.fixture
def controls_url():
    def app():
        controls = Controls(Echo(), "alice", {})
        table = pn.widgets.Tabulator(
            params_table({"noted": Noted()}), disabled=True, css_classes=["tl-test-params"]
        )
        return pn.Column(controls.layout, table)

    yield from _served(app)


def test_a_command_result_and_a_parameter_value_reach_the_page_as_text(context, controls_url):
    page = context.new_page()
    page.goto(controls_url)
    reason = page.locator(".tl-controls input").first
    reason.wait_for(timeout=20_000)
    reason.fill(MARKUP)
    reason.press("Enter")
    page.locator(".tl-resume-trading button").click()
    result = page.locator(".tl-command-result")
    wait_until(lambda: result.count() and result.inner_text(), 20, "the command's result")
    assert result.inner_text() == f"trading resumed ({MARKUP})"  # exactly as typed
    assert page.locator(".tl-command-result b, .tl-command-result img").count() == 0
    cell = page.locator(".tl-test-params .tabulator-cell", has_text="<b>halted</b>")
    wait_until(lambda: cell.count(), 20, "the parameters table's value")
    assert cell.first.inner_text() == MARKUP
    assert page.locator(".tl-test-params b, .tl-test-params img").count() == 0
    assert page.evaluate("window.hit") is None
