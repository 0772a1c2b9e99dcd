"""Input checks for the bus (topics, patterns, payloads), glob matchers, the ring copy.

Pure functions, no state; safe from any thread. They run on subscribe and on a topic's first
publish only, never per event.
"""

from __future__ import annotations

import fnmatch
import re
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from tradelab.errors import InvalidInputError, UnknownTopicError
from tradelab.events import TOPIC_PATTERN, TopicRegistry

GLOB_CHARS = frozenset("*?[")
# Lower-case dotted names plus the glob characters fnmatch understands.
PATTERN_CHARS = re.compile(r"^[a-z0-9_.*?\[\]!-]+$")


def is_glob(pattern: str) -> bool:
    return any(c in GLOB_CHARS for c in pattern)


def check_topic(topic: object, registry: TopicRegistry | None) -> None:
    """A topic to publish: registered when there is a registry, else well formed."""
    if not isinstance(topic, str):
        raise InvalidInputError(f"topic must be a str, got {type(topic).__name__} {topic!r}")
    if registry is not None:
        registry.get(topic)  # raises UnknownTopicError naming the topic
    elif not TOPIC_PATTERN.match(topic):
        raise InvalidInputError(
            f"topic {topic!r} is not dotted lower-case (expected e.g. 'trade.executed')"
        )


def check_pattern(pattern: object, registry: TopicRegistry | None) -> None:
    """A subscription pattern: an exact topic (registered, with a registry) or a glob."""
    if not isinstance(pattern, str) or not pattern:
        raise InvalidInputError(
            f"pattern must be a non-empty str such as 'trade.executed', 'trade.*' or '*', "
            f"got {pattern!r}"
        )
    if not PATTERN_CHARS.match(pattern):
        raise InvalidInputError(
            f"pattern {pattern!r} has characters other than lower-case letters, digits, '_', "
            "'.' and the glob characters '*?[]!'"
        )
    if is_glob(pattern):
        return
    if registry is not None and pattern not in registry:
        raise UnknownTopicError(
            f"cannot subscribe to unknown topic {pattern!r}; register it first or use a glob "
            "such as 'trade.*'"
        )
    check_topic(pattern, None)


def pattern_matcher(pattern: str) -> Callable[[str], bool]:
    """A fast `matches(topic)` for one pattern: equality for exact topics, a regex for globs."""
    if pattern == "*":
        return lambda topic: True
    if not is_glob(pattern):
        return pattern.__eq__
    match = re.compile(fnmatch.translate(pattern)).match
    return lambda topic: match(topic) is not None


def coerce_payload_and_key(topic: str, payload: Any, key: Any) -> tuple[dict[str, Any], str]:
    """The slow path of publish: a str key and a dict payload, or an InvalidInputError."""
    if not isinstance(key, str):
        raise InvalidInputError(f"event key must be a str, got {type(key).__name__} {key!r}")
    if isinstance(payload, dict):
        return payload, key
    if isinstance(payload, Mapping):
        return dict(payload), key
    raise InvalidInputError(
        f"payload for topic {topic!r} must be a mapping, got {type(payload).__name__}"
    )


def filter_history(
    events: list[Any], pattern: str, since_seq: int | None, limit: int | None
) -> list[Any]:
    """The events matching `pattern` with `seq > since_seq`, the last `limit` of them."""
    check_pattern(pattern, None)
    if since_seq is not None and (not isinstance(since_seq, int) or since_seq < 0):
        raise InvalidInputError(f"since_seq {since_seq!r} must be an int >= 0 or None")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise InvalidInputError(f"limit {limit!r} must be an int >= 0 or None")
    if pattern != "*":
        matches = pattern_matcher(pattern)
        events = [e for e in events if matches(e.topic)]
    if since_seq is not None:
        events = [e for e in events if e.seq > since_seq]
    if limit is not None:
        events = events[len(events) - limit :] if limit else []
    return events


def copy_ring(ring: deque[Any]) -> list[Any]:
    # list(deque) runs in C without releasing the GIL, so it normally cannot see a concurrent
    # append; retry anyway rather than trust that detail.
    for _ in range(100):
        try:
            return list(ring)
        except RuntimeError:
            continue
    return list(ring)
