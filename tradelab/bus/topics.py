"""Topic and subscription-pattern checks for the bus, and compiled glob matchers.

Pure functions, no state; safe from any thread. They run on subscribe and on a topic's first
publish only, never per event.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable

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
