"""A seeded, deterministic NIFTY session simulator: index path plus option quotes with a smile.

The index follows a GBM whose volatility is U-shaped over the day (busy open and close); each
option quote is Black-Scholes on that path with a volatility smile, bid/ask on the 0.05 tick.
A round of ticks (the index, then every option once) is drawn and priced in one vectorized call.
The session is on an NSE trading day (a holiday is skipped). Same config (seed included) =>
the same ticks, whatever the pacing. One thread iterates a feed; `clock` is readable anywhere.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import date

import numpy as np
import param

from tradelab.market.chain import chain_prices
from tradelab.market.clock import NS_PER_S, MarketHours, SimulatedClock, run_paced
from tradelab.market.instruments import (
    INDEX_SYMBOL,
    TICK_SIZE,
    OptionContract,
    OptionUniverse,
)
from tradelab.market.ticks import Tick

log = logging.getLogger(__name__)

# Trading seconds in a year (252 sessions of 6h15m): annual volatility is spread over these.
TRADING_SECONDS_PER_YEAR = 252 * 6.25 * 3600
CALENDAR_NS_PER_YEAR = 365 * 86400 * NS_PER_S


class SimulatedFeedConfig(param.Parameterized):
    """How the simulated session looks and how fast it runs."""

    seed = param.Integer(
        default=7, bounds=(0, None), doc="Random seed; the same seed gives the same ticks."
    )
    session_date = param.CalendarDate(
        default=date(2025, 11, 12),
        doc="Day simulated; a holiday or weekend moves to the next NSE trading day.",
    )
    spot = param.Number(default=24000.0, bounds=(1000.0, 200_000.0), doc="Index at the open.")
    annual_vol = param.Number(
        default=0.14, bounds=(0.01, 2.0), doc="Average realised index volatility (annualised)."
    )
    rate = param.Number(default=0.065, bounds=(0.0, 0.5), doc="Risk-free rate for pricing.")
    strikes_each_side = param.Integer(
        default=5,
        bounds=(0, 40),
        doc="Strikes quoted either side of the ATM strike: from the open, and as the index moves "
        "new strikes are listed so that as many stay quoted either side (none is delisted).",
    )
    expiries = param.Integer(default=1, bounds=(1, 8), doc="Number of weekly expiries quoted.")
    ticks_per_second = param.Integer(
        default=1000, bounds=(1, 10_000), doc="Ticks emitted per wall-clock second when paced."
    )
    speed = param.Number(
        default=60.0,
        bounds=(0.001, 1_000_000.0),
        doc="Simulated seconds per wall second; each tick advances the clock speed/rate s.",
    )
    as_fast_as_possible = param.Boolean(
        default=False, doc="Do not pace: emit ticks as fast as the consumer takes them."
    )
    atm_iv = param.Number(default=0.13, bounds=(0.01, 2.0), doc="At-the-money implied vol.")
    smile_skew = param.Number(default=-0.1, bounds=(-5.0, 5.0), doc="d(IV)/d(log-moneyness).")
    smile_curvature = param.Number(
        default=0.3, bounds=(0.0, 50.0), doc="IV convexity in moneyness."
    )
    spread_pct = param.Number(
        default=0.01, bounds=(0.0, 0.5), doc="Bid/ask spread as a fraction of the option price."
    )
    max_quote_lots = param.Integer(
        default=20, bounds=(1, 10_000), doc="Largest bid/ask size, lots."
    )


class SimulatedFeed:
    """Iterate `ticks()` (or `run(on_tick)`) for one simulated session, 09:15 to 15:30 IST."""

    def __init__(
        self,
        config: SimulatedFeedConfig | None = None,
        *,
        universe: OptionUniverse | None = None,
        hours: MarketHours | None = None,
    ) -> None:
        self.config = config or SimulatedFeedConfig()
        self.universe = universe or OptionUniverse()
        self.hours = hours or MarketHours()
        cfg = self.config
        self.session_day: date = self.hours.next_trading_day(cfg.session_date, inclusive=True)
        if self.session_day != cfg.session_date:
            log.warning(
                "simulated session moved from %s (not a trading day) to %s",
                cfg.session_date.isoformat(),
                self.session_day.isoformat(),
            )
        uncovered = self.hours.calendar.beyond_coverage(self.session_day)
        if uncovered:
            log.warning("simulated session: %s", uncovered)
        self.open_ns, self.close_ns = self.hours.session_ns(self.session_day)
        self.clock = SimulatedClock(self.open_ns)
        self.expiries = self.universe.calendar.weekly_expiries(self.session_day, cfg.expiries)
        self.contracts: list[OptionContract] = []
        self._list_strikes_around(cfg.spot)
        self.ticks_emitted = 0

    def _list_strikes_around(self, spot: float) -> bool:
        """List the contracts `strikes_each_side` strikes either side of the ATM strike of
        `spot` that are not quoted yet (every expiry); True if any was new."""
        listed = {c.symbol for c in self.contracts}
        new = [
            contract
            for expiry in self.expiries
            for contract in self.universe.chain(expiry, spot, self.config.strikes_each_side)
            if contract.symbol not in listed
        ]
        self.contracts.extend(new)
        self.symbols: list[str] = [INDEX_SYMBOL] + [c.symbol for c in self.contracts]
        return bool(new)

    def _needs_strikes(self, spot: float, low: int, high: int) -> bool:
        # Fewer than strikes_each_side quoted on one side of the ATM strike.
        atm, reach = self.universe.atm_strike(spot), self.config.strikes_each_side
        step = self.universe.strike_step
        return atm - reach * step < low or atm + reach * step > high

    @property
    def tick_interval_ns(self) -> int:
        """Simulated time between two ticks."""
        return max(1, int(self.config.speed / self.config.ticks_per_second * NS_PER_S))

    def ticks(self) -> Iterator[Tick]:
        """The session's ticks in time order; the `clock` is set to each tick's time."""
        cfg = self.config
        # Param attribute reads cost ~3 us each: read the config once, not per tick.
        annual_vol, rate, spread_pct = cfg.annual_vol, cfg.rate, cfg.spread_pct
        atm, skew, curvature = cfg.atm_iv, cfg.smile_skew, cfg.smile_curvature
        max_lots = cfg.max_quote_lots
        rng = np.random.Generator(np.random.PCG64(cfg.seed))
        open_ns, close_ns = self.open_ns, self.close_ns
        session_len = close_ns - open_ns
        step_ns = self.tick_interval_ns
        step_years = step_ns / NS_PER_S / TRADING_SECONDS_PER_YEAR
        # Last traded price of each option, in ticks of 0.05 (0 = no trade yet this session).
        last_trade = np.zeros(0, dtype=np.int64)
        spot = float(cfg.spot)
        ts = open_ns
        listed = True  # the contracts changed: rebuild the per-option arrays
        while ts < close_ns:
            if listed:
                contracts = self.contracts
                n_symbols = len(self.symbols)
                n_options = n_symbols - 1
                option_symbols = self.symbols[1:]
                strikes = np.array([c.strike for c in contracts], dtype=np.float64)
                calls = np.array([c.is_call for c in contracts], dtype=bool)
                lots = np.array([self.universe.lot_size(c) for c in contracts], dtype=np.int64)
                expiry_ns = np.array(
                    [int(c.expiry_close().timestamp()) * NS_PER_S for c in contracts],
                    dtype=np.int64,
                )
                offsets = np.arange(n_symbols, dtype=np.int64) * step_ns
                last_trade = np.concatenate(
                    [last_trade, np.zeros(n_options - len(last_trade), dtype=np.int64)]
                )
                low, high = int(strikes.min()), int(strikes.max())
                listed = False
            # One round: the index tick, then one tick per option, each at its own time and
            # priced at the index level of that time.
            times = ts + offsets
            x = (times - open_ns) / session_len
            # U-shaped intraday volatility: 1.6x at the open and the close, 0.7x at midday.
            vol = annual_vol * (0.7 + 0.9 * (2.0 * x - 1.0) ** 2)
            steps = -0.5 * vol * vol * step_years + vol * np.sqrt(step_years) * rng.standard_normal(
                n_symbols
            )
            path = spot * np.exp(np.cumsum(steps))
            spot = float(path[-1])
            opt_spot, opt_ts = path[1:], times[1:]
            years = np.maximum((expiry_ns - opt_ts) / CALENDAR_NS_PER_YEAR, 1e-6)
            # Smile in standardised moneyness ln(K/S)/sqrt(T): skew tilts it, curvature lifts wings.
            moneyness = np.log(strikes / opt_spot) / np.maximum(np.sqrt(years), 0.02)
            iv = np.clip(atm + skew * moneyness + curvature * moneyness * moneyness, 0.02, 3.0)
            fair = chain_prices(opt_spot, strikes, years, rate, iv, calls)
            # Quotes in whole ticks (ints), turned into prices once: n * 5 / 100 is the double
            # nearest the decimal price, the same value round(price, 2) gives.
            half = np.maximum(1, np.rint(fair * spread_pct / 2.0 / TICK_SIZE)).astype(np.int64)
            bid = np.maximum(1, np.rint(fair / TICK_SIZE - half)).astype(np.int64)
            ask = bid + 2 * half
            draws = rng.random((2, n_options))
            traded = draws[0] < 0.3
            sizes = rng.integers(1, max_lots, size=(3, n_options), endpoint=True) * lots
            fresh = np.where(draws[1] < 0.5, ask, bid)
            fair_ticks = np.maximum(1, np.rint(fair / TICK_SIZE)).astype(np.int64)
            last = np.where(traded, fresh, np.where(last_trade > 0, last_trade, fair_ticks))
            last_trade = np.where(traded, fresh, last_trade)
            volume = np.where(traded, sizes[0], 0)
            level = round(float(np.rint(path[0] / TICK_SIZE)) * 5 / 100, 2)
            rows = zip(
                option_symbols,
                opt_ts.tolist(),
                (bid * 5 / 100).tolist(),
                (ask * 5 / 100).tolist(),
                (last * 5 / 100).tolist(),
                sizes[1].tolist(),
                sizes[2].tolist(),
                volume.tolist(),
                strict=True,
            )
            self.clock.set(ts)
            self.ticks_emitted += 1
            yield Tick(INDEX_SYMBOL, ts, level, level, level)
            for row in rows:
                if row[1] >= close_ns:
                    return
                self.clock.set(row[1])
                self.ticks_emitted += 1
                yield Tick(*row)
            ts += n_symbols * step_ns
            if self._needs_strikes(spot, low, high):
                listed = self._list_strikes_around(spot)

    def run(
        self,
        on_tick: Callable[[Tick], object],
        *,
        stop: threading.Event | None = None,
        max_ticks: int | None = None,
    ) -> int:
        """Feed ticks to `on_tick` at `ticks_per_second` (or flat out); return how many were sent."""
        speed = None if self.config.as_fast_as_possible else self.config.speed
        return run_paced(self.ticks(), on_tick, speed=speed, stop=stop, max_ticks=max_ticks)
