"""Handler failures on the bus: counted exactly, logged (throttled), announced on the bus.

`FailureRecorder` is the failure half of `EventBus` (see core.py); it uses the bus's lock,
counters, name and `publish`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from tradelab.bus.subscription import Handler, Subscription, failure_payload
from tradelab.errors import LifecycleError, interrupts_the_user
from tradelab.events import Event

log = logging.getLogger("tradelab.bus")

HANDLER_FAILED = "bus.handler_failed"
# A failing handler is logged with its traceback this many times, then once per 1000 failures,
# so a handler that fails on every tick cannot flood the log; the counts stay exact.
FAILURES_LOGGED_IN_FULL = 10


class FailureRecorder:
    """The failure-handling methods of EventBus."""

    def _handler_failed(
        self, route: Any, handler: Handler, event: Event, exc: BaseException
    ) -> None:
        # SystemExit / KeyboardInterrupt from a handler: isolated like any failure on other
        # threads (on the engine's kernel it would drop the rest of the batch's deliveries),
        # but on the main thread it is the user interrupting, and goes on up.
        if interrupts_the_user(exc):
            raise exc
        for candidate, sub in zip(route.handlers, route.subs, strict=True):
            if candidate is handler:
                self._record_failure(sub, event, exc)
                return

    def _record_failure(self, sub: Subscription, event: Event, exc: BaseException) -> None:
        with self._lock:
            sub.failures += 1
            failures = sub.failures
            self._failures_total += 1
            self._failures_by_handler[sub.name] = self._failures_by_handler.get(sub.name, 0) + 1
            closed = self._closed
        if failures <= FAILURES_LOGGED_IN_FULL or failures % 1000 == 0:
            log.error(
                "bus %r: handler %s failed on %s seq=%s (failure #%d)",
                self.name,
                sub.name,
                event.topic,
                event.seq,
                failures,
                exc_info=exc,
            )
        if event.topic == HANDLER_FAILED or closed:
            return  # loop guard: a failing failure handler is logged and counted, no more
        # Closed between the check and the publish: nobody is left to tell.
        with contextlib.suppress(LifecycleError):
            self.publish(HANDLER_FAILED, failure_payload(sub, event, exc), key=sub.name)
