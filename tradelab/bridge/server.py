"""The bridge's websocket route, for the console (or any tornado server) to mount.

`bridge_routes(engine)` gives the (pattern, handler, kwargs) tuples Panel's `extra_patterns`
takes. Panel gives such routes no auth of its own: pass `authorize(handler) -> user | None` and
the handshake is refused (401) when it returns None. Read-only: a client may only say `hello`
and ask for a resync. Thread model: handlers run on the server's IOLoop (see hub.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
from collections.abc import Callable, Mapping
from typing import Any

import tornado.ioloop
import tornado.iostream
import tornado.web
import tornado.websocket

from tradelab.bridge import protocol
from tradelab.bridge.hub import BridgeHub, ReplicaSession

log = logging.getLogger(__name__)

Authorize = Callable[[tornado.web.RequestHandler], str | None]


class BridgeSocket(tornado.websocket.WebSocketHandler):
    """One replica connection: hello → welcome → snapshot and/or events, until it closes."""

    hub: BridgeHub
    authorize: Authorize | None

    def initialize(self, hub: BridgeHub, authorize: Authorize | None = None) -> None:
        self.hub = hub
        self.authorize = authorize
        self.user: str | None = None
        self.session: ReplicaSession | None = None
        self.said_hello = False

    def prepare(self) -> None:
        if self.authorize is None:
            return
        try:
            user = self.authorize(self)
        except Exception:
            log.exception("bridge authorize callback failed; refusing the connection")
            user = None
        if not user:
            self.set_header("WWW-Authenticate", 'Basic realm="tradelab"')
            raise tornado.web.HTTPError(401, reason="not authorized for the tradelab bridge")
        self.user = user

    def open(self) -> None:
        self.hub.attach_loop(tornado.ioloop.IOLoop.current())
        self.set_nodelay(True)
        self.session = self.hub.open_session(
            self._write,
            self._hang_up,
            peer=str(self.request.remote_ip),
            user=self.user,
        )

    def _write(self, frame: bytes) -> asyncio.Future[None]:
        # `frame` is a whole websocket frame built once for every client (hub.py): it goes to
        # the stream as is, where `write_message` would copy it into a new frame per client.
        # Safe because this handler never negotiates compression (`get_compression_options`),
        # the one per-connection transform of a server's frames. The future fails with StreamClosedError if the
        # connection closes before the socket took the frame.
        conn = self.ws_connection
        if conn is None or conn.is_closing():
            raise tornado.websocket.WebSocketClosedError()
        try:
            return conn.stream.write(frame)
        except tornado.iostream.StreamClosedError:
            raise tornado.websocket.WebSocketClosedError() from None

    def get_compression_options(self) -> None:
        """No permessage-deflate, ever: `_write` sends frames built once for every client."""
        return None

    def _hang_up(self, reason: str) -> None:
        self.close(1008, reason[:120])  # a close reason must fit a control frame

    def on_message(self, message: str | bytes) -> None:
        session = self.session
        if session is None:
            return
        try:
            msg = protocol.decode_client(message)
        except protocol.BridgeError as exc:
            self._refuse(str(exc))
            return
        if isinstance(msg, protocol.Hello):
            if self.said_hello:
                self._refuse("hello was already said on this connection")
                return
            if msg.version != protocol.PROTOCOL_VERSION:
                self._refuse(
                    f"protocol version {msg.version} is not supported; this server speaks "
                    f"version {protocol.PROTOCOL_VERSION}"
                )
                return
            self.said_hello = True
            welcome = self.hub.welcome(session, msg)
            self.write_message(protocol.encode(welcome), binary=True)
            tornado.ioloop.IOLoop.current().spawn_callback(self.hub.serve, session)
        elif not self.said_hello:
            self._refuse("the first message must be hello")
        else:
            self.hub.request_resync(session, msg.reason)

    def _refuse(self, message: str) -> None:
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            self.write_message(protocol.encode(protocol.Error(message=message)), binary=True)
        self.close(1008, message[:120])

    def on_close(self) -> None:
        if self.session is not None:
            self.hub.close_session(self.session)


def bridge_routes(
    engine: Any,
    *,
    authorize: Authorize | None = None,
    path: str = "/bridge",
    hub: BridgeHub | None = None,
    **hub_options: Any,
) -> list[tuple[str, type, dict]]:
    """Routes serving `engine`'s durable events to `tradelab.connect()` replicas.

    `hub` (else one built from `engine` and `hub_options`, see BridgeHub) is in the route's
    kwargs as `routes[0][2]["hub"]`: its `metrics()` are the bridge's figures.
    """
    if hub is None:
        hub = BridgeHub(engine, **hub_options)
    elif hub_options:
        raise protocol.BridgeError(f"options {sorted(hub_options)} given beside a built hub")
    return [(path, BridgeSocket, {"hub": hub, "authorize": authorize})]


def basic_authorizer(users: Mapping[str, str]) -> Authorize:
    """An `authorize` checking HTTP basic-auth credentials against `users` {name: password}."""
    known = {name: password.encode() for name, password in users.items()}

    def authorize(handler: tornado.web.RequestHandler) -> str | None:
        header = handler.request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            name, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        expected = known.get(name)
        if expected is None or not hmac.compare_digest(expected, password.encode()):
            return None
        return name

    return authorize
