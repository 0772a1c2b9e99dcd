"""`HeaderBar`: the console header's row of texts (runner, risk, engine, feed, seq, its time,
P&L) and the connection watchdog, in one component; `BarText` is one of its texts.

Why one component: a Bokeh layout item whose size or position changes makes Bokeh lay out the
page again (an ~80 ms frame in a storm), and a text badge grows or shrinks when its text does (a
P&L crossing a digit, a runner state). Inside one stretch-width component of fixed height the
texts flow as the browser lays them out and the component's size never changes, so a text
update is one `textContent` write and a small browser layout of the row, nothing else.
Per-session (never shared); texts are set from the session's own callbacks.
"""

from __future__ import annotations

import param
from panel.custom import Child, JSComponent

from tradelab.ui.watchdog import ConnectionWatchdog


class HeaderBar(JSComponent):
    """The row's texts, in order, each `[css, text, style]` (`css`: the span's stable hook
    class); only the texts change after the first render. Texts are shown as text, never
    parsed as markup. The watchdog's badges follow the texts."""

    items = param.List(default=[], doc="[css, text, style] per text, in display order.")
    watchdog = Child(class_=ConnectionWatchdog)

    _esm = """
export function render({ model }) {
  const root = document.createElement("div");
  // Wrapped onto a second line on a narrow window, each text whole (nowrap inside it).
  root.style.cssText = "display:flex;flex-wrap:wrap;align-items:center;white-space:nowrap;"
    + "font-variant-numeric:tabular-nums;";
  const spans = model.items.map(([css, text, style]) => {
    const span = document.createElement("span");
    span.className = css;
    span.style.cssText = style;
    span.textContent = text;
    root.appendChild(span);
    return span;
  });
  model.on("items", () => {
    model.items.forEach(([, text], i) => {
      if (spans[i].textContent !== text) { spans[i].textContent = text; }
    });
  });
  const watchdog = model.get_child("watchdog");
  if (watchdog) { root.appendChild(watchdog); }
  return root;
}
"""


class BarText:
    """One text of a `HeaderBar`: `set` changes it (an unchanged text sends nothing)."""

    def __init__(self, bar: HeaderBar, css: str, text: str, style: str = "margin:4px 10px") -> None:
        self.bar, self.css, self.text = bar, css, text
        self._index = len(bar.items)
        bar.items = [*bar.items, [css, text, style]]

    def set(self, text: str) -> None:
        if text != self.text:
            self.text = text
            items = list(self.bar.items)
            items[self._index] = [self.css, text, items[self._index][2]]
            self.bar.items = items
