"""The console with basic auth: an operator logs in and gets the controls, a viewer sees the
console read-only, and the extra routes refuse a request without a login."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import ConsoleServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory, browser):
    tmp = tmp_path_factory.mktemp("auth")
    users = tmp / "users.json"
    users.write_text(json.dumps({"alice": "alice-pw", "bob": "bob-pw"}), encoding="utf-8")
    server = ConsoleServer(
        tmp,
        ["--basic-auth", str(users), "--cookie-secret", "test-secret-0123456789"],
        operators=["alice"],
    )
    try:
        # /console/stats refuses anonymous requests, so readiness is the login page itself.
        server.wait_ready(stats=False)
        yield server
    finally:
        server.stop()


def _login(context, server, user: str, password: str):
    page = context.new_page()
    page.goto(server.url)
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(password)
    page.locator("button[type=submit]").click()
    page.locator(".tl-last-seq").wait_for(timeout=20_000)
    return page


def test_operator_gets_controls_and_viewer_does_not(auth_server, context, browser):
    operator = _login(context, auth_server, "alice", "alice-pw")
    assert operator.locator(".tl-runner-pause").count() == 1
    assert operator.locator(".tl-flatten").count() == 1
    # The login cookie opens the extra routes too.
    response = context.request.get(auth_server.url + "console/stats")
    assert response.status == 200 and response.json()["sessions"] >= 1
    viewer_context = browser.new_context()
    try:
        viewer = _login(viewer_context, auth_server, "bob", "bob-pw")
        assert viewer.locator(".tl-runner-pause").count() == 0
        assert viewer.locator(".tl-flatten").count() == 0
        assert "not an operator" in viewer.locator(".tl-readonly").inner_text()
    finally:
        viewer_context.close()


def test_extra_routes_refuse_a_request_without_login(auth_server):
    with pytest.raises(urllib.error.HTTPError) as refused:
        auth_server.stats()
    assert refused.value.code == 401
    for route in ("metrics", "bridge"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(auth_server.url + route, timeout=5)
        assert refused.value.code == 401, route
