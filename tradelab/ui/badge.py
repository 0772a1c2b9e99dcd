"""`Badge`: a text on a line of its own (the halt banner) in a span carrying a stable CSS hook
class, updated as text.

Why not an HTML pane: each update of one re-parses its markup in the browser (a decode and an
`innerHTML`). Here an update is one property change and one `textContent` write: no markup,
nothing to escape, nothing parsed. A badge is a Bokeh layout item whose size follows its text,
so texts that change often and sit side by side belong in one `HeaderBar` instead.
Per-session (never shared); set from the session's own callbacks.
"""

from __future__ import annotations

import param
from panel.custom import JSComponent


class Badge(JSComponent):
    """A `<span class="{css}">` showing `text` (as text, never markup); no span while `text`
    is empty. Playwright's CSS locators pierce the component's shadow root, and the element
    with the class holds the text."""

    text = param.String(default="", doc="What the badge says; '' shows no element.")
    css = param.String(default="", constant=True, doc="The span's class: a stable CSS hook.")
    style = param.String(default="", constant=True, doc="The span's inline style.")

    _esm = """
export function render({ model }) {
  const root = document.createElement("div");
  root.style.whiteSpace = "nowrap";
  // Digits of one width: a clock or a counter ticking does not change the badge's width (only a
  // new digit does), and a badge whose size changes makes Bokeh lay out it and every sibling
  // after it again.
  root.style.fontVariantNumeric = "tabular-nums";
  let span = null;
  function update() {
    const text = model.text;
    if (text && span === null) {
      span = document.createElement("span");
      span.className = model.css;
      span.style.cssText = model.style;
      root.appendChild(span);
    } else if (!text && span !== null) {
      span.remove();  // present only while there is something to say
      span = null;
    }
    if (span !== null && span.textContent !== text) {
      span.textContent = text;
    }
  }
  model.on("text", update);
  update();
  return root;
}
"""

    def __init__(self, css: str, text: str = "", style: str = "", hidden: bool = False, **params):
        params.setdefault("margin", (4, 10))
        super().__init__(
            css=css, style=style, text="" if hidden else text, visible=not hidden, **params
        )

    def set(self, text: str) -> None:
        """Show `text`; an unchanged text sends nothing to the browser (param sends changes)."""
        self.text = text

    def show(self, visible: bool, text: str = "") -> None:
        """Present and visible only while `visible`: hidden, the element is removed."""
        self.text = text if visible else ""
        if self.visible != visible:
            self.visible = visible
