"""`extra_routes(host)`: the tornado routes served beside the console pages.

Panel protects only its own pages: every route here checks the user itself (the same secure
cookie Panel's basic-auth / OAuth login sets) when the server has auth configured.
"""

from __future__ import annotations

import json
from typing import Any

from tornado.web import HTTPError, RequestHandler

from tradelab.ui.host import ConsoleHost


class AuthenticatedHandler(RequestHandler):
    """Refuses (403) a request without a logged-in user when the server has auth configured."""

    def initialize(self, host: ConsoleHost) -> None:
        self.host = host

    def get_current_user(self) -> Any:
        # What Panel's auth providers set at login; None without auth or without login.
        user = self.get_secure_cookie("user") if self._has_secret() else None
        return user.decode() if isinstance(user, bytes) else user

    def _has_secret(self) -> bool:
        return bool(self.application.settings.get("cookie_secret"))

    def prepare(self) -> None:
        if self.host.auth and self.current_user is None:
            raise HTTPError(403, "log in to the console first")


class ConsoleStatsHandler(AuthenticatedHandler):
    """GET /console/stats: the host's metrics as JSON (sessions, callbacks, push lag, ...)."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(self.host.metrics(), default=str))


def extra_routes(host: ConsoleHost) -> list[tuple[str, type, dict]]:
    """The routes `tradelab serve` (extra_patterns) and `panel serve --plugins
    tradelab.ui.plugin` mount beside the console."""
    return [(r"/console/stats", ConsoleStatsHandler, {"host": host})]
