"""`BridgeServer`: the bridge route on a tornado server of its own, for an engine without a
console (a notebook session, a test, a benchmark). The console mounts `bridge_routes` instead.

Thread model: one thread runs the server's asyncio loop; `start` returns once it listens and
`stop` closes every connection and ends the thread.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from tradelab.bridge.hub import BridgeHub
from tradelab.bridge.server import Authorize, bridge_routes
from tradelab.errors import LifecycleError


class BridgeServer:
    """Serve `engine` to replicas at `url` (ws://address:port/bridge) until `stop()`."""

    def __init__(
        self,
        engine: Any,
        *,
        port: int = 0,
        address: str = "127.0.0.1",
        authorize: Authorize | None = None,
        **hub_options: Any,
    ) -> None:
        self.hub = BridgeHub(engine, **hub_options)
        self.address = address
        self._sockets = tornado.netutil.bind_sockets(port, address)
        self.port = self._sockets[0].getsockname()[1]
        self._routes = bridge_routes(engine, authorize=authorize, hub=self.hub)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"ws://{self.address}:{self.port}{self._routes[0][0]}"

    def start(self) -> BridgeServer:
        if self._thread is not None:
            raise LifecycleError("this BridgeServer was started already")
        self._thread = threading.Thread(target=self._run, name="bridge-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = tornado.web.Application(self._routes)
        self._server = tornado.httpserver.HTTPServer(app)
        self._server.add_sockets(self._sockets)
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every replica connection, then end the server thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            self.hub.close()
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.stop()
            # Upgraded websockets are detached from the HTTP server: close them through the hub.
            self.hub.hang_up_all("the server is stopping")
            await self._server.close_all_connections()
            await asyncio.sleep(0.05)  # let the close frames go out
            loop.stop()

        loop.call_soon_threadsafe(lambda: loop.create_task(shutdown()))
        thread.join(timeout)
        self.hub.close()

    def __enter__(self) -> BridgeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
