"""`tradelab run`'s and `tradelab serve`'s answer to Ctrl-C and SIGTERM: `StopSignals`."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

import click


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM for `run` and `serve`: the first asks the session to stop,
    at once if it runs, as soon as it has started if it is starting; one arriving while it
    stops is told "still stopping" (once) and otherwise ignored, so a stop is never cut short
    (a cut stop left the ack log and the account's -wal behind and exited 1, "journal
    damaged")."""

    def __init__(self) -> None:
        self.stop_requested = False
        self.stopping = False
        self._told = False
        self._then: Callable[[], object] | None = None
        self._previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }

    def install(self) -> None:
        """Take the signals back from a library that set its own handlers meanwhile (Panel's
        server sets one for Ctrl-C); `restore()` still puts back those from before."""
        for signum in self._previous:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        # Only flags here: the main thread may be anywhere (a lock held, a write half done).
        if not self.stop_requested and not self.stopping:
            self.stop_requested = True
            if self._then is not None:
                self._then()
        elif not self._told:
            self._told = True
            _say(
                "still stopping; the journal and the broker's account are being closed "
                "(a kill -9 now leaves them to the next start's recovery)"
            )

    def when_requested(self, then: Callable[[], object]) -> None:
        """Call `then()` on the first stop request from now on (from the signal handler: it
        must be safe there, e.g. a loop's call_soon_threadsafe), or at once if one came."""
        self._then = then
        if self.stop_requested:
            then()

    def __enter__(self) -> StopSignals:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.restore()

    def restore(self) -> None:
        """The handlers from before, unless a signal came: then the process is on its way out
        and a repeat must not turn the clean stop into a KeyboardInterrupt (exit 130)."""
        if self.stop_requested:
            self.stopping, self._told = True, True  # answered already: quiet from now on
            # Ignored at the C level: Python's own handlers go back to the default as the
            # interpreter shuts down, and a late signal would then turn the clean stop into
            # exit 130 (143 for SIGTERM).
            for signum in self._previous:
                signal.signal(signum, signal.SIG_IGN)
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _say(text: str) -> None:
    """Write a line to stdout from a signal handler: unbuffered, so it cannot re-enter a write
    the main thread was in the middle of."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's captured output)
        click.echo(text)
        return
    os.write(fd, f"{text}\n".encode())
