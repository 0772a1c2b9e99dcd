"""Market data for NIFTY index options: instruments and symbols, pricing, feeds, bars, routing.

Import from the submodules (`tradelab.market.instruments`, `.pricing`, `.feeds`, `.bars`,
`.router`, `.clock`); nothing here starts threads or opens files.
"""

from tradelab.market.instruments import (
    ExpiryCalendar,
    LotSizeSchedule,
    OptionContract,
    OptionUniverse,
)
from tradelab.market.ticks import Tick

__all__ = ["ExpiryCalendar", "LotSizeSchedule", "OptionContract", "OptionUniverse", "Tick"]
