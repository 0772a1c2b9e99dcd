"""`EventTape`: one session's event tape, newest first, as a fixed-layout table of text cells.

Why not a data grid: a grid (Tabulator) builds and measures each row it draws, a forced layout
of the page per redraw, and in a storm five pages redrawing it had 100-280 ms frames
(benchmarks/README.md, push latency). Why not an HTML pane either: each redraw sent the whole
table as markup, which the browser decoded and parsed again. Here (`TapeTable`) a redraw sends
the cells as strings and sets the `textContent` of the cells that changed (nothing parsed, no
markup, nothing to escape), in a box whose size never depends on its content: fixed height,
`table-layout: fixed`, fixed row height, and CSS containment, so the browser lays out the box's
own rows and nothing else; the component's size does not change either, so Bokeh never
relayouts the page for it.

What it shows: the newest `tape_rows` events that pass the session's topic filter (default 20,
exactly the box's height), no pages. A live tape is glanced at and its top is what matters; an
older event is found by filtering on its topic: the session keeps the newest `tape_rows` of
each topic (a bound of topics x rows: topics are the registry's), so a filter on trades still
shows the last trades after a flood of marks, and the journal has them all. A page opened later
(or one that fell behind) starts from the shared view's rings of the same size per topic
(`SharedView`), so `/?tape=order.*` shows the session's last orders however many marks came
since. Every row is rendered again at each redraw, so rows cost frames:
with five pages in a 1K events/s storm, 200 rows gave 100-300 ms frames 20-25 times in 30 s
per page, 20 rows 1-3 under 100 ms (benchmarks/README.md). A larger `tape_rows` scrolls; the
scroll position belongs to the pane's element, outside the replaced HTML, so it survives
redraws.
"""

from __future__ import annotations

import fnmatch
import heapq
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from itertools import islice
from typing import Any

import panel as pn
import param
from panel.custom import JSComponent

from tradelab.events import DEFAULT_TOPICS
from tradelab.market.instruments import IST
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
col.seq {{ width: 12%; }} col.time {{ width: 26%; }} col.topic {{ width: 28%; }}
"""


def tape_cells(
    rows: Iterable[TapeRow], today: date | None = None
) -> list[tuple[str, str, str, str]]:
    """The cells shown for each of `rows`, in their order: seq, IST time, topic, key. A row
    journaled before `today` (IST; default: now's) is dated: the tape keeps earlier runs' rows
    across a restart, and one day's 09:20 read as another's."""
    today = today or datetime.now(IST).date()
    return [(str(r.seq), _journaled_at(r.ts, today), r.topic, r.key) for r in rows]


def _journaled_at(ns: int, today: date) -> str:
    at = datetime.fromtimestamp(ns / 1e9, tz=IST)
    return ist_ms(ns) if at.date() == today else f"{at:%d %b} {ist_ms(ns)}"


class TapeTable(JSComponent):
    """A `<table class="tl-tape-table">` of `columns` whose body rows (class `ROW_CLASS`) show
    `cells`, one list of strings a row, as text. Per-session (never shared)."""

    columns = param.List(default=list(TAPE_COLUMNS), item_type=str, constant=True)
    cells = param.List(default=[], doc="The rows shown, each a list of one string per column.")

    _esm = f"""
export function render({{ model }}) {{
  const table = document.createElement("table");
  table.className = "tl-tape-table";
  const widths = document.createElement("colgroup");
  for (const name of ["seq", "time", "topic", "key"].slice(0, model.columns.length)) {{
    const col = document.createElement("col");
    col.className = name;
    widths.appendChild(col);
  }}
  const head = table.createTHead().insertRow();
  for (const name of model.columns) {{
    const th = document.createElement("th");
    th.textContent = name;
    head.appendChild(th);
  }}
  const body = table.createTBody();
  table.insertBefore(widths, table.tHead);
  function update() {{
    const cells = model.cells;
    while (body.rows.length > cells.length) {{ body.deleteRow(-1); }}
    while (body.rows.length < cells.length) {{
      const tr = body.insertRow();
      tr.className = "{ROW_CLASS}";
      for (let j = 0; j < model.columns.length; j++) {{ tr.insertCell(); }}
    }}
    // Only the text of the cells that changed: no markup is built or parsed.
    cells.forEach((row, i) => {{
      const tds = body.rows[i].cells;
      row.forEach((value, j) => {{
        if (tds[j].textContent !== value) {{ tds[j].textContent = value; }}
      }});
    }});
  }}
  model.on("cells", update);
  update();
  return table;
}}
"""


def url_topics(known: Sequence[str]) -> tuple[list[str], list[str]]:
    """The tape filter asked for in the page's URL (`?tape=trade.executed,order.filled`, or a
    pattern: `?tape=trade.*`): (the topics it names, what it asked that names none). Bytes
    that are not UTF-8 (`?tape=%ff`) name no topic: shown escaped (`\\xff`) among the ignored."""
    args = pn.state.session_args or {}
    asked = [
        t.strip()
        for v in args.get("tape", [])
        for t in v.decode(errors="backslashreplace").split(",")
        if t.strip()
    ]
    return topics_named(asked, known)


def topics_named(asked: Sequence[str], known: Sequence[str]) -> tuple[list[str], list[str]]:
    chosen: list[str] = []
    unknown: list[str] = []
    for text in asked:
        matched = (
            fnmatch.filter(known, text)
            if any(c in text for c in "*?[")
            else ([text] if text in known else [])
        )
        if not matched:
            unknown.append(text)
        chosen += [topic for topic in matched if topic not in chosen]
    return chosen, unknown


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
        self.filter.value, unknown = url_topics(self.filter.options)
        if unknown:  # said on the page: a typo must not silently show every topic
            self.filter.name = (
                f"Tape topics (empty: all); not topics, ignored: {', '.join(unknown)}"
            )
        self.pane = TapeTable(
            margin=(5, 10),  # an HTML pane's, as the tape had
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
            self.pane.cells = [list(row) for row in cells]

    def rows_shown(self) -> list[dict[str, Any]]:
        """The rows the table shows, newest first, one dict per row keyed by `TAPE_COLUMNS`."""
        return [dict(zip(TAPE_COLUMNS, row, strict=True)) for row in self._cells]


def _seq(row: TapeRow) -> int:
    return row.seq
