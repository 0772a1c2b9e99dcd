"""The body of `tradelab serve`: the live console (notebooks/console.ipynb) on one Lab shared by
every browser session, with the console's extra routes, on 127.0.0.1:5006 by default.

Thread model: the caller's thread runs the server's event loop until Ctrl-C or SIGTERM; then
the host stops the Lab (it drains its queue and takes a snapshot).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "console.ipynb"
# Installed from a wheel, the repository's notebook is not there: the same app as a script.
PACKAGED_APP = Path(__file__).resolve().parent / "ui" / "console_app.py"
LOOPBACK = ("127.0.0.1", "localhost")


def console_app(notebook: str | None) -> Path:
    """What `tradelab serve` serves: `notebook` if given, else the repository's console
    notebook, else (an installed package has no notebooks/) the packaged app script."""
    if notebook is not None:
        return Path(notebook)
    return NOTEBOOK if NOTEBOOK.is_file() else PACKAGED_APP


def websocket_origins(address: str, port: int) -> list[str]:
    """The origins the browser may open the session websocket from (Bokeh refuses others)."""
    hosts = LOOPBACK if address in LOOPBACK else (address,)
    return [f"{host}:{port}" for host in hosts]  # IPv4 or names: serve_console refuses IPv6


def serve_console(
    *,
    config_file: str | None,
    overrides: dict[str, Any],
    basic_auth: str | None,
    cookie_secret: str | None,
    notebook: str | None,
    show: bool,
    oauth: dict[str, str] | None = None,
) -> None:
    """Build the shared host from the settings, then serve the console until stopped.

    `oauth`: Panel's OAuth settings (`oauth_provider`, `oauth_key`, `oauth_secret`, optionally
    `oauth_redirect_uri`), an alternative to `basic_auth`; either needs `cookie_secret`."""
    import panel as pn
    from tornado.ioloop import PeriodicCallback

    from tradelab.cli import EXIT_DAMAGED, EXIT_UNUSABLE, EXIT_USAGE, exit_code_for, fail
    from tradelab.cli_signals import StopSignals
    from tradelab.errors import RecoveryError, TradelabError
    from tradelab.settings import apply_overrides, load_settings
    from tradelab.ui.auth import AuthSettings
    from tradelab.ui.host import ConsoleHost, shared_host
    from tradelab.ui.host_guard import guard_hosts
    from tradelab.ui.routes import extra_routes

    if basic_auth is not None and oauth:
        fail("--basic-auth and --oauth-provider are two logins: choose one", EXIT_USAGE)
    login = "--basic-auth" if basic_auth is not None else "--oauth-provider" if oauth else None
    if login is not None and not cookie_secret:
        fail(
            f"{login} needs --cookie-secret or PANEL_COOKIE_SECRET (it signs the login cookie)",
            EXIT_USAGE,
        )
    if oauth and oauth["oauth_provider"] not in _oauth_providers():
        fail(
            f"--oauth-provider {oauth['oauth_provider']!r} is not one Panel knows; it knows "
            f"{', '.join(sorted(_oauth_providers()))}",
            EXIT_USAGE,
        )
    if oauth and not (oauth.get("oauth_key") and oauth.get("oauth_secret")):
        fail(
            "--oauth-provider needs the app's --oauth-key and --oauth-secret "
            "(or PANEL_OAUTH_KEY / PANEL_OAUTH_SECRET)",
            EXIT_USAGE,
        )
    path = console_app(notebook)
    if not path.is_file():
        fail(f"console notebook {str(path)!r} not found", EXIT_USAGE)
    if path.suffix not in (".ipynb", ".py"):  # as Panel picks its handler: case counts
        # Panel serves any other text as a page reading the file's name, the Lab running.
        fail(
            f"--notebook {str(path)!r} is not a console notebook (.ipynb) or app script (.py)",
            EXIT_USAGE,
        )
    try:
        settings = load_settings(config_file)
        apply_overrides(settings, overrides)
    except TradelabError as exc:
        fail(exc, exit_code_for(exc))
    console = settings.console
    if ":" in console.address:
        fail(
            f"cannot serve on the IPv6 address {console.address}: Bokeh's check of the page's "
            "origin takes host:port names only, so no browser could connect; use 127.0.0.1 "
            "(or localhost), or an IPv4 address or host name",
            EXIT_USAGE,
        )
    loopback = console.address in LOOPBACK
    if not loopback and login is None:
        fail(
            f"listening on {console.address} without a login would make anyone who can reach "
            "it an operator: add --basic-auth FILE (a password per user) or --oauth-provider, "
            "or listen on 127.0.0.1",
            EXIT_USAGE,
        )
    if console.operators and login is None:
        click.echo(
            f"tradelab: WARNING: console.operators ({', '.join(console.operators)}) count only "
            "with a login (--basic-auth or --oauth-provider); without one everyone who reaches "
            "the console operates it",
            err=True,
        )
    busy = _port_in_use(console.address, console.port)
    if busy is not None:  # before the Lab is made: a refused serve leaves no file behind
        fail(
            f"cannot listen on {console.address}:{console.port}: {busy} (another console "
            "running?); choose another with --port",
            EXIT_USAGE,
        )
    # From here a signal asks for a stop and is obeyed once the console can stop cleanly: in
    # start-up it used to kill the process (SIGTERM, leaving what a crash leaves) or to end a
    # clean stop with "interrupted", exit 130 (Ctrl-C).
    with StopSignals() as signals:  # restored on every way out (its __exit__)
        try:
            lab = settings.make_lab()
        except TradelabError as exc:
            fail(exc, exit_code_for(exc))
        try:
            # The notebook's own `shared_host()` call gets this one: one Lab per server process.
            auth = AuthSettings()
            if login is not None:
                auth = AuthSettings.configure(
                    cookie_secret=cookie_secret,
                    basic_auth_file=basic_auth,
                    operators=console.operators,
                )
            host = shared_host(lambda: ConsoleHost(lab, console, auth=auth).start())
        except TradelabError as exc:
            fail(exc, exit_code_for(exc))
        panel_auth: dict[str, Any] = {}
        if basic_auth is not None:
            panel_auth = {"basic_auth": basic_auth, "cookie_secret": cookie_secret}
        elif oauth:
            panel_auth = {**oauth, "cookie_secret": cookie_secret}
        try:
            server = pn.serve(
                {"/": str(path)},
                address=console.address,
                port=console.port,
                websocket_origin=websocket_origins(console.address, console.port),
                extra_patterns=extra_routes(host),
                title="tradelab console",
                show=show,
                start=False,
                verbose=False,
                unused_session_lifetime_milliseconds=int(console.unused_session_seconds * 1000),
                check_unused_sessions_milliseconds=int(console.unused_session_seconds * 500),
                **panel_auth,
            )
            if loopback:  # a page of another site resolved to 127.0.0.1 is not this console
                guard_hosts(server._tornado)
            loop = server.io_loop
            signals.install()  # again: pn.serve put Panel's own Ctrl-C handler in its place
            if not signals.stop_requested:
                print(f"tradelab console at http://{console.address}:{console.port}/", flush=True)  # noqa: T201
            server.start()
            # A journal that failed (a dead writer, a damaged file) ends the console as it ends
            # `run`: a session that journals nothing is no session (the page says so meanwhile).
            watch = PeriodicCallback(lambda: _stop_if_journal_failed(lab, loop), 1000)
            watch.start()
            signals.when_requested(lambda: loop.asyncio_loop.call_soon_threadsafe(loop.stop))
            if not signals.stop_requested:
                loop.start()  # until Ctrl-C, SIGTERM or the journal's failure
        finally:
            signals.stopping = True  # a signal now is answered "still stopping", not obeyed
            host.stop()
            failure = lab.engine.journal_failure
            if failure is not None:
                fail(
                    f"the console stopped: {failure}. Events up to seq "
                    f"{lab.engine.metrics()['durable_seq']} are durable in "
                    f"{lab.config.journal_path} or its ack log; `tradelab verify` says what is whole",
                    EXIT_DAMAGED if isinstance(failure, RecoveryError) else EXIT_UNUSABLE,
                )
            problem = lab.engine.stop_problem
            if lab.engine.state == "stopped" and problem is not None:
                print(  # noqa: T201
                    f"tradelab console stopped at seq {lab.store.version}, but {problem}; the "
                    f"next start replays more; journal {lab.config.journal_path}",
                    flush=True,
                )
            elif lab.engine.state == "stopped":  # said, as the README promises it
                print(  # noqa: T201
                    f"tradelab console stopped cleanly at seq {lab.store.version} (queue drained, "
                    f"snapshot taken); journal {lab.config.journal_path}",
                    flush=True,
                )


def _stop_if_journal_failed(lab: Any, loop: Any) -> None:
    if lab.engine.journal_failure is not None:
        loop.stop()


def _port_in_use(address: str, port: int) -> str | None:
    """Why `address:port` cannot be listened on (a bind tried as tornado makes it), or None."""
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return str(exc)
    for family, kind, proto, _, where in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(where)
            except OSError as exc:
                return exc.strerror or str(exc)
    return None


@click.command("serve")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="A tradelab.yaml settings file (the Lab's sections and `console`); flags override it.",
)
@click.option("--address", default=None, help="Listen address [default: console.address].")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="[default: console.port, 5006]"
)
@click.option(
    "--basic-auth",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help='JSON file {"user": "password"}: log in to see the console; only console.operators '
    "get the controls.",
)
@click.option(
    "--oauth-provider",
    default=None,
    help="Log in through an OAuth provider Panel knows (github, google, azure, okta, generic, "
    "...) instead of --basic-auth; only console.operators get the controls.",
)
@click.option("--oauth-key", envvar="PANEL_OAUTH_KEY", default=None, help="The OAuth app's id.")
@click.option(
    "--oauth-secret", envvar="PANEL_OAUTH_SECRET", default=None, help="The OAuth app's secret."
)
@click.option(
    "--oauth-redirect-uri",
    envvar="PANEL_OAUTH_REDIRECT_URI",
    default=None,
    help="Where the provider sends the user back (default: this server's /login).",
)
@click.option(
    "--cookie-secret",
    envvar="PANEL_COOKIE_SECRET",
    default=None,
    help="Signs the login cookie (with --basic-auth or --oauth-provider).",
)
@click.option(
    "--notebook",
    type=click.Path(dir_okay=False),
    default=None,
    help="The console notebook to serve [default: notebooks/console.ipynb, or the same app "
    "packaged with tradelab when installed without the repository].",
)
@click.option("--show", is_flag=True, help="Open a browser tab.")
def serve(
    config_file: str | None,
    address: str | None,
    port: int | None,
    basic_auth: str | None,
    oauth_provider: str | None,
    oauth_key: str | None,
    oauth_secret: str | None,
    oauth_redirect_uri: str | None,
    cookie_secret: str | None,
    notebook: str | None,
    show: bool,
) -> None:
    """Serve the live console: the default Lab (simulated NIFTY feed, paper broker,
    short_straddle, journal under data/) shared by every browser session.

    Ctrl-C (or SIGTERM) stops cleanly: the Lab drains its queue and takes a snapshot.
    """
    context = click.get_current_context()
    for name, variable in (
        ("cookie_secret", "PANEL_COOKIE_SECRET"),
        ("oauth_secret", "PANEL_OAUTH_SECRET"),
    ):
        if context.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            # Every user of the machine reads argv (ps); a login cookie can be forged with it.
            click.echo(
                f"tradelab: WARNING: --{name.replace('_', '-')} on the command line can be read "
                f"by every user of this machine (ps); set {variable} instead",
                err=True,
            )
    overrides: dict[str, Any] = {}
    if address is not None:
        overrides["console.address"] = address
    if port is not None:
        overrides["console.port"] = port
    serve_console(
        config_file=config_file,
        overrides=overrides,
        basic_auth=basic_auth,
        cookie_secret=cookie_secret,
        notebook=notebook,
        show=show,
        oauth=_oauth_settings(oauth_provider, oauth_key, oauth_secret, oauth_redirect_uri),
    )


def _oauth_providers() -> set[str]:
    from panel.auth import AUTH_PROVIDERS

    return set(AUTH_PROVIDERS)


def _oauth_settings(
    provider: str | None, key: str | None, secret: str | None, redirect_uri: str | None
) -> dict[str, str] | None:
    if provider is None:
        return None
    values = {
        "oauth_provider": provider,
        "oauth_key": key,
        "oauth_secret": secret,
        "oauth_redirect_uri": redirect_uri,
    }
    return {name: value for name, value in values.items() if value}
