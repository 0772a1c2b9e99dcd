"""A seeded, deterministic NIFTY session simulator: index path plus option quotes with a smile.

The index follows a GBM whose volatility is U-shaped over the day (busy open and close); each
option quote is Black-Scholes on that path with a volatility smile, bid/ask on the 0.05 tick.
Same config (seed included) => the same ticks, whatever the pacing. One thread iterates a feed;
`clock` may be read from any thread.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Iterator
from datetime import date

import param

from tradelab.market.clock import NS_PER_S, MarketHours, SimulatedClock, run_paced
from tradelab.market.instruments import (
    INDEX_SYMBOL,
    TICK_SIZE,
    OptionContract,
    OptionUniverse,
)
from tradelab.market.pricing import bs_price
from tradelab.market.ticks import Tick

# Trading seconds in a year (252 sessions of 6h15m): annual volatility is spread over these.
TRADING_SECONDS_PER_YEAR = 252 * 6.25 * 3600
CALENDAR_NS_PER_YEAR = 365 * 86400 * NS_PER_S


class SimulatedFeedConfig(param.Parameterized):
    """How the simulated session looks and how fast it runs."""

    seed = param.Integer(default=7, doc="Random seed; the same seed gives the same ticks.")
    session_date = param.CalendarDate(default=date(2025, 11, 12), doc="Trading day simulated.")
    spot = param.Number(default=24000.0, bounds=(1000.0, 200_000.0), doc="Index at the open.")
    annual_vol = param.Number(
        default=0.14, bounds=(0.01, 2.0), doc="Average realised index volatility (annualised)."
    )
    rate = param.Number(default=0.065, bounds=(0.0, 0.5), doc="Risk-free rate for pricing.")
    strikes_each_side = param.Integer(
        default=5, bounds=(0, 40), doc="Strikes quoted either side of the opening ATM strike."
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


def _round_tick(price: float) -> float:
    return round(round(price / TICK_SIZE) * TICK_SIZE, 2)


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
        self.open_ns, self.close_ns = self.hours.session_ns(cfg.session_date)
        self.clock = SimulatedClock(self.open_ns)
        expiries = self.universe.calendar.weekly_expiries(cfg.session_date, cfg.expiries)
        self.contracts: list[OptionContract] = []
        for expiry in expiries:
            self.contracts.extend(self.universe.chain(expiry, cfg.spot, cfg.strikes_each_side))
        self.symbols: list[str] = [INDEX_SYMBOL] + [c.symbol for c in self.contracts]
        self.ticks_emitted = 0

    @property
    def tick_interval_ns(self) -> int:
        """Simulated time between two ticks."""
        return max(1, int(self.config.speed / self.config.ticks_per_second * NS_PER_S))

    def _implied_vol(
        self, strike: int, spot: float, years: float, atm: float, skew: float, curvature: float
    ) -> float:
        # Smile in standardised moneyness ln(K/S)/sqrt(T): skew tilts it, curvature lifts wings.
        moneyness = math.log(strike / spot) / max(math.sqrt(years), 0.02)
        iv = atm + skew * moneyness + curvature * moneyness * moneyness
        return min(max(iv, 0.02), 3.0)

    def ticks(self) -> Iterator[Tick]:
        """The session's ticks in time order; the `clock` is set to each tick's time."""
        cfg = self.config
        # Param attribute reads cost ~3 us each: read the config once, not per tick.
        annual_vol, rate, spread_pct = cfg.annual_vol, cfg.rate, cfg.spread_pct
        atm, skew, curvature = cfg.atm_iv, cfg.smile_skew, cfg.smile_curvature
        max_lots = cfg.max_quote_lots
        rng = random.Random(cfg.seed)
        session_len = self.close_ns - self.open_ns
        step_ns = self.tick_interval_ns
        step_years = step_ns / NS_PER_S / TRADING_SECONDS_PER_YEAR
        lot_sizes = [self.universe.lot_size(c) for c in self.contracts]
        expiry_ns = [int(c.expiry_close().timestamp()) * NS_PER_S for c in self.contracts]
        n_symbols = len(self.symbols)
        last_trade: dict[int, float] = {}
        spot = float(cfg.spot)
        ts = self.open_ns
        i = 0
        while ts < self.close_ns:
            # U-shaped intraday volatility: 1.6x at the open and the close, 0.7x at midday.
            x = (ts - self.open_ns) / session_len
            vol = annual_vol * (0.7 + 0.9 * (2.0 * x - 1.0) ** 2)
            spot *= math.exp(
                -0.5 * vol * vol * step_years + vol * math.sqrt(step_years) * rng.gauss()
            )
            slot = i % n_symbols
            if slot == 0:
                level = _round_tick(spot)
                tick = Tick(INDEX_SYMBOL, ts, level, level, level)
            else:
                k = slot - 1
                contract = self.contracts[k]
                years = max((expiry_ns[k] - ts) / CALENDAR_NS_PER_YEAR, 1e-6)
                iv = self._implied_vol(contract.strike, spot, years, atm, skew, curvature)
                fair = bs_price(spot, contract.strike, years, rate, iv, contract.is_call)
                half = max(TICK_SIZE, _round_tick(fair * spread_pct / 2.0))
                bid = max(TICK_SIZE, _round_tick(fair - half))
                ask = _round_tick(bid + 2 * half)
                lot = lot_sizes[k]
                volume = 0
                last = last_trade.get(k, _round_tick(max(fair, TICK_SIZE)))
                if rng.random() < 0.3:
                    volume = rng.randint(1, max_lots) * lot
                    last = ask if rng.random() < 0.5 else bid
                    last_trade[k] = last
                tick = Tick(
                    contract.symbol,
                    ts,
                    bid,
                    ask,
                    last,
                    rng.randint(1, max_lots) * lot,
                    rng.randint(1, max_lots) * lot,
                    volume,
                )
            self.clock.set(ts)
            self.ticks_emitted += 1
            yield tick
            i += 1
            ts += step_ns

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
