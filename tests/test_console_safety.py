"""The console against hostile pages and risky set-ups: a page of another site resolved to
127.0.0.1 (DNS rebinding) is refused by Host, an open address needs a login, a secret on the
command line is warned about, and one shared password cannot name operators."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from tradelab.cli import main
from tradelab.errors import InvalidInputError
from tradelab.ui.auth import AuthSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(port: int, path: str, host: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.slow
def test_a_request_naming_another_host_is_refused_on_every_route(tmp_path):
    port = _free_port()
    settings = tmp_path / "tradelab.yaml"
    settings.write_text(
        f"lab:\n  journal_path: {tmp_path / 'lab.duckdb'}\n  strategy: none\n"
        f"console:\n  port: {port}\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradelab.cli", "serve", "--config", str(settings)],
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    own = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the console did not start"
            try:
                if _status(port, "/console/stats", own) == 200:
                    break
            except OSError:
                time.sleep(0.3)
        rebound = f"evil.example:{port}"  # Origin == Host, as a rebinding page sends them
        for path in ("/", "/console/stats", "/metrics", "/bridge", "/ws"):
            assert _status(port, path, rebound) == 403, path
        assert _status(port, "/metrics", f"localhost:{port}") == 200
    finally:
        proc.terminate()
        proc.wait(30)


def test_an_address_beyond_loopback_without_a_login_is_refused(tmp_path):
    settings = tmp_path / "tradelab.yaml"
    settings.write_text(f"lab:\n  journal_path: {tmp_path / 'lab.duckdb'}\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["serve", "--config", str(settings), "--address", "0.0.0.0", "--port", "1"]
    )
    assert result.exit_code == 2
    assert "without a login would make anyone who can reach it an operator" in result.output
    assert not (tmp_path / "lab.duckdb").exists()  # refused before the Lab is made


def test_a_cookie_secret_on_the_command_line_is_warned_about(tmp_path):
    users = tmp_path / "users.json"
    users.write_text('{"alice": "pw"}', encoding="utf-8")
    args = ["serve", "--basic-auth", str(users), "--notebook", str(tmp_path / "none.ipynb")]
    given = CliRunner().invoke(main, [*args, "--cookie-secret", "x" * 32])
    assert "--cookie-secret on the command line can be read by every user" in given.output
    from_env = CliRunner().invoke(main, args, env={"PANEL_COOKIE_SECRET": "x" * 32})
    assert from_env.exit_code == 2 and "can be read by every user" not in from_env.output


def test_one_shared_password_cannot_name_operators():
    import panel as pn

    refused = None
    with pn.config.set(cookie_secret="s" * 32, basic_auth="one-shared-password"):
        try:  # caught inside: pn.config.set restores nothing when an exception passes through
            AuthSettings.from_panel_config(["alice"])
        except InvalidInputError as exc:
            refused = exc
    assert "need a password each" in str(refused)
