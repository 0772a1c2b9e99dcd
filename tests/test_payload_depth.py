"""the payload depth bound is the same for dicts and lists."""

from __future__ import annotations

from tradelab.errors import InvalidInputError
from tradelab.events import MAX_PAYLOAD_DEPTH, validate_payload


def _nested(levels):
    value = 1
    for _ in range(levels):
        value = {"k": value}
    return value


def test_dicts_and_lists_share_one_depth_bound():
    # the deepest dict nesting taken equals the deepest list nesting taken
    def deepest(make):
        n = 1
        while True:
            try:
                validate_payload({"p": make(n)})
            except InvalidInputError:
                return n - 1
            n += 1

    def lists(levels):
        value = 1
        for _ in range(levels):
            value = [value]
        return value

    assert deepest(_nested) == deepest(lists) == MAX_PAYLOAD_DEPTH - 1
