"""Plain instruments (an index, a stock) beside the NIFTY option universe, for the broker and desk.

The execution desk and the paper broker ask their universe to `parse(symbol)` and for a
contract's `lot_size`; `InstrumentUniverse` answers for plain symbols itself (lot size 1 unless
told otherwise) and hands every other symbol to the option universe. The broker rounds a fill to
its instrument's `tick_size` (NIFTY options: 0.05; a plain instrument: none unless told). Immutable after building;
any thread may read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tradelab.errors import InvalidInputError
from tradelab.market.instruments import OptionContract, OptionUniverse
from tradelab.state.paths import check_path_level

# Plain instruments never expire: the broker's expiry check compares against this.
_NEVER = datetime(9999, 12, 31, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PlainInstrument:
    """A non-option instrument. `strike` is the price per unit the paper broker takes short margin
    on (it names that price `strike` for options); 0, the default: the price it sells at, then its
    latest fill price. `tick_size`: the price step its fills are rounded to; 0, the default: none,
    a fill is at the price quoted (a bar file's prices may have any number of decimals)."""

    symbol: str
    lot_size: int = 1
    strike: float = 0.0
    tick_size: float = 0.0

    def expiry_close(self) -> datetime:
        return _NEVER

    def __str__(self) -> str:
        return self.symbol


class InstrumentUniverse:
    """`parse` / `lot_size` for plain instruments, falling back to NIFTY options."""

    def __init__(
        self,
        instruments: dict[str, PlainInstrument] | None = None,
        options: OptionUniverse | None = None,
    ) -> None:
        # Built on first use: its expiry calendar loads the NSE holiday list (~0.15 s of CPU),
        # which a backtest of plain instruments never needs.
        self._options = options
        self.instruments: dict[str, PlainInstrument] = {}
        for instrument in (instruments or {}).values():
            self.add(instrument)

    def add(self, instrument: PlainInstrument) -> PlainInstrument:
        check_path_level(instrument.symbol, "instrument symbol")
        if not isinstance(instrument.lot_size, int) or instrument.lot_size < 1:
            raise InvalidInputError(
                f"lot size {instrument.lot_size!r} of {instrument.symbol} must be a positive int"
            )
        tick = instrument.tick_size
        if isinstance(tick, bool) or not isinstance(tick, int | float) or not math.isfinite(tick):
            tick = -1.0  # refused below, by its value
        if tick < 0:
            raise InvalidInputError(
                f"tick size {instrument.tick_size!r} of {instrument.symbol} must be a finite "
                "number >= 0 (0: fills are not rounded)"
            )
        self.instruments[instrument.symbol] = instrument
        return instrument

    @property
    def options(self) -> OptionUniverse:
        if self._options is None:
            self._options = OptionUniverse()
        return self._options

    def parse(self, symbol: str) -> Any:
        instrument = self.instruments.get(symbol)
        if instrument is not None:
            return instrument
        try:
            return self.options.parse(symbol)
        except InvalidInputError as exc:
            if not self.instruments:
                raise
            # Not an option either: name what is traded here first (a backtest's one symbol).
            known = ", ".join(sorted(self.instruments)[:6])
            raise InvalidInputError(
                f"symbol {symbol!r} is not traded here: the instruments are {known} (and NIFTY "
                f"options: {exc})"
            ) from None

    def lot_size(self, contract: Any) -> int:
        """The lot size of a `parse` result; a symbol string is parsed first."""
        if isinstance(contract, PlainInstrument):
            return contract.lot_size
        if isinstance(contract, str):
            return self.lot_size(self.parse(contract))
        if not isinstance(contract, OptionContract):
            raise InvalidInputError(
                f"contract {contract!r} is not an instrument; expected what parse() returns "
                "(a PlainInstrument or an OptionContract) or its symbol"
            )
        return self.options.lot_size(contract)

    def __getattr__(self, name: str) -> Any:
        # calendar, atm_strike, contract, chain: the option universe's answers.
        if name.startswith("_"):  # never the option universe's: and no recursion before __init__
            raise AttributeError(name)
        return getattr(self.options, name)
