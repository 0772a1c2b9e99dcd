"""Payload checks and the one encoding of a submitted payload.

`validate_payload` says whether a payload can be journaled exactly (JSON types, finite numbers,
str keys, bounded depth); `encode_submitted` turns a checked payload into the bytes the journal
stores and the fresh dict the store applies. Pure functions: any thread.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import msgspec

from tradelab.errors import InvalidInputError

_SCALARS = (str, int, bool, type(None))
# Deeper than any real payload; far below the recursion limit, so the walk (and msgspec) never
# meets a RecursionError on a hostile one.
MAX_PAYLOAD_DEPTH = 64
# Exact types checked first with one set lookup; subclasses (StrEnum, numpy floats, custom
# Mappings) still take the isinstance path below, which ABC checks make ~10x slower.
_EXACT_SCALARS = frozenset(_SCALARS)
# Integers the journal's readers (DuckDB's BIGINT, analytics) hold: a wider one would read back
# as NULL there though the store kept it.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def validate_payload(payload: Any, topic: str = "?") -> dict[str, Any]:
    """Check that `payload` is a JSON-safe mapping with finite numbers; return it as a dict.

    Allowed values: None, bool, int, finite float, str, lists/tuples of these and str-keyed
    mappings of these. Anything else would not round-trip through the journal exactly.
    """
    if type(payload) is dict:
        _check_dict(payload, topic, "payload", 0)
        return payload
    if not isinstance(payload, Mapping):
        raise InvalidInputError(
            f"payload for topic {topic!r} must be a mapping, got {type(payload).__name__}"
        )
    _check_value(payload, topic, "payload", 0)
    return payload if isinstance(payload, dict) else dict(payload)


def _check_dict(value: dict, topic: str, where: str, depth: int) -> None:
    """A plain dict: scalar members inline, anything else (and every error) via _check_value."""
    if depth >= MAX_PAYLOAD_DEPTH:
        raise _too_deep(topic, where)
    depth += 1
    exact = _EXACT_SCALARS
    for k, v in value.items():
        if type(k) is not str and not isinstance(k, str):
            raise _bad_key(k, topic, where)
        kind = type(v)
        if kind in exact:
            if kind is int and not INT_MIN <= v <= INT_MAX:
                raise _too_wide(v, topic, f"{where}.{k}")
            continue
        if kind is float and v - v == 0.0:
            continue
        if kind is dict:
            _check_dict(v, topic, f"{where}.{k}", depth)
        else:
            _check_value(v, topic, f"{where}.{k}", depth)


def _check_value(value: Any, topic: str, where: str, depth: int) -> None:
    kind = type(value)
    if kind in _EXACT_SCALARS:
        if kind is int and not INT_MIN <= value <= INT_MAX:
            raise _too_wide(value, topic, where)
        return
    if kind is dict:
        _check_dict(value, topic, where, depth)
        return
    if depth >= MAX_PAYLOAD_DEPTH:
        raise _too_deep(topic, where)
    depth += 1
    if kind is list or kind is tuple:
        for i, v in enumerate(value):
            _check_value(v, topic, f"{where}[{i}]", depth)
        return
    if isinstance(value, _SCALARS) or _is_numpy_bool(value):  # journaled as str / bool
        return
    if isinstance(value, numbers.Integral):  # numpy.int64 and kin: journaled as int
        if not INT_MIN <= int(value) <= INT_MAX:
            raise _too_wide(value, topic, where)
        return
    if isinstance(value, numbers.Real):  # float subclasses, numpy.float64: journaled as float
        if not math.isfinite(value):
            raise InvalidInputError(
                f"{where} is {value!r} in topic {topic!r}; numbers must be finite"
            )
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise _bad_key(k, topic, where)
            _check_value(v, topic, f"{where}.{k}", depth)
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_value(v, topic, f"{where}[{i}]", depth)
        return
    raise InvalidInputError(
        f"{where} has a value of type {_type_name(value)} in topic {topic!r}, which is not "
        "JSON-serializable (use str, int, float, bool, None, list or dict)"
    )


def _type_name(value: Any) -> str:
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _is_numpy_bool(value: Any) -> bool:
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")


def _too_wide(value: Any, topic: str, where: str) -> InvalidInputError:
    return InvalidInputError(
        f"{where} is {int(value)} in topic {topic!r}; integers must fit in 64 bits "
        f"({INT_MIN} to {INT_MAX}), as the journal's readers hold them"
    )


def _too_deep(topic: str, where: str) -> InvalidInputError:
    shown = where if len(where) <= 80 else where[:40] + "..." + where[-30:]
    return InvalidInputError(
        f"{shown} in topic {topic!r} is nested more than {MAX_PAYLOAD_DEPTH} levels deep"
    )


def _plain(value: Any) -> Any:
    """The one conversion rule for values that passed `validate_payload` but are not plain JSON
    types: text (a str subclass, numpy.str_) becomes str, numpy.bool_ bool, integers
    (numpy.int64, IntEnum) int, other real numbers (numpy.float64, float subclasses) float,
    other mappings dict. msgspec calls it for types it cannot encode."""
    if isinstance(value, str):  # a subclass (numpy.str_): its text
        return str(value)
    if _is_numpy_bool(value):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot encode a value of type {_type_name(value)}")


_submit_encoder = msgspec.json.Encoder(enc_hook=_plain)
_plain_decode = msgspec.json.Decoder(dict[str, Any]).decode


def encode_submitted(body: Mapping[str, Any], topic: str = "?") -> tuple[bytes, dict[str, Any]]:
    """Encode a checked payload once, on the submitting thread: (JSON bytes, a fresh decode).

    The journal stores the bytes and the store applies the decoded dict, so what is applied is
    exactly what a replay decodes, and nothing the submitter still holds can change either.
    Values are converted by `_plain`; a string that is not valid Unicode (a lone surrogate) is
    refused naming its field.
    """
    try:
        data = _submit_encoder.encode(body)
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{_bad_text_at(body, 'payload')} in topic {topic!r} is not valid Unicode "
            "(a lone surrogate?); text must encode as UTF-8"
        ) from None
    except (TypeError, RecursionError) as exc:  # validate_payload lets none of these through
        raise InvalidInputError(f"payload in topic {topic!r} cannot be encoded: {exc}") from None
    return data, _plain_decode(data)


def _bad_text_at(value: Any, where: str) -> str:
    """Where the first string that UTF-8 cannot encode sits (keys included)."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return where
        return ""
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _bad_text_at(k, f"{where} key {k!r}") or _bad_text_at(v, f"{where}.{k}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = _bad_text_at(v, f"{where}[{i}]")
            if found:
                return found
    return ""


def _bad_key(key: Any, topic: str, where: str) -> InvalidInputError:
    return InvalidInputError(
        f"{where} has key {key!r} of type {type(key).__name__} in topic {topic!r}; "
        "keys must be strings"
    )
