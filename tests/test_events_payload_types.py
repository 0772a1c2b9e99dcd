"""Payload checks accept subclasses and non-dict mappings exactly as plain types, and name the
bad value wherever it sits (the exact-type fast path must not change what is accepted)."""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType

import pytest

from tradelab.errors import InvalidInputError
from tradelab.events import TopicRegistry, validate_payload


class Side(enum.StrEnum):
    BUY = "BUY"


class Lots(enum.IntEnum):
    ONE = 1


class Price(float):
    """A float subclass, like numpy.float64."""


class Legs(Mapping):
    def __init__(self, data: dict) -> None:
        self._data = data

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_subclasses_of_allowed_types_and_other_mappings_are_accepted():
    payload = {
        "side": Side.BUY,
        "lots": Lots.ONE,
        "price": Price(101.5),
        "legs": Legs({"ce": {"strike": 24000}}),
        "greeks": OrderedDict(delta=0.5),
        "fills": (1, [2.0, None, True]),
        Side.BUY: "a str-subclass key",
    }
    assert validate_payload(payload, "order.submitted") is payload
    proxy = MappingProxyType({"qty": 75})
    checked = validate_payload(proxy, "order.submitted")
    assert checked == {"qty": 75} and type(checked) is dict


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"price": Price(math.nan)}, "payload.price is nan .*finite"),
        ({"legs": Legs({"ce": {"px": math.inf}})}, r"payload.legs.ce.px is inf"),
        ({"legs": Legs({7: 1})}, "payload.legs has key 7 of type int"),
        ({"a": {"b": {3: 1}}}, "payload.a.b has key 3 of type int"),
        ({"a": [{"b": -math.inf}]}, r"payload.a\[0\].b is -inf"),
        ({"a": {"b": (1, {2})}}, r"payload.a.b\[1\] has a value of type set"),
        (OrderedDict(bad=object()), "payload.bad has a value of type object"),
    ],
)
def test_bad_values_are_refused_naming_their_place(payload, message):
    with pytest.raises(InvalidInputError, match=message):
        TopicRegistry().make_event("order.submitted", payload)


def test_check_gives_what_make_event_builds_the_event_from():
    registry = TopicRegistry()
    spec, body, critical = registry.check("order.submitted", {"qty": 75}, critical=True)
    assert (spec.name, body, critical) == ("order.submitted", {"qty": 75}, True)
    assert registry.check("trade.executed", {}, critical=False)[2] is True
    with pytest.raises(InvalidInputError, match="key must be a str, got int 7"):
        registry.check("order.submitted", {}, key=7)
    event = registry.make_event("order.submitted", {"qty": 75}, key="o1", seq=4, ts=9)
    assert (event.seq, event.ts, event.key, event.critical, event.schema_version) == (
        4,
        9,
        "o1",
        False,
        1,
    )
