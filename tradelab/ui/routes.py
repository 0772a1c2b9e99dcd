"""`extra_routes(host)`: the tornado routes served beside the console pages.

Panel protects only its own pages: every route here checks the user itself (the signed cookie
Panel's basic-auth / OAuth login sets, or an HTTP Basic header for scrapers) when the server has
auth configured (`tradelab.ui.auth`).
"""

from __future__ import annotations

import json

from tornado.web import RequestHandler

from tradelab.bridge.hub import BridgeHub
from tradelab.bridge.server import bridge_routes
from tradelab.ui.auth import AuthCheckedHandler, request_user
from tradelab.ui.host import ConsoleHost
from tradelab.ui.metrics_route import metrics_routes


class ConsoleStatsHandler(AuthCheckedHandler):
    """GET /console/stats: the host's metrics as JSON (sessions, callbacks, push lag, ...)."""

    def initialize(  # type: ignore[override]
        self, host: ConsoleHost, bridge: BridgeHub | None = None
    ) -> None:
        super().initialize(auth=host.auth)
        self.host, self.bridge = host, bridge

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        stats = self.host.metrics()
        if self.bridge is not None:
            stats["bridge"] = self.bridge.metrics()
        self.write(json.dumps(stats, default=str))


# The bridge's bounds and what they cost (BridgeHub.metrics()), as /metrics gauges.
_BRIDGE_FIGURES = (
    "clients", "history_events", "history_capacity", "history_restarts", "pending_events",
    "pending_limit", "pending_dropped", "resyncs", "dropped", "write_timeouts",
)  # fmt: skip


def bridge_figures(hub: BridgeHub) -> dict[str, float]:
    figures = hub.metrics()
    return {f"bridge_{key}": figures[key] for key in _BRIDGE_FIGURES}


def extra_routes(host: ConsoleHost) -> list[tuple[str, type, dict]]:
    """What `tradelab serve` (extra_patterns) and `panel serve --plugins tradelab.ui.plugin`
    mount beside the console: /console/stats, /metrics (Prometheus text) and /bridge (the
    websocket `tradelab.connect()` replicas attach to)."""
    auth = host.auth

    def authorize(handler: RequestHandler) -> str | None:
        # Without auth the bridge is as open as the console (127.0.0.1 by default).
        return request_user(handler, auth) if auth.configured else "local"

    bridge = bridge_routes(host.lab.engine, authorize=authorize)
    hub = bridge[0][2]["hub"]

    def figures() -> dict[str, float]:
        return {**host.push_figures(), **bridge_figures(hub)}

    return [
        (r"/console/stats", ConsoleStatsHandler, {"host": host, "bridge": hub}),
        *metrics_routes(host.lab, auth, extra=figures, commands=host.commands),
        *bridge,
    ]
