"""payload integer bounds and event key text checks."""

from __future__ import annotations

import pytest

from tradelab.errors import InvalidInputError
from tradelab.events import TopicRegistry, validate_payload


def test_an_integer_just_past_64_bits_is_refused_and_the_largest_one_taken():
    assert validate_payload({"qty": 2**63 - 1}) == {"qty": 2**63 - 1}
    assert validate_payload({"qty": -(2**63)}) == {"qty": -(2**63)}
    with pytest.raises(InvalidInputError, match="64 bits"):
        validate_payload({"qty": 2**63})
    with pytest.raises(InvalidInputError, match="64 bits"):
        validate_payload({"fills": [{"qty": 2**63}]})


def test_an_event_key_that_is_not_valid_unicode_is_refused_before_anything_is_applied():
    with pytest.raises(InvalidInputError, match="not valid Unicode"):
        TopicRegistry().make_event("trade.logged", {}, key="P\ud800")
