"""Auth of the extra tornado routes: the user Panel's login signed into its cookie, HTTP Basic for
scrapers, 401 / 403 when auth is configured, and clear errors for a bad --basic-auth file."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from email.message import Message
from http.cookiejar import CookieJar

import pytest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.web import Application, create_signed_value

from tradelab.errors import InvalidInputError
from tradelab.ui.auth import AuthCheckedHandler, AuthSettings, load_basic_auth

SECRET = "a-cookie-secret-of-some-length"
TESTS = os.path.dirname(os.path.abspath(__file__))


@contextmanager
def serve_routes(routes):
    """A real tornado server for `routes` on a free port, on a thread of its own; yields the
    base URL."""
    sock, port = bind_unused_port()
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = HTTPServer(Application(routes))
        server.add_sockets([sock])
        loop.call_soon(ready.set)
        loop.run_forever()
        server.stop()
        loop.run_until_complete(server.close_all_connections())
        loop.close()

    thread = threading.Thread(target=run, name="test-tornado", daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def get(url: str, headers: dict | None = None) -> tuple[int, str, Message]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


class WhoAmI(AuthCheckedHandler):
    def get(self) -> None:
        self.write(str(self.current_user))


def routes(auth):
    return [
        ("/whoami", WhoAmI, {"auth": auth}),
        ("/admin-ish", WhoAmI, {"auth": auth, "operators_only": True}),
    ]


def cookie(user: str, secret: str = SECRET) -> dict:
    return {"Cookie": f"user={create_signed_value(secret, 'user', user).decode()}"}


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def users_file(tmp_path):
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"alice": "wonder", "bob": "builder"}))
    return path


def test_without_auth_every_request_passes(users_file):
    with serve_routes(routes(AuthSettings())) as base:
        assert get(f"{base}/whoami")[:2] == (200, "None")
        assert get(f"{base}/admin-ish")[0] == 200


def test_configured_auth_needs_a_signed_user_and_an_operator_where_asked(users_file):
    auth = AuthSettings.configure(
        cookie_secret=SECRET, basic_auth_file=users_file, operators=["alice"]
    )
    with serve_routes(routes(auth)) as base:
        status, _, headers = get(f"{base}/whoami")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        assert get(f"{base}/whoami", cookie("bob"))[:2] == (200, "bob")
        # A cookie signed with another secret, or edited, names nobody.
        assert get(f"{base}/whoami", cookie("alice", "another-secret-of-length"))[0] == 401
        forged = cookie("bob")["Cookie"].replace("Ym9i", "YWxp")
        assert get(f"{base}/whoami", {"Cookie": forged})[0] == 401
        assert get(f"{base}/whoami", basic("bob", "builder"))[:2] == (200, "bob")
        assert get(f"{base}/whoami", basic("bob", "wonder"))[0] == 401
        for near in ("builder-and-more", "builde", "Builder", ""):  # not a prefix, not a case
            assert get(f"{base}/whoami", basic("bob", near))[0] == 401, near
        assert get(f"{base}/whoami", {"Authorization": "Basic !!!"})[0] == 401
        assert get(f"{base}/admin-ish", cookie("bob"))[0] == 403
        assert get(f"{base}/admin-ish", basic("alice", "wonder"))[:2] == (200, "alice")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "does not exist"),
        ("{alice: 1}", r"is not JSON \(line 1, column 2"),
        ('["alice"]', "must hold a non-empty object"),
        ("{}", "must hold a non-empty object"),
        ('{"alice": ""}', "password of 'alice' must be non-empty text"),
        ('{"alice": 3}', "password of 'alice'"),
        ('{" ": "x"}', "empty user name"),
    ],
)
def test_a_bad_basic_auth_file_is_a_clear_error(tmp_path, content, error):
    path = tmp_path / "users.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidInputError, match=error):
        load_basic_auth(path)


def test_settings_refuse_what_cannot_protect_anything(users_file):
    with pytest.raises(InvalidInputError, match="without a cookie secret"):
        AuthSettings(operators=frozenset({"alice"}))
    with pytest.raises(InvalidInputError, match="at least 16 characters"):
        AuthSettings(cookie_secret="short")
    with pytest.raises(InvalidInputError, match="operator 'carol' has no password"):
        AuthSettings.configure(
            cookie_secret=SECRET, basic_auth_file=users_file, operators=["carol"]
        )
    assert load_basic_auth(users_file) == {"alice": "wonder", "bob": "builder"}
    local = AuthSettings()
    assert not local.configured and local.command_operators is None and local.is_operator(None)
    viewers_only = AuthSettings(cookie_secret=SECRET)
    assert viewers_only.command_operators == frozenset()
    assert not viewers_only.is_operator("alice")


PANEL_SERVER = textwrap.dedent(
    """
    import sys, panel as pn
    from test_ui_auth import WhoAmI
    from tradelab.ui.auth import AuthSettings
    users, secret, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    auth = AuthSettings.configure(cookie_secret=secret, basic_auth_file=users, operators=["alice"])
    pn.serve({"app": lambda: pn.pane.Markdown("hello")}, port=port, address="127.0.0.1",
             show=False, basic_auth=users, cookie_secret=secret,
             extra_patterns=[("/whoami", WhoAmI, {"auth": auth})])
    """
)


def responds(url: str, status: int) -> bool:
    try:
        return get(url)[0] == status
    except urllib.error.URLError:  # not listening yet
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_user_panel_logged_in_is_the_user_of_an_extra_route(users_file, tmp_path):
    """Panel's own basic-auth login sets the cookie; the extra route reads the same user."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", PANEL_SERVER, str(users_file), SECRET, str(port)],
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": os.pathsep.join([TESTS, *sys.path])},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not responds(f"{base}/whoami", 401):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "panel server did not start"
            time.sleep(0.2)
        jar = CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        form = urllib.parse.urlencode({"username": "alice", "password": "wonder"}).encode()
        browser.open(f"{base}/login", data=form, timeout=10).read()
        assert browser.open(f"{base}/whoami", timeout=10).read().decode() == "alice"
        refused = urllib.parse.urlencode({"username": "alice", "password": "nope"}).encode()
        stranger = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        stranger.open(f"{base}/login", data=refused, timeout=10).read()
        with pytest.raises(urllib.error.HTTPError) as denied:
            stranger.open(f"{base}/whoami", timeout=10)
        assert denied.value.code == 401
    finally:
        proc.terminate()
        proc.wait(10)


def test_auth_follows_what_panel_serve_was_given(users_file):
    """`panel serve --plugins tradelab.ui.plugin` with a login: the console's host reads the cookie
    secret (and a --basic-auth file) from pn.config, so extra routes and controls are protected."""
    import panel as pn

    assert not AuthSettings.from_panel_config(["alice"]).configured  # no secret: no auth
    with pn.config.set(cookie_secret=SECRET, oauth_provider="github"):
        oauth = AuthSettings.from_panel_config(["alice"])
    assert oauth.configured and oauth.basic_users is None
    assert oauth.is_operator("alice") and not oauth.is_operator("bob")
    with pn.config.set(cookie_secret=SECRET, basic_auth=str(users_file)):
        basic = AuthSettings.from_panel_config(["bob"])
    assert dict(basic.basic_users) == {"alice": "wonder", "bob": "builder"}
    with pn.config.set(cookie_secret=SECRET, basic_auth="one-shared-password"):
        shared = AuthSettings.from_panel_config([])
    assert shared.configured and shared.basic_users is None and not shared.is_operator("alice")
    with serve_routes(routes(oauth)) as base:
        assert get(f"{base}/whoami")[0] == 401
        assert get(f"{base}/admin-ish", cookie("alice"))[0] == 200
        assert get(f"{base}/admin-ish", cookie("bob"))[0] == 403


@pytest.mark.slow
def test_panel_serve_with_oauth_protects_the_consoles_routes(tmp_path):
    """`panel serve notebooks/console.ipynb --plugins tradelab.ui.plugin --oauth-provider ...`:
    the page sends a stranger to the provider's login, and the console's own routes take only
    a user an OAuth login signed into the cookie (here signed by the test, as Panel would)."""
    settings = tmp_path / "tradelab.yaml"
    settings.write_text(
        f"lab:\n  journal_path: {tmp_path / 'lab.duckdb'}\n  strategy: none\n"
        "console:\n  operators: [alice]\n",
        encoding="utf-8",
    )
    port = free_port()
    notebook = os.path.join(os.path.dirname(TESTS), "notebooks", "console.ipynb")
    command = [sys.executable, "-m", "panel", "serve", notebook, "--plugins", "tradelab.ui.plugin"]
    command += ["--port", str(port), "--address", "127.0.0.1", "--cookie-secret", SECRET]
    command += ["--oauth-provider", "github", "--oauth-key", "app-id", "--oauth-secret", "s"]
    proc = subprocess.Popen(
        command,
        cwd=str(tmp_path),
        env={**os.environ, "TRADELAB_CONFIG": str(settings)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        deadline = time.monotonic() + 60
        while not responds(f"{base}/metrics", 401):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "panel server did not start"
            time.sleep(0.3)
        assert get(f"{base}/metrics", cookie("alice"))[0] == 200
        assert (
            get(f"{base}/metrics", cookie("mallory", secret="another-secret-altogether"))[0] == 401
        )
        status, _, _ = get(f"{base}/console/stats", cookie("bob"))
        assert status == 200  # a viewer reads; commands re-check the operator list
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as sent_away:
            opener.open(f"{base}/console", timeout=10)
        assert sent_away.value.code == 302
        assert "login" in sent_away.value.headers["Location"]
    finally:
        proc.terminate()
        proc.wait(30)
