"""What a `Replica` is given, checked: the console's address, the credentials it sends, and the
topics it may subscribe to (the engine's durable ones: a replica is sent nothing else)."""

from __future__ import annotations

import base64
import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tradelab.bus.failures import HANDLER_FAILED
from tradelab.bus.topics import check_pattern, is_glob
from tradelab.errors import InvalidInputError, UnknownTopicError
from tradelab.events import Event, TopicRegistry

Auth = tuple[str, str] | str | Mapping[str, str] | None


def request_headers(auth: Auth) -> dict[str, str]:
    """(user, password) → basic auth; a str → the Cookie header as is; a mapping → cookies."""
    if auth is None:
        return {}
    if isinstance(auth, tuple) and len(auth) == 2 and all(isinstance(a, str) for a in auth):
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    if isinstance(auth, str):
        return {"Cookie": auth}
    if isinstance(auth, Mapping):
        return {"Cookie": "; ".join(f"{name}={value}" for name, value in auth.items())}
    raise InvalidInputError(
        f"auth must be (user, password), a Cookie header str or a {{name: value}} mapping of "
        f"cookies, got {type(auth).__name__}"
    )


def websocket_url(url: str) -> str:
    if not isinstance(url, str):
        raise InvalidInputError(
            f"url {url!r} is not a console address (a {type(url).__name__}, not text); "
            "expected e.g. 'ws://host:5006/bridge' or 'http://host:5006'"
        )
    expected = (
        "expected e.g. ws://host:5006/bridge or http://host:5006 (the /bridge route is then "
        "assumed)"
    )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (read to check it: a port past 65535 raises here)
    except ValueError as exc:  # a malformed IPv6 host, a port out of range
        raise InvalidInputError(
            f"url {url!r} is not a console address ({exc}); {expected}"
        ) from None
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise InvalidInputError(f"url {url!r} is not a console address; {expected}")
    path = parts.path if parts.path not in ("", "/") else "/bridge"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def nothing_listens(url: str, seconds: float | None) -> str:
    return (
        f"could not connect to {url} within {seconds} s: nothing listens there (a console, "
        "`tradelab serve`, serves /bridge; a headless `tradelab run` does not)"
    )


def no_such_host(url: str, error: str | None) -> str:
    # No seconds said: a resolver that times out takes longer than the replica's own bound.
    return f"could not connect to {url}: its host name does not resolve ({error}); check it"


def check_subscription(pattern: object, store: Any, topics: frozenset[str] | None) -> None:
    """A replica's subscription: a glob, or an exact durable topic of the engine's (`topics`,
    which its server names on connecting; None: not known yet, so any but a default transient
    one). A transient topic (market.tick) is never sent to a replica, and a misspelt one
    never comes: both are refused, as the engine's bus refuses an unknown topic, else the
    handler would silently never be called."""
    check_pattern(pattern, None)
    if is_glob(pattern) or pattern == HANDLER_FAILED or store.reducers_for(pattern):
        return  # the replica's own bus publishes its handler failures
    defaults = TopicRegistry()
    if pattern in defaults and defaults.is_transient(pattern):
        transient = ", ".join(s.name for s in defaults if s.transient and s.name != HANDLER_FAILED)
        raise InvalidInputError(
            f"topic {pattern!r} is transient: a replica is sent only the engine's durable "
            f"(journaled) events, never {transient}; subscribe on the engine's own bus for it"
        )
    if topics is not None and pattern not in topics:
        close = difflib.get_close_matches(pattern, sorted(topics), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UnknownTopicError(
            f"a replica cannot subscribe to unknown topic {pattern!r}; {hint}the engine sends "
            "its durable topics (e.g. trade.executed): use one of them or a glob such as "
            "'trade.*' (the engine named its topics when this replica connected: one it "
            "registered since is known after a reconnect, and a glob gets its events now)"
        )


def journaled_only(fn: Callable[[Event], Any]) -> Callable[[Event], Any]:
    """`fn`, called for journaled events only (seq > 0). A replica's own bus also carries its
    failure reports (bus.handler_failed, seq 0): not the engine's journal, and a failing "*"
    handler would be handed its own."""
    if inspect.iscoroutinefunction(fn):

        async def journaled_coroutine(event: Event) -> Any:
            return await fn(event) if event.seq else None

        return journaled_coroutine

    def journaled(event: Event) -> Any:
        return fn(event) if event.seq else None

    return journaled
