"""`ConnectionWatchdog`: the connection badge and the stale marker, judged by the browser itself.

A server that died or whose event loop froze cannot tell the page so: the page must notice the
silence. The session's periodic callback bumps `heartbeat` at most about once a second; in the
browser a timer compares the time since the last change with `max_age_ms`. Past it (or at once,
when Bokeh reports the websocket closed) the badge `tl-connection` reads "disconnected" and the
`tl-stale` element appears, and a veil (`tl-offline-veil`) lies over the page: what it shows is
the last known state, and no click can reach a control whose command could not be sent. The server's own staleness verdict (a silent feed or engine) comes
in as `server_stale` and shows in the same element, so `tl-stale` is one element, present and
visible only while stale.
"""

from __future__ import annotations

import param
from panel.custom import JSComponent

_BADGE = "padding:2px 8px;border-radius:4px;font-weight:bold;"
_STALE = "display:block;background:#fff3cd;color:#664d03;padding:6px 10px;border-radius:4px;"
# Over everything (outside Panel's shadow roots: on the document's body), letting the wheel
# scroll the page beneath but no click through.
_VEIL = "position:fixed;inset:0;z-index:10000;background:rgba(255,255,255,0.45);cursor:not-allowed;"
_VEIL_NOTE = (
    "position:fixed;bottom:16px;left:50%;transform:translateX(-50%);background:#842029;color:#fff;"
    "padding:6px 14px;border-radius:4px;font:bold 14px sans-serif;"
)


class ConnectionWatchdog(JSComponent):
    """Per-session (never shared): one instance in each session's header."""

    heartbeat = param.Integer(default=0, doc="Bumped by the session's callback while it runs.")
    max_age_ms = param.Integer(
        default=5000,
        bounds=(100, None),
        doc="Browser milliseconds without a heartbeat "
        "after which the page shows disconnected and stale.",
    )
    server_stale = param.String(
        default="", doc="The server's stale reason ('' while live): a silent feed or engine."
    )

    _esm = f"""
export function render({{ model, view }}) {{
  const root = document.createElement("div");
  root.style.display = "flex";
  root.style.alignItems = "center";
  root.style.gap = "10px";
  const badge = document.createElement("span");
  badge.className = "tl-connection";
  root.appendChild(badge);
  let stale = null;
  let beatAt = Date.now();
  let lost = false;
  function update() {{
    const age = Date.now() - beatAt;
    const disconnected = lost || age > model.max_age_ms;
    const text = disconnected ? "disconnected" : "live";
    if (badge.textContent !== text) {{
      badge.textContent = text;
      badge.style.cssText = "{_BADGE}" + (disconnected
        ? "background:#f8d7da;color:#842029" : "background:#d1e7dd;color:#0f5132");
    }}
    let reason = model.server_stale;
    if (disconnected) {{
      reason = lost ? "STALE: connection to the server lost"
        : "STALE: no update from the server for " + (age / 1000).toFixed(1) + " s";
    }}
    if (reason && stale === null) {{
      stale = document.createElement("span");
      stale.className = "tl-stale";
      stale.style.cssText = "{_STALE}";
      root.appendChild(stale);
    }} else if (!reason && stale !== null) {{
      stale.remove();  // present only while stale
      stale = null;
    }}
    if (stale !== null && stale.textContent !== reason) {{
      stale.textContent = reason;
    }}
    veil(disconnected);
  }}
  function veil(shown) {{
    let cover = document.getElementById("tl-offline-veil");
    if (shown && cover === null) {{
      cover = document.createElement("div");
      cover.id = "tl-offline-veil";
      cover.style.cssText = "{_VEIL}";
      const note = document.createElement("div");
      note.style.cssText = "{_VEIL_NOTE}";
      note.textContent = "Disconnected: the last known state is shown and the controls are off "
        + "(reload once the server is back)";
      cover.appendChild(note);
      document.body.appendChild(cover);
    }} else if (!shown && cover !== null) {{
      cover.remove();
    }}
  }}
  model.on("heartbeat", () => {{ beatAt = Date.now(); update(); }});
  model.on("server_stale", update);
  // A re-render must not leave the previous timer running.
  if (view._tl_timer) {{ clearInterval(view._tl_timer); }}
  view._tl_timer = setInterval(update, 250);
  model.on("remove", () => {{ clearInterval(view._tl_timer); veil(false); }});
  const doc = view.model.document;
  if (doc && doc.on_event) {{
    doc.on_event("connection_lost", () => {{ lost = true; update(); }});
  }}
  update();
  return root;
}}
"""
