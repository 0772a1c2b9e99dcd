"""The served apps of benchmarks/push_latency.py: a bare Panel text pane pushed from a thread
(`FloorTarget`), the same pane set at most 20 times a second (`CoalescedFloorTarget`), and the
live console over a Lab (`ConsoleTarget`); each says how to push event number k and which seq
the page shows for it. Served in the benchmark's process by `pn.serve(..., threaded=True)`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from typing import Any

import click
import psutil

from tradelab.benchmarking.browser import free_port

FLOOR_CLASS, CONSOLE_CLASS = "tl-floor-seq", "tl-last-seq"
# Bokeh reaps a closed session after this (default 15 s): soon enough for the cycles to measure
# what closed sessions leave, late enough for a slow page to connect first.
REAP_AFTER_MS = 5000


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


class Target:
    """A served app, how to push event number k, and which seq it shows as."""

    css_class = FLOOR_CLASS

    def __init__(self) -> None:
        import panel as pn

        self.pn = pn
        self.port = free_port()
        self.server_id = uuid.uuid4().hex
        self.submitted_ms: dict[int, float] = {}  # event number -> submit wall time
        self.push_errors = 0

    def app(self) -> Any:
        raise NotImplementedError

    def push(self, k: int) -> None:
        raise NotImplementedError

    def seq_of(self, k: int) -> int | None:
        return k

    def start(self) -> None:
        with contextlib.redirect_stdout(sys.stderr):  # pn.serve prints; keep --json clean
            self.thread = self.pn.serve(
                {"app": self.app()},
                port=self.port,
                address="127.0.0.1",
                threaded=True,
                show=False,
                server_id=self.server_id,
                check_unused_sessions_milliseconds=1000,
                unused_session_lifetime_milliseconds=REAP_AFTER_MS,
                liveness=True,
            )
            deadline = time.monotonic() + 30
            while True:
                try:  # not the app's page: that would make a session nobody connects to
                    urllib.request.urlopen(f"{self.base}/liveness", timeout=5).read()
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/app"

    def live_sessions(self) -> int:
        return len(self.pn.state._servers[self.server_id][0].get_sessions())

    def stop(self) -> None:
        self.thread.stop()


class FloorTarget(Target):
    def app(self) -> Any:
        # One pane shared by every session: a param set from a thread reaches all of them.
        self.pane = self.pn.pane.Str("0", css_classes=[FLOOR_CLASS])
        return self.pane

    def push(self, k: int) -> None:
        self.submitted_ms[k] = time.time() * 1e3
        self.set_text(str(k))

    def set_text(self, text: str) -> None:
        try:
            self.pane.object = text
        except RuntimeError:
            # Panel 1.9 updates the model of a session being discarded directly from this
            # thread, and Bokeh refuses ("_pending_writes should be non-None ..."): counted.
            self.push_errors += 1


class CoalescedFloorTarget(FloorTarget):
    """The pane set at most `hz` times a second, to the latest event, by a thread of its own."""

    def __init__(self, hz: float = 20.0) -> None:
        super().__init__()
        self.interval, self.latest, self.shown = 1.0 / hz, 0, 0
        self._stop = threading.Event()

    def start(self) -> None:
        super().start()
        self._thread = threading.Thread(target=self._tick, name="floor-20hz", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            latest = self.latest
            if latest != self.shown:
                self.shown = latest
                self.set_text(str(latest))

    def push(self, k: int) -> None:
        self.submitted_ms[k] = time.time() * 1e3
        self.latest = k

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        super().stop()


class ConsoleTarget(Target):
    css_class = CONSOLE_CLASS

    def __init__(self) -> None:
        super().__init__()
        try:
            from tradelab.ui.config import ConsoleConfig
            from tradelab.ui.console import build_console
            from tradelab.ui.host import ConsoleHost
        except ImportError as exc:
            raise click.ClickException(
                f"--target console needs the console (tradelab.ui.host / console / config): "
                f"{exc}; measure the floor alone with --target floor"
            ) from None
        self._console = (ConsoleConfig, build_console, ConsoleHost)
        self.seqs: dict[int, int] = {}

    def start(self) -> None:
        from tradelab.lab import Lab

        config_cls, self._build, host_cls = self._console
        self.tmp = tempfile.mkdtemp(prefix="tl-push-")
        # A quiet market (the storm is ours) and no strategy.
        journal = os.path.join(self.tmp, "lab.duckdb")
        self.lab = Lab(journal_path=journal, ticks_per_second=5, strategy="none")
        self.host = host_cls(self.lab, config_cls()).start()  # starts the Lab
        self.lab.engine.bus.subscribe("mark.updated", self._on_mark, name="push-latency")
        super().start()

    def _on_mark(self, event: Any) -> None:  # kernel thread: one dict write
        k = event.payload.get("bench_k")
        if k is not None:
            self.seqs[k] = event.seq

    def app(self) -> Any:
        return lambda: self._build(self.host)

    def push(self, k: int) -> None:
        price = 100.0 + (k % 200) * 0.05
        mark = {"symbol": f"BENCH{k % 10}", "price": price, "bid": price, "ask": price}
        self.submitted_ms[k] = time.time() * 1e3
        self.lab.engine.submit(
            "mark.updated", {**mark, "last": price, "ts": time.time_ns(), "bench_k": k}
        )

    def seq_of(self, k: int) -> int | None:
        return self.seqs.get(k)

    def stop(self) -> None:
        super().stop()
        self.host.stop()  # stops the Lab
        shutil.rmtree(self.tmp, ignore_errors=True)
