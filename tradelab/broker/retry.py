"""Broker calls that fail transiently are retried with capped exponential backoff (tenacity).

Only BrokerUnavailableError, TimeoutError and ConnectionError are transient; anything else is a
bug and propagates at once. Thread model: runs on the caller's thread (it sleeps).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from tradelab.broker.base import BrokerUnavailableError
from tradelab.errors import InvalidInputError

T = TypeVar("T")
TRANSIENT: tuple[type[BaseException], ...] = (BrokerUnavailableError, TimeoutError, ConnectionError)


def backoff_delays(attempts: int, base_s: float, max_s: float) -> list[float]:
    """The sleeps between `attempts` tries: base, 2 x base, 4 x base, ... each capped at max_s
    (what `call_with_retry`'s wait_exponential gives)."""
    if attempts < 1:
        raise InvalidInputError(f"attempts {attempts!r} must be >= 1")
    return [min(max_s, base_s * 2**i) for i in range(attempts - 1)]


def call_with_retry(
    call: Callable[[], T],
    *,
    what: str,
    attempts: int = 4,
    base_s: float = 0.2,
    max_s: float = 5.0,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """`call()`, retried on a transient failure; after the last try a BrokerUnavailableError
    names what was asked, how often it was tried and the last error."""
    if attempts < 1:
        raise InvalidInputError(f"attempts {attempts!r} must be >= 1")
    retrying = Retrying(
        retry=retry_if_exception_type(TRANSIENT),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=base_s, max=max_s),
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(call)
    except TRANSIENT as exc:
        raise BrokerUnavailableError(
            f"{what} failed {attempts} time(s); last error: {exc}"
        ) from exc
