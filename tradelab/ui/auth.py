"""Auth for the tornado routes Panel does not protect (`/metrics`, the bridge websocket, `/admin`).

Panel's basic and OAuth logins leave the user's name in a cookie 'user' signed with the cookie
secret; `request_user` reads it the same way (and, for scrapers, an HTTP Basic header checked
against the `--basic-auth` users). `AuthCheckMixin` answers 401 (no valid user) or 403 (not an
operator, on operator-only routes) before a handler runs. Thread model: handlers run on the
server's IO loop; `AuthSettings` is immutable.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tornado.web import RequestHandler, decode_signed_value

from tradelab.errors import InvalidInputError

#: Panel's default expiry of its auth cookies (`config.oauth_expiry`, days).
COOKIE_MAX_AGE_DAYS = 1.0


@dataclass(frozen=True)
class AuthSettings:
    """How the console is protected. `AuthSettings()` is local use: no auth, everyone operates.

    cookie_secret: the secret Panel signs its 'user' cookie with (`--cookie-secret`); auth is
        configured when it is set.
    operators: users who may give commands (everyone else views); None without auth.
    basic_users: user -> password of `--basic-auth` (also accepted as HTTP Basic on extra routes).
    """

    cookie_secret: str | None = None
    operators: frozenset[str] | None = None
    basic_users: MappingProxyType | None = None
    max_age_days: float = COOKIE_MAX_AGE_DAYS

    def __post_init__(self) -> None:
        if self.cookie_secret is None:
            if self.operators is not None or self.basic_users is not None:
                raise InvalidInputError(
                    "operators or basic-auth users given without a cookie secret: Panel cannot "
                    "sign who is logged in, so nobody could be told from anybody; set "
                    "--cookie-secret"
                )
            return
        if not isinstance(self.cookie_secret, str) or len(self.cookie_secret) < 16:
            raise InvalidInputError(
                "the cookie secret must be text of at least 16 characters (a long random string)"
            )
        if self.operators is None:
            object.__setattr__(self, "operators", frozenset())
        else:
            object.__setattr__(self, "operators", _names(self.operators))
        if self.basic_users is not None and not isinstance(self.basic_users, MappingProxyType):
            object.__setattr__(self, "basic_users", MappingProxyType(dict(self.basic_users)))

    @classmethod
    def configure(
        cls,
        *,
        cookie_secret: str | None = None,
        basic_auth_file: str | Path | None = None,
        operators: list[str] | tuple[str, ...] | frozenset[str] | None = None,
    ) -> AuthSettings:
        """Settings from the console's options: `--basic-auth FILE`, `--cookie-secret`, and the
        operators named in its config."""
        users = load_basic_auth(basic_auth_file) if basic_auth_file is not None else None
        if users is not None and operators is not None:
            unknown = sorted(set(operators) - set(users))
            if unknown:
                raise InvalidInputError(
                    f"operator {unknown[0]!r} has no password in {basic_auth_file}; users there: "
                    f"{', '.join(sorted(users))}"
                )
        ops = None if operators is None else frozenset(operators)
        return cls(cookie_secret=cookie_secret, operators=ops, basic_users=users)

    @classmethod
    def from_panel_config(
        cls, operators: list[str] | tuple[str, ...] | frozenset[str] | None = None
    ) -> AuthSettings:
        """Settings from what `panel serve` was given (`--cookie-secret`, and `--basic-auth` or
        an `--oauth-provider`), read from `pn.config` when the console's plugin loads: a login
        of either kind signs the user into the cookie with that secret. No secret: no auth."""
        import panel as pn

        secret = pn.config.cookie_secret
        basic = pn.config.basic_auth
        if not secret:
            if basic or pn.config.oauth_provider:
                # Panel's own pages then fail, while the console's routes would answer anyone.
                raise InvalidInputError(
                    "panel serve was given a login (--basic-auth or --oauth-provider) without "
                    "--cookie-secret: the console's routes could not tell who is logged in; give "
                    "it --cookie-secret (or PANEL_COOKIE_SECRET)"
                )
            return cls()
        # Panel also takes one shared password instead of a file: only the cookie then names
        # a user, so scrapers cannot use HTTP Basic.
        basic_file = basic if isinstance(basic, str) and Path(basic).is_file() else None
        # (pn.config.basic_auth reads as the provider's name under an OAuth login.)
        shared = basic and basic_file is None and basic != pn.config.oauth_provider
        if shared and operators:
            # With one password for everyone the typed name proves nothing: a viewer who types
            # an operator's name would get the controls.
            raise InvalidInputError(
                f"console.operators ({', '.join(operators)}) need a password each: panel serve "
                "--basic-auth was given one shared password, with which anyone may log in under "
                'any name; give it a JSON file {"user": "password", ...} instead'
            )
        return cls.configure(
            cookie_secret=secret, basic_auth_file=basic_file, operators=list(operators or ())
        )

    @property
    def configured(self) -> bool:
        return self.cookie_secret is not None

    def is_operator(self, user: str | None) -> bool:
        """Without auth everyone operates; with it, only the named operators."""
        if not self.configured:
            return True
        return user is not None and user in self.operators

    @property
    def command_operators(self) -> frozenset[str] | None:
        """What `OperatorCommands(operators=...)` takes: None (everyone) without auth."""
        return self.operators if self.configured else None


def load_basic_auth(path: str | Path) -> dict[str, str]:
    """The users of a `--basic-auth` JSON file `{"user": "password", ...}`; a clear error naming
    the file and the problem otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"basic-auth file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read basic-auth file {path}: {exc}") from None
    try:
        users = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"basic-auth file {path} is not JSON (line {exc.lineno}, column {exc.colno}: "
            f'{exc.msg}); expected {{"user": "password", ...}}'
        ) from None
    if not isinstance(users, dict) or not users:
        raise InvalidInputError(
            f'basic-auth file {path} must hold a non-empty object {{"user": "password", ...}}, '
            f"not {type(users).__name__} {str(users)[:40]}"
        )
    for user, password in users.items():
        if not user.strip():
            raise InvalidInputError(f"basic-auth file {path} has an empty user name")
        if not isinstance(password, str) or not password:
            raise InvalidInputError(
                f"basic-auth file {path}: the password of {user!r} must be non-empty text"
            )
    return users


def request_user(handler: RequestHandler, auth: AuthSettings | None) -> str | None:
    """The logged-in user of a request (None if none or no auth), as Panel's providers see it:
    its signed 'user' cookie, else a valid HTTP Basic header of a `--basic-auth` user."""
    if auth is None or not auth.configured:
        return None
    cookie = handler.get_cookie("user")
    if cookie:
        value = decode_signed_value(
            auth.cookie_secret, "user", cookie, max_age_days=auth.max_age_days
        )
        if value:
            return value.decode("utf-8", "replace")
    if auth.basic_users is not None:
        return _basic_header_user(handler.request.headers.get("Authorization", ""), auth)
    return None


class AuthCheckMixin:
    """For a tornado RequestHandler or WebSocketHandler added beside Panel's pages: pass
    `{"auth": settings, "operators_only": bool}` in its route's kwargs. With auth configured, a
    request without a valid user gets 401, a non-operator on an operator-only route 403."""

    auth: AuthSettings | None = None
    operators_only: bool = False

    def initialize(
        self, auth: AuthSettings | None = None, operators_only: bool = False, **kwargs: Any
    ) -> None:
        self.auth, self.operators_only = auth, operators_only
        super().initialize(**kwargs)  # type: ignore[misc]

    def get_current_user(self) -> str | None:
        return request_user(self, self.auth)  # type: ignore[arg-type]

    def prepare(self) -> None:
        auth = self.auth
        if auth is None or not auth.configured:
            return
        user = self.current_user  # type: ignore[attr-defined]
        if user is None:
            if auth.basic_users is not None:
                self.set_header("WWW-Authenticate", 'Basic realm="tradelab"')  # type: ignore[attr-defined]
            self._refuse(401, "log in first (no valid user on this request)")
        elif self.operators_only and not auth.is_operator(user):
            self._refuse(403, f"user {user!r} is not an operator")

    def _refuse(self, status: int, why: str) -> None:
        # send_error would clear the WWW-Authenticate header set above.
        self.set_status(status)  # type: ignore[attr-defined]
        self.set_header("Content-Type", "text/plain; charset=UTF-8")  # type: ignore[attr-defined]
        self.finish(f"{status}: {why}\n")  # type: ignore[attr-defined]


class AuthCheckedHandler(AuthCheckMixin, RequestHandler):
    """A RequestHandler checked as `AuthCheckMixin` says."""


def _basic_header_user(header: str, auth: AuthSettings) -> str | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected = auth.basic_users.get(user) if sep else None
    if expected is None or not hmac.compare_digest(password.encode(), expected.encode()):
        return None
    return user


def _names(operators: Any) -> frozenset[str]:
    names = frozenset(operators)
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise InvalidInputError(f"operator names must be non-empty text, not {bad[0]!r}")
    return names
