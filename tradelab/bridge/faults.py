"""`CuttableLink`: a TCP relay between replicas and a bridge server that can be cut on demand.

Fault injection for tests, demos and benchmarks: point a replica at `link.url`, then `cut()`
drops every connection through it (as a network failure would, no close frame) and refuses new
ones until `restore()`. Thread model: one thread runs the relay's asyncio loop; `cut` and
`restore` may be called from any thread and return once done.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from concurrent.futures import Future


class CuttableLink:
    """Relay 127.0.0.1:<port> to `target_host:target_port`; `url` keeps the path given."""

    def __init__(self, target_host: str, target_port: int, path: str = "/bridge") -> None:
        self.target = (target_host, target_port)
        self.path = path
        self.up = True
        self.cuts = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="link", daemon=True)
        self._thread.start()
        self._call(self._listen()).result(10)
        assert self._server is not None
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.path}"

    def _call(self, coro) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        pair = {writer, up_writer}
        self._writers |= pair
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass  # closing the link: asyncio's server callback must not see a cancelled task
        finally:
            self._writers -= pair
            for w in pair:
                w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        writer.close()

    def cut(self) -> None:
        """Drop every connection (a reset, no close frame) and refuse new ones."""

        async def cut() -> None:
            self.up = False
            self.cuts += 1
            for writer in list(self._writers):
                with contextlib.suppress(OSError):
                    sock = writer.get_extra_info("socket")
                    if sock is not None:  # RST rather than FIN: the link died, nobody said bye
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                writer.transport.abort()

        self._call(cut()).result(10)

    def restore(self) -> None:
        """Accept connections again."""
        self.up = True

    def close(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            relays = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in relays:
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)

        self._call(close()).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> CuttableLink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
