"""A page closed during a push logs no traceback (counted instead); anything else still does."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from bokeh.server.connection import ServerConnection
from tornado.websocket import WebSocketClosedError

from tradelab.lab import Lab, LabConfig
from tradelab.ui.closed_pages import ClosedPageNoise
from tradelab.ui.config import ConsoleConfig
from tradelab.ui.host import ConsoleHost

HANDLER_LOG = "bokeh.server.protocol_handler"


def _unretrieved(exc: BaseException) -> None:
    """What Bokeh's unawaited websocket write leaves: a failed task nobody retrieves."""

    async def write() -> None:
        raise exc

    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(write())
        loop.run_until_complete(asyncio.sleep(0))
        del task
        gc.collect()  # the task's __del__ reports its unretrieved exception
    finally:
        loop.close()


def _message_after_detach() -> None:
    """What Bokeh's protocol handler logs for a page's message handled after its session was
    detached: `ServerConnection.session` asserts, logged as Bokeh logs it."""
    connection = object.__new__(ServerConnection)
    connection._session = None
    try:
        connection.session  # noqa: B018 (the property raises)
    except AssertionError as exc:
        logging.getLogger(HANDLER_LOG).error(
            "error handling message\n message: %r \n error: %r", "PATCH-DOC", exc, exc_info=True
        )


def _errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name in ("asyncio", HANDLER_LOG)]


@pytest.fixture
def noise():
    installed = ClosedPageNoise().install()
    yield installed
    installed.remove()


def test_a_write_to_a_closed_page_is_dropped_and_counted(caplog, noise):
    with caplog.at_level(logging.ERROR):
        _unretrieved(WebSocketClosedError())
    assert _errors(caplog) == []
    assert noise.dropped == 1


def test_a_message_of_a_detached_page_is_dropped_and_counted(caplog, noise):
    with caplog.at_level(logging.ERROR):
        _message_after_detach()
    assert _errors(caplog) == []
    assert noise.dropped == 1


def test_other_errors_of_the_same_loggers_are_still_logged(caplog, noise):
    with caplog.at_level(logging.ERROR):
        _unretrieved(ValueError("a real bug"))
        try:
            raise AssertionError("a real bug in a handler")
        except AssertionError as exc:
            logging.getLogger(HANDLER_LOG).error("error handling message %r", exc, exc_info=True)
    assert len(_errors(caplog)) == 2
    assert noise.dropped == 0


def test_a_running_console_host_drops_them_and_reports_how_many(tmp_path, caplog):
    lab = Lab(
        LabConfig(journal_path=str(tmp_path / "c.duckdb"), strategy="none", ticks_per_second=1)
    )
    host = ConsoleHost(lab, ConsoleConfig()).start()
    try:
        with caplog.at_level(logging.ERROR):
            _unretrieved(WebSocketClosedError())
            _message_after_detach()
        assert _errors(caplog) == []
        assert host.push_figures()["console_closed_page_noise"] == 2.0
    finally:
        host.stop()
    with caplog.at_level(logging.ERROR):  # stopped: the filter is gone
        _unretrieved(WebSocketClosedError())
        _message_after_detach()
    assert len(_errors(caplog)) == 2
