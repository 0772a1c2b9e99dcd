"""The header's text badges: a change of text is one property change carrying the text as it
is (the browser sets it as text: nothing is escaped or parsed), an unchanged text sends nothing,
and a hidden badge has no element."""

from __future__ import annotations

from bokeh.document import Document

from tradelab.ui.badge import Badge
from tradelab.ui.header import Header


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
