"""`ClosedPageNoise`: keeps browser tabs closed during pushes from printing tracebacks on the
console's terminal.

Two records of Bokeh's that say nothing is wrong, each with a whole traceback:
- Bokeh starts a websocket write for each push and does not await it; when the page closed
  meanwhile, the write fails with `WebSocketClosedError` and asyncio logs "Task exception was
  never retrieved", once per unsent push.
- A message the page sent just before it closed (a patch of a widget's value) is handled after
  its session was detached: Bokeh's connection asserts it has a session and its protocol handler
  logs "error handling message" with that `AssertionError`.
The session is discarded as usual either way, and Bokeh already logs one line for the closed
connection ("Failed sending message as connection was closed"). This filter drops exactly those
two records and counts them (`dropped`); any other error of either logger is still logged.
"""

from __future__ import annotations

import logging
import traceback

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

_UNRETRIEVED = ("asyncio", "Task exception was never retrieved")
_DETACHED = ("bokeh.server.protocol_handler", "error handling message")


class ClosedPageNoise(logging.Filter):
    """A filter for the `asyncio` and Bokeh protocol-handler loggers (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        message = str(record.msg)
        if record.name == _UNRETRIEVED[0] and message.startswith(_UNRETRIEVED[1]):
            noise = isinstance(exc, (WebSocketClosedError, StreamClosedError))
        elif record.name == _DETACHED[0] and message.startswith(_DETACHED[1]):
            noise = isinstance(exc, AssertionError) and _raised_in_connection_session(exc)
        else:
            noise = False
        if noise:
            self.dropped += 1
        return not noise

    def install(self) -> ClosedPageNoise:
        for name in (_UNRETRIEVED[0], _DETACHED[0]):
            logging.getLogger(name).addFilter(self)
        return self

    def remove(self) -> None:
        for name in (_UNRETRIEVED[0], _DETACHED[0]):
            logging.getLogger(name).removeFilter(self)


def _raised_in_connection_session(exc: BaseException) -> bool:
    """Whether `exc` was raised by `ServerConnection.session` (bokeh/server/connection.py)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and (
        frames[-1].name == "session" and frames[-1].filename.endswith("connection.py")
    )
