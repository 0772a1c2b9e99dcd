"""Refuse HTTP and websocket requests whose Host header is not one of the console's own names.

A page of another site whose name resolves to 127.0.0.1 (DNS rebinding) sends `Origin` and `Host`
equal to each other, and tornado takes such a request as same-origin before Bokeh's origin
allowlist is asked: without a login it would reach the console's controls, `/bridge`,
`/metrics` and `/console/stats`. A console listening on loopback answers only requests that name
it by a loopback name and its port; everything else gets 403 before any handler runs.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from tornado.web import Application, RequestHandler

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def loopback_hosts(port: int) -> frozenset[str]:
    """The Host values a loopback console answers: each loopback name with its port."""
    return frozenset(f"{name}:{port}" for name in LOOPBACK_NAMES)


class _OtherHost(RequestHandler):
    def prepare(self) -> None:
        self.set_status(403)
        self.finish(f"this server answers only to its own address, not Host {self.request.host!r}")


def guard_hosts(application: Application, allowed: Collection[str]) -> None:
    """Route every request whose Host (case-insensitive) is not in `allowed` to a 403."""
    names = frozenset(host.lower() for host in allowed)
    find = application.find_handler

    def find_handler(request: Any, **kwargs: Any) -> Any:
        if (request.host or "").lower() not in names:
            return application.get_handler_delegate(request, _OtherHost)
        return find(request, **kwargs)

    application.find_handler = find_handler  # type: ignore[method-assign]
