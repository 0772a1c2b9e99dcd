"""The quote record feeds emit: one instrument's bid/ask/last at one exchange time.

Immutable; built by one feed thread and read by any.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Tick(msgspec.Struct, frozen=True):
    """A quote. `ts` is UTC ns; `volume` is the quantity traded at `last` with this tick (units).

    A frozen msgspec Struct, as `Event`: built ~10x faster than a frozen dataclass (~0.06 us
    against ~0.6 us), and feeds and a backtest build one per quote."""

    symbol: str
    ts: int
    bid: float
    ask: float
    last: float
    bid_size: int = 0
    ask_size: int = 0
    volume: int | float = 0  # a coin's fraction as its bar file has it

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0

    @property
    def price(self) -> float:
        """The price bars and marks use: the last trade when there is one, else the mid."""
        return self.last if self.last > 0 else self.mid

    def to_payload(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "ts": self.ts,
            "bid": self.bid,
            "ask": self.ask,
            "last": self.last,
            "bid_size": self.bid_size,
            "ask_size": self.ask_size,
            "volume": self.volume,
        }
