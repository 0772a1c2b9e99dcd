"""Example strategies: `sma_cross` (any instrument) and `short_straddle` (NIFTY weekly options);
the command line and the Lab pick them by name from `strategy_names.STRATEGIES`.

Thread model: as every strategy, they run on their runner's thread only.
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from datetime import date, datetime, time, timedelta
from math import fsum
from typing import Any

import param

from tradelab.errors import InvalidInputError, OrderRejectedError
from tradelab.market.clock import NS_PER_S, SESSION_CLOSE, SESSION_OPEN
from tradelab.market.instruments import IST
from tradelab.runner.context import StrategyContext
from tradelab.runner.strategy import Strategy


class SmaCross(Strategy):
    """Long `size` when the fast SMA of closes crosses above the slow one (fast < slow on the
    previous bar, fast > slow on this one), short `size` on the opposite cross; market orders.
    Each cross is also its symbol's signal (`<name>-<symbol>`: direction and both averages).
    Its averages start from the closed bars the store holds: after a restart it goes on where
    it was, rather than waiting for `slow` new bars."""

    strategy_name = "sma_cross"
    fast = param.Integer(default=10, bounds=(1, None), doc="Bars in the fast moving average.")
    slow = param.Integer(default=30, bounds=(2, None), doc="Bars in the slow moving average.")
    size = param.Integer(default=1, bounds=(1, None), doc="Position size, units.")
    symbol = param.String(default="", doc="Trade only this symbol's bars ('' = every symbol).")
    interval = param.String(
        default="",
        doc="Use only bars of this interval ('' = each symbol's first interval seen, the "
        "shortest a session builds: one series, never 1m and 15m closes mixed).",
    )

    def symbols_needed(self) -> dict[str, str]:
        return {self.symbol: "symbol"} if self.symbol else {}

    def intervals_needed(self) -> dict[str, str]:
        return {self.interval: "interval"} if self.interval else {}

    def on_start(self, ctx: StrategyContext) -> None:
        self._closes: dict[str, deque[float]] = {}
        self._previous: dict[str, float] = {}
        self._interval_of: dict[str, str] = {}  # with interval '': the one each symbol uses

    @param.depends("fast", "slow", "size", "symbol", "interval", watch=True, on_init=True)
    def _read_settings(self) -> None:
        # Checked when built and on every change: a backtest or a session is refused before
        # it starts, and the runner's set_params refuses the change (it tries it on a copy).
        if self.fast >= self.slow:
            raise InvalidInputError(f"fast {self.fast} must be less than slow {self.slow}")
        # A parameter read costs ~1.5 us and on_bar runs every bar: it reads these plain
        # copies, refreshed whenever a parameter changes (e.g. the runner's set_params).
        before = getattr(self, "_settings", None)
        self._settings = (self.fast, self.slow, self.size, self.symbol, self.interval)
        if before is not None and before[:2] != self._settings[:2] and hasattr(self, "_closes"):
            # New windows mid-run: each symbol's averages start again from the bars the store
            # holds at its next bar (a window kept at the old length would never fill, or
            # divide the old sum by the new length).
            self._closes.clear()
            self._previous.clear()

    def on_bar(self, ctx: StrategyContext, bar: Any) -> None:
        fast, slow, size, only_symbol, only_interval = self._settings
        symbol = bar["symbol"]
        if only_symbol and symbol != only_symbol:
            return
        interval = bar["interval"]
        if only_interval:
            if interval != only_interval:
                return
        else:
            chosen = self._interval_of.get(symbol)
            if chosen is None:  # the shortest series the store has: not the first bar seen,
                # which after a restart at a quarter hour is the 15m bar (they come 15m, 1h, 1m)
                series = set(ctx.store.get(f"market.bars.{symbol}", None) or ()) | {interval}
                chosen = self._interval_of[symbol] = min(series, key=_bar_seconds)
            if chosen != interval:
                return
        closes = self._closes.get(symbol)
        if closes is None:
            closes = self._closes[symbol] = self._history(ctx, bar, slow, fast)
        closes.append(bar["close"])
        if len(closes) < slow:
            return
        window = list(closes)
        # fsum: correctly rounded, the same on every Python (3.12 changed how sum() adds floats,
        # so the averages, and the journal, differed in the last digit between versions).
        fast_sma, slow_sma = fsum(window[-fast:]) / fast, fsum(window) / slow
        diff = fast_sma - slow_sma
        previous = self._previous.get(symbol)
        self._previous[symbol] = diff
        if previous is None:
            return
        if previous < 0 < diff:
            direction, quantity = "long", size
        elif previous > 0 > diff:
            direction, quantity = "short", -size
        else:
            return
        # One active signal per symbol, replaced at each cross: the console shows the trend.
        ctx.signal(symbol, direction=direction, fast_sma=fast_sma, slow_sma=slow_sma)
        ctx.target(symbol, quantity)

    def _history(self, ctx: StrategyContext, bar: Any, slow: int, fast: int) -> deque[float]:
        """The closes before `bar` the store holds (a restart, or a strategy added mid-session
        goes on from them), and the averages' difference as of the bar before it."""
        symbol = bar["symbol"]
        earlier = [b for b in ctx.bars(symbol, bar["interval"]) if b["end"] < bar["end"]]
        closes = deque((b["close"] for b in earlier[-slow:]), maxlen=slow)
        if len(closes) == slow:
            window = list(closes)
            self._previous[symbol] = fsum(window[-fast:]) / fast - fsum(window) / slow
        return closes

    def _journal_had_enough(self, ctx: StrategyContext) -> bool:
        """Whether the store holds `slow` bars of a series this strategy reads."""
        for symbol, series in (ctx.store.get("market.bars", None) or {}).items():
            if self.symbol in ("", symbol):
                for interval, bars in series.items():
                    if self.interval in ("", interval) and len(bars) >= self.slow:
                        return True
        return False

    def on_stop(self, ctx: StrategyContext) -> None:
        # A session of 25 bars of 15m never fills a 30-bar average: say so, rather than leave
        # "0 orders" to be puzzled over.
        longest = max(self._closes.items(), key=lambda item: len(item[1]), default=None)
        if longest is not None and len(longest[1]) >= self.slow:
            return
        if longest is None and self._journal_had_enough(ctx):
            return  # a restart of a session that had ended: no bar now, but it traded on them
        seen = "no bar"
        if longest is not None:
            symbol, closes = longest
            seen = f"at most {len(closes)} bars of {symbol} {self._interval_of.get(symbol, '')}"
        ctx.log.warning(
            "sma_cross never had the %d bars its slow average needs (%s): lower slow, or "
            "give it more bars (in a session, shorter ones: lab.bar_intervals, e.g. 1m)",
            self.slow,
            seen.rstrip(),
        )


def _clock_time(text: str, what: str) -> time:
    try:
        return datetime.strptime(text, "%H:%M").time()
    except ValueError:
        raise InvalidInputError(f"{what} {text!r} is not a time of day HH:MM (IST)") from None


# short_straddle's signal: active from its entry until every leg is bought back.
STRADDLE_SIGNAL = "straddle"
EXIT_RETRY_NS = 60 * NS_PER_S


class ShortStraddle(Strategy):
    """Sell the ATM call and put of the nearest NIFTY weekly expiry at `entry_time`, a stop loss
    of `stop_loss_pct` above each leg's entry premium (PositionMonitor), all out at `exit_time`.
    The straddle is its signal (expiry, strike, spot, legs) while any leg is held."""

    strategy_name = "short_straddle"
    underlying = param.String(default="NIFTY", doc="Index whose price picks the ATM strike.")
    entry_time = param.String(default="09:20", doc="Entry time, HH:MM IST.")
    exit_time = param.String(default="15:15", doc="Time exit, HH:MM IST.")
    entry_window_minutes = param.Integer(
        default=10,
        bounds=(1, 375),
        doc="Minutes after entry_time a first entry may still be made (a strategy started later "
        "that day sells nothing; legs it already holds are still managed).",
    )
    lots = param.Integer(default=1, bounds=(1, 50), doc="Lots sold per leg.")
    stop_loss_pct = param.Number(
        default=30.0, bounds=(0.1, 1000.0), doc="Per-leg stop: entry premium + this percent."
    )

    def symbols_needed(self) -> dict[str, str]:
        return {self.underlying: "underlying"}

    def symbols_traded(self) -> dict[str, str]:
        return {}  # the underlying is read; the options traded are picked at the entry

    def option_chains_needed(self) -> dict[str, str]:
        return {self.underlying: "underlying"}

    @param.depends("entry_time", "exit_time", "entry_window_minutes", watch=True, on_init=True)
    def _read_times(self) -> None:
        # Checked when built and on every change (as sma_cross's settings): a bad time is a
        # usage error before a session starts, not a strategy stopped in on_start.
        entry = _clock_time(self.entry_time, "entry_time")
        exit_ = _clock_time(self.exit_time, "exit_time")
        if entry >= exit_:
            raise InvalidInputError(
                f"entry_time {self.entry_time} must be before exit_time {self.exit_time}"
            )
        if entry < SESSION_OPEN or exit_ >= SESSION_CLOSE:
            # An exit at or after the close is never placed (the market is closed): the legs
            # would be held overnight without a word.
            raise InvalidInputError(
                f"entry_time {self.entry_time} and exit_time {self.exit_time} must fall in the "
                f"session, {SESSION_OPEN:%H:%M} to before {SESSION_CLOSE:%H:%M} IST"
            )
        self._entry, self._exit = entry, exit_
        latest = datetime.combine(date.min, entry) + timedelta(minutes=self.entry_window_minutes)
        self._latest_entry = min(latest.time(), exit_) if latest.date() == date.min else exit_

    def on_start(self, ctx: StrategyContext) -> None:
        # Legs held before a restart are its legs from the first event on, whatever it is: an
        # option's tick must not find none and clear the straddle's signal, and a restart past
        # exit_time must still time them out. Their stops are re-armed at the entry (_adopt).
        self._legs: list[str] = sorted(ctx.positions())
        self._entered_on = None
        self._exited_on = None
        self._exit_retry_at = 0  # a refused time exit is tried again from this market time
        self._refusal_told = ""  # logged once; the same refusal each retry is only journaled

    def on_tick(self, ctx: StrategyContext, tick: Any) -> None:
        price = tick["last"] or (tick["bid"] + tick["ask"]) / 2
        self._step(ctx, tick["symbol"], price, tick["ts"])

    def on_bar(self, ctx: StrategyContext, bar: Any) -> None:
        self._step(ctx, bar["symbol"], bar["close"], bar["end"])

    def _step(self, ctx: StrategyContext, symbol: str, price: float, ts: int) -> None:
        # The event's own time, not the feed's clock: a feed running ahead of the runner must
        # not make an old tick look like the exit time.
        now = datetime.fromtimestamp(ts / NS_PER_S, tz=IST)
        day = now.date()
        if (
            symbol == self.underlying
            and self._entered_on != day
            and self._entry <= now.time() < self._exit
        ):
            self._entered_on = day
            held = ctx.positions()
            if held:  # legs sold before a restart: keep them (and their stops), sell no more
                self._adopt(ctx, held)
            elif self._sold_on(ctx, day):  # before a restart, its legs closed since
                ctx.log.info("short_straddle: sold today's straddle before a restart; no more")
            elif now.time() < self._latest_entry:
                self._enter(ctx, day, price)
            else:  # started (or started again) past the entry: not a late straddle
                ctx.log.info(
                    "short_straddle: %s IST is past entry_time %s + %d min; no entry today",
                    now.strftime("%H:%M"),
                    self.entry_time,
                    self.entry_window_minutes,
                )
        if (
            self._legs
            and self._exited_on != day
            and now.time() >= self._exit
            and ts >= self._exit_retry_at
        ):
            self._time_exit(ctx, day, ts)
        if STRADDLE_SIGNAL in ctx.active_signals() and not any(
            ctx.position(leg) or ctx.working(leg) for leg in self._legs
        ):
            # No leg held and none on its way (entries cancelled or refused, say by a
            # flatten): the straddle is no more.
            ctx.clear_signal(STRADDLE_SIGNAL)

    def _time_exit(self, ctx: StrategyContext, day: Any, ts: int) -> None:
        refused = []
        for leg in self._legs:
            try:
                ctx.close(leg)  # counts working orders: a leg already being bought back is left
            except OrderRejectedError as exc:  # e.g. trading halted: journaled as order.denied
                refused.append(f"{leg} ({exc})")
        if refused:  # the legs stay held: try again a minute later, until the day ends
            self._exit_retry_at = ts + EXIT_RETRY_NS
            if "; ".join(refused) != self._refusal_told:
                self._refusal_told = "; ".join(refused)
                ctx.log.warning(
                    "short_straddle time exit refused: %s; trying again every minute",
                    self._refusal_told,
                )
            return
        self._refusal_told = ""
        self._exited_on = day
        ctx.clear_signal(STRADDLE_SIGNAL)

    def _sold_on(self, ctx: StrategyContext, day: date) -> bool:
        """Whether the store holds a position this strategy opened on `day` (IST): one straddle
        a day, also when its legs were stopped out before a restart."""
        return any(
            position.get("strategy") == self.name
            and position.get("opened_ts")
            and datetime.fromtimestamp(position["opened_ts"] / NS_PER_S, tz=IST).date() == day
            for position in (ctx.store.get("trading.positions", None) or {}).values()
        )

    def _adopt(self, ctx: StrategyContext, held: dict[str, int]) -> None:
        self._legs = sorted(held)
        for leg in self._legs:
            if ctx.exit_levels(leg) is not None:
                continue  # re-armed from the store as they were: a changed stop_loss_pct is
                # for the next entry, as it is without a restart
            pos = ctx.store.get(f"trading.positions.{self.name}:{leg}", None) or {}
            if held[leg] < 0 and pos.get("average_price"):
                ctx.set_exit(
                    leg, stop=round(pos["average_price"] * (1 + self.stop_loss_pct / 100), 2)
                )

    def _enter(self, ctx: StrategyContext, day: Any, spot: float) -> None:
        universe = ctx.universe
        expiry = universe.calendar.weekly_expiry_on_or_after(day)
        strike = universe.atm_strike(spot)
        self._legs = []
        sold: dict[str, str] = {}  # leg -> its order id
        for kind in ("CE", "PE"):
            contract = universe.contract(expiry, strike, kind)
            try:
                sold[contract.symbol] = ctx.sell(
                    contract.symbol, self.lots * universe.lot_size(contract)
                )
            except OrderRejectedError as exc:  # journaled as order.rejected; no second try today
                ctx.log.warning("straddle leg %s not sold: %s", contract.symbol, exc)
                break
        if len(sold) < 2:  # a straddle is both legs or none: no naked leg left sold
            self._undo_legs(ctx, sold)
            return
        self._legs = list(sold)
        if self._legs:
            ctx.signal(
                STRADDLE_SIGNAL,
                expiry=expiry.isoformat(),
                strike=strike,
                spot=spot,
                legs=" ".join(self._legs),
            )

    def _undo_legs(self, ctx: StrategyContext, sold: dict[str, str]) -> None:
        """Take back the leg sold when the other was refused: what is left of its order
        cancelled, and whatever of it filled (all, or part: a thin bid) bought back."""
        for leg, order_id in sold.items():
            with contextlib.suppress(InvalidInputError, OrderRejectedError):
                ctx.cancel(order_id)  # refused: it filled (or is finishing)
            # What filled before the cancel still counts as working until its fills come:
            # a part filled was left sold, with no stop and no time exit, all day.
            ctx.close(leg)
            ctx.log.warning(
                "short_straddle: the other leg was refused, so %s is taken back: no straddle "
                "today (a straddle is both legs or none)",
                leg,
            )

    def on_fill(self, ctx: StrategyContext, fill: Any) -> None:
        symbol = fill["symbol"]
        if symbol not in self._legs:
            return
        if fill["side"] == "SELL" and ctx.position(symbol):
            # From the leg's average entry premium: a leg filled in parts is one entry.
            held = ctx.store.get(f"trading.positions.{self.name}:{symbol}", None) or {}
            entry = held.get("average_price") or fill["price"]
            stop = round(entry * (1 + self.stop_loss_pct / 100), 2)
            ctx.set_exit(symbol, stop=stop)
        elif fill["side"] == "BUY" and not any(ctx.position(leg) for leg in self._legs):
            ctx.clear_signal(STRADDLE_SIGNAL)  # every leg bought back: stopped out or timed out


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "mo": 30 * 86_400}


def _bar_seconds(interval: str) -> float:
    """A bar length's seconds ('15m' -> 900; a month as 30 days); unknown: longest."""
    found = re.fullmatch(r"([1-9][0-9]*)(s|m|h|d|mo)", interval)
    return int(found[1]) * _UNIT_SECONDS[found[2]] if found else float("inf")
