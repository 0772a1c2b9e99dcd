"""`tradelab serve` usage errors and its safe defaults (loopback address, websocket origins)."""

from __future__ import annotations

import signal
import socket
import time

from click.testing import CliRunner

from tradelab.cli import main
from tradelab.cli_serve import websocket_origins
from tradelab.settings import load_settings


def test_basic_auth_without_cookie_secret_is_a_usage_error(tmp_path):
    users = tmp_path / "users.json"
    users.write_text('{"alice": "pw"}', encoding="utf-8")
    result = CliRunner().invoke(main, ["serve", "--basic-auth", str(users)])
    assert result.exit_code == 2
    assert "--cookie-secret" in result.output


def test_missing_notebook_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--notebook", str(tmp_path / "nope.ipynb")])
    assert result.exit_code == 2
    assert "nope.ipynb" in result.output


def test_console_listens_on_loopback_by_default():
    console = load_settings().console
    assert (console.address, console.port) == ("127.0.0.1", 5006)
    assert 10 <= console.push_rate_hz <= 20
    assert websocket_origins("127.0.0.1", 5006) == ["127.0.0.1:5006", "localhost:5006"]
    assert websocket_origins("10.0.0.5", 80) == ["10.0.0.5:80"]


def test_bad_console_setting_names_the_key(tmp_path):
    settings = tmp_path / "tradelab.yaml"
    settings.write_text("console:\n  push_rate_hz: 500\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["serve", "--config", str(settings)])
    assert result.exit_code == 2
    assert "console.push_rate_hz" in result.output


def _serve(args, **env):
    clean = {"PANEL_OAUTH_KEY": None, "PANEL_OAUTH_SECRET": None, "PANEL_COOKIE_SECRET": None}
    return CliRunner().invoke(main, ["serve", *args], env={**clean, **env})


def test_oauth_without_cookie_secret_is_a_usage_error():
    result = _serve(["--oauth-provider", "github", "--oauth-key", "k", "--oauth-secret", "s"])
    assert result.exit_code == 2
    assert "--oauth-provider needs --cookie-secret" in result.output


def test_oauth_without_the_apps_key_and_secret_is_a_usage_error():
    result = _serve(["--oauth-provider", "github", "--cookie-secret", "x" * 32])
    assert result.exit_code == 2
    assert "--oauth-key and --oauth-secret" in result.output
    # ... which the environment may give, as Panel's own variables
    given = _serve(
        ["--oauth-provider", "github", "--cookie-secret", "x" * 32, "--notebook", "nowhere.ipynb"],
        PANEL_OAUTH_KEY="k",
        PANEL_OAUTH_SECRET="s",
    )
    assert given.exit_code == 2
    assert "nowhere.ipynb" in given.output  # got past the OAuth checks


def test_basic_auth_and_oauth_together_is_a_usage_error(tmp_path):
    users = tmp_path / "users.json"
    users.write_text('{"alice": "pw"}', encoding="utf-8")
    result = _serve(
        ["--basic-auth", str(users), "--oauth-provider", "github", "--cookie-secret", "x" * 32]
    )
    assert result.exit_code == 2
    assert "choose one" in result.output


def test_a_port_in_use_is_a_usage_error_before_the_lab_touches_a_file(tmp_path):

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        journal = tmp_path / "lab.duckdb"
        settings = tmp_path / "tradelab.yaml"
        settings.write_text(f"lab:\n  journal_path: {journal}\n")
        result = CliRunner().invoke(main, ["serve", "--config", str(settings), "--port", str(port)])
    assert result.exit_code == 2, (result.output, result.stderr)
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [settings]


def test_an_oauth_provider_panel_does_not_know_is_a_usage_error_before_anything_starts():
    """It reached pn.serve after the Lab had journaled a few seconds of market, and ended in
    a KeyError traceback with exit 1 ("journal damaged")."""
    args = ["--oauth-provider", "nope", "--oauth-key", "k", "--oauth-secret", "s"]
    result = _serve([*args, "--cookie-secret", "x" * 32, "--notebook", "nowhere.ipynb"])
    assert result.exit_code == 2, result.output
    assert "--oauth-provider 'nope' is not one Panel knows; it knows" in result.output
    assert "github" in result.output and "nowhere.ipynb" not in result.output  # checked first


def test_installed_without_the_repository_it_serves_the_packaged_console(tmp_path, monkeypatch):
    # A wheel holds no notebooks/: `tradelab serve` failed with "console notebook ... not
    # found". The packaged script is the same app, served by a real server here.
    import urllib.request

    from tests.browser.conftest import ConsoleServer
    from tradelab import cli_serve

    assert cli_serve.console_app(None) == cli_serve.NOTEBOOK  # a checkout: its notebook
    monkeypatch.setattr(cli_serve, "NOTEBOOK", tmp_path / "no-notebooks" / "console.ipynb")
    assert cli_serve.console_app(None) == cli_serve.PACKAGED_APP
    assert cli_serve.console_app("mine.ipynb").name == "mine.ipynb"
    server = ConsoleServer(tmp_path, extra_args=["--notebook", str(cli_serve.PACKAGED_APP)])
    try:
        server.wait_ready(stats=False)
        with urllib.request.urlopen(server.url, timeout=30) as page:
            assert "<title>tradelab console</title>" in page.read().decode()
        assert server.stats()["sessions"] >= 1
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log.read_text()[-2000:]


def test_a_served_console_that_cannot_start_is_a_page_saying_why(monkeypatch):
    # `panel serve notebooks/console.ipynb` on a journal refused as damaged gave a blank page,
    # the reason only in the server's log.
    import panel as pn

    import tradelab.ui.host
    from tradelab.errors import RecoveryError
    from tradelab.ui.console import served_console

    def refused():
        raise RecoveryError("journal lab.duckdb is damaged: reading its tape history failed")

    monkeypatch.setattr(tradelab.ui.host, "shared_host", refused)
    page = served_console()
    assert isinstance(page, pn.pane.Alert) and page.alert_type == "danger"
    assert "The console cannot start." in page.object and "is damaged" in page.object


def test_a_notebook_that_is_not_a_notebook_or_script_is_a_usage_error(tmp_path, monkeypatch):
    # Panel served any other text as a page reading the file's name, the Lab trading behind it.
    monkeypatch.chdir(tmp_path)
    for name in ("bars.txt", "console.IPYNB"):  # Panel picks its handler by the exact suffix
        bars = tmp_path / name
        bars.write_text("Date,Open,High,Low,Close\n")
        result = CliRunner().invoke(main, ["serve", "--notebook", str(bars)])
        assert result.exit_code == 2, result.output
        assert "is not a console notebook (.ipynb) or app script (.py)" in result.output
    assert not (tmp_path / "data").exists()


def test_a_sigterm_while_the_console_starts_stops_it_cleanly(tmp_path):
    # Sent before the server's loop ran, SIGTERM killed the process (exit 143, the lock and
    # the ack log left as after a crash) and Ctrl-C ended a clean stop with exit 130.
    import os
    import subprocess
    import sys
    from pathlib import Path

    journal = tmp_path / "lab.duckdb"
    settings = tmp_path / "tradelab.yaml"
    settings.write_text(f"lab:\n  journal_path: {journal}\n")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tradelab.cli",
            "serve",
            "--config",
            str(settings),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    deadline = time.monotonic() + 60
    while not journal.exists():  # the Lab is being made: the handlers are in place by now
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    assert "tradelab console stopped cleanly" in output and "Traceback" not in output
    assert "tradelab console at" not in output  # never served: no address to open
    assert not (tmp_path / "lab.duckdb.lock").exists()
    assert not list(tmp_path.glob("*.acklog"))


def test_ctrl_c_again_and_again_on_a_running_console_is_one_clean_stop(tmp_path):
    # Panel's server put its own Ctrl-C handler in place of the console's: the repeat, during
    # the stop, became a KeyboardInterrupt after "stopped cleanly" (exit 130).
    from tests.browser.conftest import ConsoleServer

    server = ConsoleServer(tmp_path)
    server.wait_ready()
    deadline = time.monotonic() + 60
    while server.process.poll() is None and time.monotonic() < deadline:
        server.process.send_signal(signal.SIGINT)  # a user pressing it again and again
        time.sleep(0.1)
    server.process.wait(5)
    log = server.log.read_text()
    assert server.process.returncode == 0, log[-2000:]
    assert "stopped cleanly" in log and "Traceback" not in log


def test_operators_named_without_a_login_are_warned_about(tmp_path):
    # They were ignored without a word: everyone on 127.0.0.1 operated the console.
    settings = tmp_path / "tradelab.yaml"
    settings.write_text("console:\n  operators: [alice]\n")
    with socket.socket() as taken:  # the serve stops there, after the warning, before a Lab
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(main, ["serve", "--config", str(settings), "--port", port])
    assert result.exit_code == 2
    assert "console.operators (alice) count only with a login" in result.stderr
