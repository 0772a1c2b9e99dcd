"""What happens while a page loads reaches it: the P&L points sampled (one a second) while a
slow page loads are on its chart, as on a page that was open all along. A change to a plain Bokeh model (the charts'
streamed points and ranges) made between the document's serialization and the page's ready
signal used to be dropped: a gap in the curve, or, when the first points came then, an empty
P&L chart over January 1970."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import ConsoleServer, wait_until

pytestmark = pytest.mark.browser

# The P&L figure's x range and its points' times (ms), read from the page's Bokeh.
_EQUITY = """() => {
  for (const doc of Bokeh.documents) for (const m of doc._all_models.values()) {
    if (m.title && String(m.title.text).startsWith('Intraday net P&L')) {
      return [m.x_range.start, m.x_range.end, Array.from(m.renderers[0].data_source.data.time)];
    }
  }
  return null;
}"""
_YEAR_2020_MS = 1.577e12


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[ConsoleServer]:
    server = ConsoleServer(tmp_path_factory.mktemp("first-load"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_points_sampled_while_a_slow_page_loads_are_on_its_chart(fresh_server, context):
    reference = context.new_page()  # open all along: it gets every point as it is sampled
    reference.goto(fresh_server.url)
    reference.locator(".tl-last-seq").wait_for(timeout=30_000)
    pages = []
    for _ in range(3):
        page = context.new_page()
        # A slow machine's browser: the page takes seconds to load, while points are sampled.
        context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": 8})
        pages.append(page)
    for page in pages:
        page.goto(fresh_server.url, wait_until="commit")
    for page in pages:
        page.locator(".tl-last-seq").wait_for(timeout=60_000)

    def equity(page, points: int) -> list | None:
        shown = page.evaluate(_EQUITY)
        return shown if shown and len(shown[2]) >= points else None

    for page in pages:
        start, end, times = wait_until(lambda p=page: equity(p, 8), 60, "eight P&L points")
        assert start > _YEAR_2020_MS and end > start, (start, end)
        newest = times[-1]
        _, _, all_along = wait_until(
            lambda n=newest: (r := equity(reference, 1)) and r[2][-1] >= n and r,
            30,
            "the reference",
        )
        expected = [t for t in all_along if times[0] <= t <= newest]
        missing = sorted(set(expected) - set(times))
        assert not missing, f"{len(missing)} of {len(expected)} P&L points missing on a page"
