"""Dot paths into the state tree: parsing, glob patterns, and the plain-data value check.

Pure functions with no shared mutable state except a bounded parse cache (thread-safe through
`functools.lru_cache`), so any thread may call them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from tradelab.errors import InvalidInputError, StateError

Segments = tuple[str, ...]


class _Missing:
    """Marks 'no value here' inside the store (a stored None is a real value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class _Delete:
    """The value a reducer returns for a path to remove it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DELETE"


DELETE: Any = _Delete()


# Parsed paths, read directly by the store's hot loop (a dict hit is cheaper than a call).
# Only ever grows by whole entries and is cleared when large: safe to read from any thread.
PATH_CACHE: dict[str, Segments] = {}
_PATH_CACHE_LIMIT = 100_000


def parse_path(path: str) -> Segments:
    """'trading.positions.P1' -> ('trading', 'positions', 'P1'); a malformed path is a StateError.

    A segment is any non-empty text without '.' or '*'; `*` is only meaningful in watch patterns.
    """
    if type(path) is str:
        segments = PATH_CACHE.get(path)
        if segments is not None:
            return segments
    segments = _parse_path(path)
    if len(PATH_CACHE) >= _PATH_CACHE_LIMIT:
        PATH_CACHE.clear()
    PATH_CACHE[path] = segments
    return segments


def _parse_path(path: str) -> Segments:
    if not isinstance(path, str):
        raise StateError(
            f"state path must be a str like 'pnl.daily', got {type(path).__name__} {path!r}"
        )
    segments = tuple(path.split("."))
    for segment in segments:
        if not segment or "*" in segment or segment.strip() != segment:
            raise StateError(
                f"state path {path!r} is malformed; expected dot-separated non-empty names "
                "without '*' or surrounding spaces, e.g. 'trading.positions.P1'"
            )
    return segments


# Ids that become one level of a state path (symbols, order/trade/position ids, strategy names).
# A '.' would split the level in two, and anything outside plain ASCII could not be encoded
# everywhere the id travels (a lone surrogate cannot even be written as UTF-8).
_LEVEL = re.compile(r"[A-Za-z0-9_:\-]{1,128}")
LEVEL_RULE = "1-128 ASCII letters, digits, '_', '-' or ':'"
_GOOD_LEVELS: set[str] = set()  # ids already seen to be good; cleared when large


def is_path_level(value: Any) -> bool:
    """True when `value` may name one state path level (see LEVEL_RULE)."""
    if type(value) is not str:
        return False
    if value in _GOOD_LEVELS:
        return True
    if _LEVEL.fullmatch(value) is None:
        return False
    if len(_GOOD_LEVELS) >= 65_536:
        _GOOD_LEVELS.clear()
    _GOOD_LEVELS.add(value)
    return True


def check_path_level(value: Any, what: str) -> str:
    """`value`, when it may name one state path level; else an InvalidInputError naming it.

    For the places where user or broker ids enter (execution desk, order records, feeds), so
    a bad id is refused before anything carrying it is submitted or sent. A str subclass (a
    numpy.str_ from an array of symbols) is returned as the plain str it reads as.
    """
    if isinstance(value, str) and type(value) is not str:
        value = str.__str__(value)
    if not is_path_level(value):
        raise InvalidInputError(f"{what} {shown(value)} is not a valid id: expected {LEVEL_RULE}")
    return value


def shown(value: Any) -> str:
    """`value` as an error shows it: a 10 KB key is not echoed whole into every log line."""
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:60]}... ({len(text)} characters)"


def path_level(value: Any, what: str) -> str:
    """`check_path_level` for reducers: a bad id inside an event is a StateError (the event is
    refused and the store unchanged), the last line of defence behind the entry checks."""
    if not is_path_level(value):
        raise StateError(
            f"{what} {shown(value)} cannot name a state path level: expected {LEVEL_RULE}"
        )
    return value


@lru_cache(maxsize=4_096)
def parse_pattern(pattern: str) -> Segments:
    """Like `parse_path`, but a segment may be `*` (exactly one level, any name)."""
    if not isinstance(pattern, str):
        raise StateError(
            f"watch pattern must be a str like 'trading.positions.*', got "
            f"{type(pattern).__name__} {pattern!r}"
        )
    segments = tuple(pattern.split("."))
    for segment in segments:
        if not segment or segment.strip() != segment or ("*" in segment and segment != "*"):
            raise StateError(
                f"watch pattern {pattern!r} is malformed; expected dot-separated names or '*' "
                "for one whole level, e.g. 'trading.positions.*'"
            )
    return segments


def join_path(segments: Segments) -> str:
    return ".".join(segments)


def prefix_matches(pattern: Segments, segments: Segments) -> bool:
    """True when the first len(pattern)/len(segments) levels agree (whichever is shorter)."""
    for want, have in zip(pattern, segments, strict=False):
        if want != "*" and want != have:
            return False
    return True


def expand_pattern(
    value: Any, pattern_rest: Segments, prefix: Segments
) -> Iterator[tuple[Segments, Any]]:
    """Every concrete (path, value) below `value` (located at `prefix`) matching `pattern_rest`."""
    if not pattern_rest:
        yield prefix, value
        return
    if type(value) is not dict:
        return
    head, rest = pattern_rest[0], pattern_rest[1:]
    if head == "*":
        for name, child in value.items():
            yield from expand_pattern(child, rest, (*prefix, name))
    elif head in value:
        yield from expand_pattern(value[head], rest, (*prefix, head))


_SCALARS = frozenset((str, int, bool, type(None)))


def check_plain(value: Any, where: str) -> None:
    """Raise StateError unless `value` is JSON-plain data with finite floats and str keys.

    Only such values hash and snapshot identically across processes.
    """
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is float:
        if not math.isfinite(value):
            raise StateError(f"{where} would store {value!r}; numbers in state must be finite")
        return
    if kind is dict:
        for key, child in value.items():
            if type(key) is not str:
                raise StateError(
                    f"{where} would store a dict key {key!r} of type "
                    f"{type(key).__name__}; keys must be str"
                )
            check_plain(child, f"{where}.{key}")
        return
    if kind is list or kind is tuple:
        for index, child in enumerate(value):
            check_plain(child, f"{where}[{index}]")
        return
    raise StateError(
        f"{where} would store a {kind.__name__} ({value!r:.60}); state holds only str, int, "
        "float, bool, None, list, tuple and dict"
    )
