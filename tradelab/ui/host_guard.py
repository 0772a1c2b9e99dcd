"""Refuse HTTP and websocket requests whose Host header is not one of the console's own names.

A page of another site whose name resolves to 127.0.0.1 (DNS rebinding) sends `Origin` and `Host`
equal to each other, and tornado takes such a request as same-origin before Bokeh's origin
allowlist is asked: without a login it would reach the console's controls, `/bridge`,
`/metrics` and `/console/stats`. A console listening on loopback answers only requests that name
it by a loopback name (with any port, or none: a browser leaves out :80, and an SSH tunnel
forwards another port); everything else gets 403 before any handler runs.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from tornado.web import Application, RequestHandler

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def host_name(host: str) -> str:
    """The name part of a Host header value, without its port ('[::1]:80' -> '[::1]')."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rpartition(":")[0] if ":" in host else host


class _OtherHost(RequestHandler):
    def prepare(self) -> None:
        self.set_status(403)
        self.finish(f"this server answers only to its own address, not Host {self.request.host!r}")


def guard_hosts(application: Application, allowed: Collection[str] = LOOPBACK_NAMES) -> None:
    """Route every request whose Host names (case-insensitive) none of `allowed` to a 403."""
    names = frozenset(name.lower() for name in allowed)
    find = application.find_handler

    def find_handler(request: Any, **kwargs: Any) -> Any:
        if host_name((request.host or "").lower()) not in names:
            return application.get_handler_delegate(request, _OtherHost)
        return find(request, **kwargs)

    application.find_handler = find_handler  # type: ignore[method-assign]
