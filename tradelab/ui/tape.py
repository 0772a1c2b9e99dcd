"""`EventTape`: one session's event tape, newest first, as a fixed-layout HTML table.

Why not a data grid: a grid (Tabulator) builds and measures each row it draws, a forced layout
of the page per redraw, and in a storm five pages redrawing it had 100-280 ms frames
(benchmarks/README.md, push latency). Here a redraw is one `innerHTML` of a box whose size
never depends on its content: fixed height, `table-layout: fixed`, fixed row height, and CSS
containment, so the browser lays out the box's own rows and nothing else; the pane's size does
not change either, so Bokeh never relayouts the page for it.

What it shows: the newest `tape_rows` events that pass the session's topic filter (default 20,
exactly the box's height), no pages. A live tape is glanced at and its top is what matters; an
older event is found by filtering on its topic: the session keeps the newest `tape_rows` of
each topic (a bound of topics x rows: topics are the registry's), so a filter on trades still
shows the last trades after a flood of marks, and the journal has them all. Every row is rendered again at each redraw, so rows cost frames:
with five pages in a 1K events/s storm, 200 rows gave 100-300 ms frames 20-25 times in 30 s
per page, 20 rows 1-3 under 100 ms (benchmarks/README.md). A larger `tape_rows` scrolls; the
scroll position belongs to the pane's element, outside the replaced HTML, so it survives
redraws.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Sequence
from html import escape
from itertools import islice
from typing import Any

import panel as pn

from tradelab.events import DEFAULT_TOPICS
from tradelab.ui.frames import TIME_COLUMN, ist_ms
from tradelab.ui.view import TapeRow

TAPE_COLUMNS = ("seq", TIME_COLUMN, "topic", "key")
ROW_CLASS = "tl-tape-row"
_ROW_PX = 20
# The box's own layout only: `contain: strict` (size, layout, paint, style) keeps a redraw from
# invalidating anything outside it; overflow on the host keeps the scroll position.
_STYLESHEET = f"""
:host {{ overflow-y: auto; contain: strict; }}
table {{ table-layout: fixed; width: 100%; border-collapse: collapse;
  font: 12px/{_ROW_PX}px ui-monospace, monospace; }}
th, td {{ height: {_ROW_PX}px; padding: 0 6px; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; text-align: left; }}
thead th {{ position: sticky; top: 0; background: #f5f5f5; }}
tbody tr:nth-child(even) {{ background: #fafafa; }}
col.seq {{ width: 16%; }} col.time {{ width: 22%; }} col.topic {{ width: 28%; }}
"""
_HEAD = (
    '<table class="tl-tape-table"><colgroup><col class="seq"><col class="time">'
    '<col class="topic"><col class="key"></colgroup><thead><tr>'
    + "".join(f"<th>{escape(name)}</th>" for name in TAPE_COLUMNS)
    + "</tr></thead><tbody>"
)


def tape_cells(rows: Iterable[TapeRow]) -> list[tuple[str, str, str, str]]:
    """The cells shown for each of `rows`, in their order: seq, IST time, topic, key."""
    return [(str(r.seq), ist_ms(r.ts), r.topic, r.key) for r in rows]


def tape_html(cells: Sequence[tuple[str, ...]]) -> str:
    """The table of `cells`, every value escaped (a key is whatever an event carried)."""
    body = "".join(
        f'<tr class="{ROW_CLASS}">' + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>"
        for row in cells
    )
    return f"{_HEAD}{body}</tbody></table>"


def url_topics(known: Sequence[str]) -> list[str]:
    """The tape filter asked for in the page's URL (`?tape=trade.executed,order.filled`)."""
    args = pn.state.session_args or {}
    asked = [t.strip() for v in args.get("tape", []) for t in v.decode().split(",")]
    return [t for t in asked if t in known]


class EventTape:
    """The session's newest `shown` tape rows of each topic, its topic filter, and the table
    showing the newest `shown` rows that pass the filter. `add` collects rows; `show` redraws."""

    def __init__(self, shown: int, max_height: int = 420) -> None:
        self.shown = shown
        self._by_topic: dict[str, deque[TapeRow]] = {}
        self._cells: list[tuple[str, str, str, str]] = []
        # A session preference: kept here (and in the URL), never in the engine's state.
        self.filter = pn.widgets.MultiChoice(
            label="Tape topics (empty: all)",
            options=sorted(t.name for t in DEFAULT_TOPICS if not t.transient),
            css_classes=["tl-tape-filter"],
            sizing_mode="stretch_width",
        )
        self.filter.value = url_topics(self.filter.options)
        self.pane = pn.pane.HTML(
            tape_html([]),
            css_classes=["tl-tape"],
            stylesheets=[_STYLESHEET],
            height=min(max_height, (shown + 1) * _ROW_PX),  # the header and `shown` rows
            sizing_mode="stretch_width",
        )
        self.pending = False

    def add(self, rows: Sequence[TapeRow], resync: bool) -> None:
        """New rows (oldest first); `resync`: the session starts over from these."""
        by_topic = self._by_topic
        if resync:
            by_topic.clear()
        for row in rows:
            ring = by_topic.get(row.topic)
            if ring is None:
                ring = by_topic[row.topic] = deque(maxlen=self.shown)
            ring.append(row)
        self.pending = True

    def show(self) -> None:
        """Redraw with the newest rows that pass the filter (only if they changed)."""
        self.pending = False
        wanted = set(self.filter.value)
        rings = (ring for topic, ring in self._by_topic.items() if not wanted or topic in wanted)
        # Each ring is in seq order: merged newest first, the first `shown` are the newest.
        newest = heapq.merge(*map(reversed, rings), key=_seq, reverse=True)
        cells = tape_cells(islice(newest, self.shown))
        if cells != self._cells:
            self._cells = cells
            self.pane.object = tape_html(cells)

    def rows_shown(self) -> list[dict[str, Any]]:
        """The rows the table shows, newest first, one dict per row keyed by `TAPE_COLUMNS`."""
        return [dict(zip(TAPE_COLUMNS, row, strict=True)) for row in self._cells]


def _seq(row: TapeRow) -> int:
    return row.seq
