"""Ctrl-C during a backtest's bars, taken between two bars. Python raises KeyboardInterrupt
wherever the main thread happens to be, which may be half way through a bar: between the store
applying an event and the journal writer getting it. While a synchronous backtest plays its
bars on the main thread, `BetweenBars` turns the first SIGINT into a request that the next bar
raises (a bar takes well under a millisecond); a second SIGINT raises at once, as usual (a
strategy stuck inside one bar). Thread model: entered and checked on the main thread only."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType


class InterruptedWhileStopping(KeyboardInterrupt):
    """A KeyboardInterrupt (Ctrl-C, or one a strategy's `on_stop` raised) after every bar was
    played, while the strategies were being stopped: the journal holds every bar."""


class BetweenBars:
    """`with BetweenBars(): ... check() before each bar`. Does nothing off the main thread or
    when SIGINT is not Python's default handler (someone else handles Ctrl-C there)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: object = None
        self._installed = False

    def __enter__(self) -> BetweenBars:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            if self._previous is signal.default_int_handler:
                signal.signal(signal.SIGINT, self._on_sigint)
                self._installed = True
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._installed = False
        if self.requested and kind is None:
            raise KeyboardInterrupt  # came after the last bar's check: still an interrupt

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        """Raise KeyboardInterrupt if Ctrl-C was pressed since the bars began."""
        if self.requested:
            raise KeyboardInterrupt
