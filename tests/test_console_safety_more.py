"""The console's safety checks as people reach it: by any loopback name and port, not on an IPv6 address,
through panel serve with a login but no cookie secret; and errors that quote a huge value."""

from __future__ import annotations

from types import SimpleNamespace

from click.testing import CliRunner

from tradelab.cli import main
from tradelab.cli_serve import websocket_origins
from tradelab.errors import InvalidInputError
from tradelab.ui.auth import AuthSettings
from tradelab.ui.host_guard import guard_hosts


class _App:
    """What guard_hosts needs of a tornado Application: the handler it finds, and the 403's."""

    def find_handler(self, request, **kwargs):
        return "the console"

    def get_handler_delegate(self, request, handler):
        return "refused"


def test_every_loopback_name_with_any_port_reaches_the_console_and_no_other_host():
    app = _App()
    guard_hosts(app)
    reached = {
        host: app.find_handler(SimpleNamespace(host=host))
        for host in ("127.0.0.1:5006", "localhost", "LOCALHOST:8080", "[::1]:80", "[::1]")
    }
    assert set(reached.values()) == {"the console"}  # :80 left out by browsers, SSH tunnels
    for host in ("evil.example:5006", "127.0.0.1.evil.example", "", "[::2]:5006"):
        assert app.find_handler(SimpleNamespace(host=host)) == "refused", host


def test_an_ipv6_address_is_refused_before_the_lab_starts(tmp_path, monkeypatch):
    # Bokeh's origin check takes host:port names only: `serve --address ::1` started the Lab,
    # then died in a traceback with exit 1 (which means "journal damaged").
    monkeypatch.chdir(tmp_path)
    for address in ("::1", "::"):
        result = CliRunner().invoke(main, ["serve", "--address", address, "--port", "5129"])
        assert result.exit_code == 2, result.output
        assert f"cannot serve on the IPv6 address {address}" in result.output
    assert not (tmp_path / "data").exists()
    assert websocket_origins("127.0.0.1", 5128) == ["127.0.0.1:5128", "localhost:5128"]


def test_panel_serve_with_a_login_but_no_cookie_secret_is_refused():
    import panel as pn

    refused = None
    with pn.config.set(basic_auth="one-shared-password"):
        try:  # caught inside: pn.config.set restores nothing when an exception passes through
            AuthSettings.from_panel_config([])
        except InvalidInputError as exc:
            refused = exc
    assert "without --cookie-secret" in str(refused)


def test_an_error_quoting_a_huge_value_is_one_bounded_line(tmp_path):
    config = tmp_path / "big.yaml"
    config.write_text("lab:\n  strategy: " + "x" * 2_000_000 + "\n")
    result = CliRunner().invoke(main, ["config", "--config", str(config)])
    assert result.exit_code == 2 and len(result.output) < 3_000
    assert "characters)" in result.output
