"""`extra_routes(host)`: the tornado routes served beside the console pages.

Panel protects only its own pages: every route here checks the user itself (the signed cookie
Panel's basic-auth / OAuth login sets, or an HTTP Basic header for scrapers) when the server has
auth configured (`tradelab.ui.auth`).
"""

from __future__ import annotations

import json

from tornado.web import RequestHandler

from tradelab.bridge.server import bridge_routes
from tradelab.ui.auth import AuthCheckedHandler, request_user
from tradelab.ui.host import ConsoleHost
from tradelab.ui.metrics_route import metrics_routes


class ConsoleStatsHandler(AuthCheckedHandler):
    """GET /console/stats: the host's metrics as JSON (sessions, callbacks, push lag, ...)."""

    def initialize(self, host: ConsoleHost) -> None:  # type: ignore[override]
        super().initialize(auth=host.auth)
        self.host = host

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(self.host.metrics(), default=str))


def extra_routes(host: ConsoleHost) -> list[tuple[str, type, dict]]:
    """What `tradelab serve` (extra_patterns) and `panel serve --plugins tradelab.ui.plugin`
    mount beside the console: /console/stats, /metrics (Prometheus text) and /bridge (the
    websocket `tradelab.connect()` replicas attach to)."""
    auth = host.auth

    def authorize(handler: RequestHandler) -> str | None:
        # Without auth the bridge is as open as the console (127.0.0.1 by default).
        return request_user(handler, auth) if auth.configured else "local"

    return [
        (r"/console/stats", ConsoleStatsHandler, {"host": host}),
        *metrics_routes(host.lab, auth, extra=host.push_figures, commands=host.commands),
        *bridge_routes(host.lab.engine, authorize=authorize),
    ]
