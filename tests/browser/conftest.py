"""Fixtures for the console's browser tests: a real `tradelab serve` in a subprocess on a free
port (a fast simulated session, so a trade happens within a second and the feed goes silent
within half a minute), and Debian's Chromium driven by Playwright. Modelled on Panel's own
panel/tests/util.py (run_panel_serve, wait_for_port, wait_until).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tradelab.benchmarking.browser import CHROMIUM_ARGS, free_port

ROOT = Path(__file__).resolve().parents[2]
# The simulated session (09:15-15:30, 22,500 market seconds) lasts ~30 s of wall time here.
SESSION_SPEED = 750
FEED_STALL_SECONDS = 25.0


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(0.1)


class ConsoleServer:
    """A `tradelab serve` subprocess; `stats()` reads its /console/stats route."""

    def __init__(
        self,
        tmp: Path,
        extra_args: list[str] | None = None,
        lab: dict[str, Any] | None = None,
        **console: Any,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        settings = tmp / "tradelab.yaml"
        console_lines = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in console.items())
        lab_lines = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in (lab or {}).items())
        settings.write_text(
            "lab:\n"
            f"  journal_path: {tmp / 'console.duckdb'}\n"
            f"  speed: {SESSION_SPEED}\n"
            "  ticks_per_second: 40\n"
            "  strikes_each_side: 2\n" + lab_lines + "console:\n"
            "  stale_after_seconds: 1.5\n"
            "  unused_session_seconds: 1.0\n" + console_lines,
            encoding="utf-8",
        )
        self.log = tmp / "server.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "tradelab.cli", "serve", "--config", str(settings)]
        cmd += ["--port", str(self.port), *(extra_args or [])]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, cwd=tmp, env=env
            )

    def wait_ready(self, timeout: float = 60.0, *, stats: bool = True) -> None:
        """Until /console/stats answers (`stats=False`: until the server answers at all)."""

        def up() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if stats:
                    return self.stats() is not None
                with urllib.request.urlopen(self.url, timeout=5):
                    return True
            except OSError:
                return False

        wait_until(up, timeout, "the console server")

    def stats(self, headers: dict[str, str] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(self.url + "console/stats", headers=headers or {})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        # SIGINT: what Ctrl-C does; the server stops its Lab (drain, snapshot) and exits.
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def console_server(
    tmp_path_factory: pytest.TempPathFactory, browser: Any
) -> Iterator[ConsoleServer]:
    # After the browser: the simulated session's clock starts when the server does. Its feed
    # goes silent after 25 s (before the session's close at ~30 s, which is not staleness).
    server = ConsoleServer(
        tmp_path_factory.mktemp("console"), lab={"feed_stall_after_seconds": FEED_STALL_SECONDS}
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield ctx
    finally:
        ctx.close()
