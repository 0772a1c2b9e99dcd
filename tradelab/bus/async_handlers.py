"""Runs coroutine-function handlers on the bus's own asyncio loop in one background thread.

Thread model: `schedule` is called from any publishing thread and never blocks it (the loop is
woken through `call_soon_threadsafe`). The loop thread starts on first use and `close` stops it.
Each event becomes one task; tasks start in publish order but interleave at their awaits.
Bounded per handler: with `MAX_PENDING` of a subscription's calls scheduled and not finished (a
handler slower than its topic), its new event is skipped for it and counted (`dropped`, by
handler in `dropped_by_handler`; the bus's `async_dropped` metric), and its first skip is
logged, so a slow async handler costs its own events, never another's nor the process's memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tradelab.errors import LifecycleError

if TYPE_CHECKING:
    from tradelab.bus.subscription import Subscription
    from tradelab.events import Event

FailureReporter = Callable[["Subscription", "Event", BaseException], None]
MAX_PENDING = 10_000
log = logging.getLogger(__name__)


class AsyncHandlerRunner:
    """One event loop thread per bus; failures go to `report_failure` like sync handler failures."""

    def __init__(self, bus_name: str, report_failure: FailureReporter) -> None:
        self._thread_name = f"{bus_name}-async-handlers"
        self._report_failure = report_failure
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._closed = False
        self.max_pending = MAX_PENDING  # per subscription
        self._pending_of: dict[int, int] = {}  # subscription id -> its calls pending
        self.dropped = 0  # calls not scheduled because their handler had max_pending pending
        self.dropped_by_handler: dict[str, int] = {}

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def pending(self) -> int:
        """Async handler calls scheduled and not yet finished."""
        return len(self._pending)

    def schedule(self, sub: Subscription, event: Event) -> None:
        """Start `sub.handler(event)` on the loop and return at once."""
        loop = self._loop or self._start()
        with self._lock:
            behind = self._pending_of.get(sub.id, 0)
            if behind >= self.max_pending:
                self.dropped += 1
                skipped = self.dropped_by_handler.get(sub.name, 0) + 1
                self.dropped_by_handler[sub.name] = skipped
            else:
                self._pending_of[sub.id] = behind + 1
        if behind >= self.max_pending:
            if skipped == 1:
                log.warning(
                    "async handler %s is %d calls behind: skipping events for it (counted in "
                    "the bus's async_dropped)",
                    sub.name,
                    behind,
                )
            return
        future = asyncio.run_coroutine_threadsafe(self._run(sub, event), loop)
        self._pending.add(future)
        future.add_done_callback(lambda done, sub_id=sub.id: self._finished(done, sub_id))

    def _finished(self, future: concurrent.futures.Future[None], sub_id: int) -> None:
        self._pending.discard(future)
        with self._lock:
            left = self._pending_of.get(sub_id, 1) - 1
            if left > 0:
                self._pending_of[sub_id] = left
            else:
                self._pending_of.pop(sub_id, None)

    async def _run(self, sub: Subscription, event: Event) -> None:
        started = time.perf_counter_ns()
        try:
            await sub.handler(event)
        except asyncio.CancelledError:  # the bus closing: not the handler's failure
            raise
        except BaseException as exc:  # isolated like a sync handler: reported, never re-raised
            # SystemExit / KeyboardInterrupt included: escaping, they stopped the loop, and
            # every later call of every async handler was silently never run.
            self._report_failure(sub, event, exc)
        finally:
            sub.record_call_time(time.perf_counter_ns() - started)

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise LifecycleError("the bus is closed; async handlers cannot be scheduled")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name=self._thread_name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def close(self, timeout: float) -> int:
        """Wait up to `timeout` s for running handlers, cancel the rest, stop the loop.

        Returns how many handler calls were cancelled.
        """
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
            self._loop = None  # a late schedule() now fails with LifecycleError in _start
        if loop is None or thread is None:
            return 0
        _done, not_done = concurrent.futures.wait(list(self._pending), timeout=timeout)
        for future in not_done:
            future.cancel()
        if not_done:
            # Let the cancellations run on the loop before it stops (a loop still busy with
            # them stops all the same: closing must not fail on a handler behind).
            with contextlib.suppress(concurrent.futures.TimeoutError):
                asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(timeout=1.0)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=max(timeout, 1.0))
        if not thread.is_alive():
            loop.close()
        return len(not_done)
