"""The Lab's tick stream around restarts and days: the ticks after a restart's resume point, and
one exchange session per IST day of a replayed file that spans several, and a feed stalled on
purpose; which market a session is on, so a restart does not go on with it on another.

A file of three trading days is three sessions: before the first tick of each later day the
previous day's session closes (its partial bars flushed) and the new one opens with its daily
P&L reset, so `pnl.daily` and the daily loss limit count that day alone, as they would live.
Paced, the day closes after its last tick and the next opens when its first tick is due, so
the overnight wait reads "market closed" (`PacedDays`).
Thread model: the generators run on whichever thread iterates them (the feed's, or the runner's
in lockstep); `on_new_day` is called on it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from tradelab.errors import InvalidInputError, TradelabError
from tradelab.market.clock import NS_PER_S, Pacer, ist_date, run_paced
from tradelab.market.instruments import IST
from tradelab.market.ticks import Tick

log = logging.getLogger("tradelab.lab")


def stalling(ticks: Iterable[Tick], after_seconds: float, stop: threading.Event) -> Iterator[Tick]:
    """`ticks` until `after_seconds` of wall time, then nothing until `stop` is set: the session
    stays open (the Lab's stop skips its close), as when a market-data line dies."""
    deadline = time.monotonic() + after_seconds
    for tick in ticks:
        if time.monotonic() >= deadline:
            log.warning("feed stalled on purpose (feed_stall_after_seconds=%s)", after_seconds)
            stop.wait()
            return
        yield tick


def next_midnight_ns(ts_ns: int) -> int:
    """The start of the IST day after the one `ts_ns` falls on, in ns since the epoch."""
    day = datetime.fromtimestamp(ts_ns / NS_PER_S, tz=IST).date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=IST) + timedelta(days=1)
    return int(midnight.timestamp()) * NS_PER_S


def resumed_ticks(
    ticks: Iterable[Tick],
    resumed_after_ns: int | None,
    on_quote: Callable[[Tick], object],
    on_bar_tick: Callable[[Tick], object] | None = None,
    bars_from_ns: int = 0,
) -> Iterator[Tick]:
    """`ticks` after the last journaled mark; the stretch before it (journaled before a restart)
    is skipped unpaced, its latest quotes handed to `on_quote` (the broker) so it can fill, and
    those from `bars_from_ns` on to `on_bar_tick` (the bars being built at the stop are built
    from all their ticks, not lost when no tick of theirs follows the restart).
    `resumed_after_ns` None: nothing was journaled before (every tick is played)."""
    latest_quotes: dict[str, Tick] = {}
    for tick in ticks:
        if resumed_after_ns is not None and tick.ts <= resumed_after_ns:
            latest_quotes[tick.symbol] = tick
            if on_bar_tick is not None and tick.ts >= bars_from_ns:
                on_bar_tick(tick)
            continue
        if latest_quotes:
            for quote in latest_quotes.values():
                on_quote(quote)
            latest_quotes.clear()
        yield tick


class SessionDays:
    """Which IST day the ticks are on: `crosses(ts)` is True for the first tick of a later day,
    whose session must open first (`enter` it then); `last_ns` is the latest tick's time."""

    def __init__(self) -> None:
        self.day_end_ns: int | None = None
        self.last_ns = 0

    def crosses(self, ts_ns: int) -> bool:
        return self.day_end_ns is not None and ts_ns >= self.day_end_ns

    def enter(self, ts_ns: int) -> None:
        if self.day_end_ns is None or ts_ns >= self.day_end_ns:
            self.day_end_ns = next_midnight_ns(ts_ns)
        self.last_ns = ts_ns


class PacedDays:
    """The days of a paced session: the day before closes (`close_day(its last tick's ns)`) as
    soon as the next day's first tick is read, and the next day opens (`open_day(its first
    tick's ns)`) only when that tick is due (`due`, called by whoever routes it, after the
    paced wait): through the overnight wait the session reads closed, not open and silent.
    `resumed_ns`: a restart's resume point, so a restart in that wait still opens the next day.
    """

    def __init__(
        self,
        close_day: Callable[[int], object],
        open_day: Callable[[int], object],
        resumed_ns: int | None = None,
    ) -> None:
        self._close_day, self._open_day = close_day, open_day
        self._days = SessionDays()
        if resumed_ns is not None:
            self._days.enter(resumed_ns)
        self._opening: int | None = None  # the first tick of a day closed before and not open
        self.pacer: Pacer | None = None  # from run(): how late the feed is (a dead line)

    def ticks(self, ticks: Iterable[Tick]) -> Iterator[Tick]:
        days = self._days
        for tick in ticks:
            if days.crosses(tick.ts):
                self._close_day(days.last_ns)
                self._opening = tick.ts
            days.enter(tick.ts)
            yield tick

    def run(
        self,
        ticks: Iterable[Tick],
        route: Callable[[Tick], object],
        speed: float | None,
        stop: threading.Event,
        stall_after_seconds: float = 0.0,
    ) -> None:
        """Route `ticks` held to wall time at `speed` x, each day opened when its first tick
        is due; nothing more once `stop` is set (a stop in a paced wait routes nothing after
        it). `stall_after_seconds`: see `stalling`."""
        played = self.ticks(ticks)
        if stall_after_seconds:
            played = stalling(played, stall_after_seconds, stop)

        def on_tick(tick: Tick) -> None:
            if not stop.is_set():
                self.due(tick)
                route(tick)

        self.pacer = Pacer(speed, stop)
        run_paced(played, on_tick, speed=speed, stop=stop, pacer=self.pacer)

    def due(self, tick: Tick) -> None:
        """`tick` is due now: open its day first if it is the first of a new day."""
        if self._opening is not None and tick.ts >= self._opening:
            self._opening = None
            self._open_day(tick.ts)


def day_close_ns(hours: Any, at_ns: int) -> int:
    """The close of the exchange day `at_ns` falls on (or `at_ns`, if later or not a trading
    day): when a day a feed has finished is closed."""
    day = ist_date(at_ns)
    return max(hours.session_ns(day)[1], at_ns) if hours.is_trading_day(day) else at_ns


def clock_to_close(clock: Any, hours: Any, at_ns: int) -> None:
    """Once a session is closed (at `at_ns`), the session's clock reads that day's close at the
    earliest: an order placed then (a strategy's on_stop) is the broker's to refuse as after
    hours, never filled at the last quote and dated before the close."""
    close_ns = day_close_ns(hours, at_ns)
    if close_ns > clock.now_ns():
        clock.set(close_ns)


def journaled_bar_starts(store: Any) -> dict[tuple[str, str], int]:
    """The latest bar start the journal holds per (symbol, interval)."""
    series = store.get("market.bars", None) or {}
    return {
        (symbol, interval): bars[-1]["start"]
        for symbol, intervals in series.items()
        for interval, bars in intervals.items()
        if bars
    }


def last_mark_ns(store: Any) -> int | None:
    """Where a restart resumes: the journal's latest mark. None, not 0, when there is none: 0
    is a time (1970), and a replay may be older."""
    marks = store.get("market.marks", None) or {}
    return max((m["ts"] for m in marks.values() if m.get("ts") is not None), default=None)


class ClosedSession:
    """A session the journal holds closed, when a restart starts: if the feed plays more of
    that day after the close (a longer file of it), the first such tick opens it again."""

    def __init__(self, day: str, closed_ns: int) -> None:
        self.day, self.closed_ns = day, closed_ns
        self.done = False

    @classmethod
    def of(cls, store: Any) -> ClosedSession | None:
        session = store.get("market.session", None) or {}
        if session.get("status") != "closed":
            return None
        return cls(session.get("session_date"), session.get("ts") or 0)

    def reopened_by(self, ts_ns: int) -> bool:
        """Whether the tick at `ts_ns` opens the session again; the first tick after the close,
        or of another day, ends the question."""
        same_day = ist_date(ts_ns).isoformat() == self.day
        if same_day and ts_ns < self.closed_ns:  # at the close: the next bar's first tick
            return False
        self.done = True
        return same_day


# What draws the simulated market's prices beside its seed: a tick's market step (speed /
# ticks per second, so --speed changes the path) and the sim_feed settings of the index's walk
# and the options' quotes (the quote sizes' bound too: numpy's bounded draws take a
# range-dependent number of raw draws, so it moves every later price).
_SIM_PATH = (
    "spot",
    "annual_vol",
    "rate",
    "atm_iv",
    "smile_skew",
    "smile_curvature",
    "spread_pct",
    "strikes_each_side",
    "expiries",
    "max_quote_lots",
)


def market_source(config: Any, feed: Any = None) -> str:
    """What the session's market is, journaled with each session it opens: the simulated
    market of one seed and the settings that draw its prices (`feed`, a SimulatedFeed), or
    one bar file (by content: renamed or moved, it is the same)."""
    if config.feed != "replay":
        source = f"the simulated market of seed {config.seed}"
        if feed is None:
            return source
        settings = [f"{key}={getattr(feed.config, key)!r}" for key in _SIM_PATH]
        settings.append(f"tick={feed.tick_interval_ns}ns")
        digest = hashlib.sha256(" ".join(settings).encode()).hexdigest()[:8]
        return f"{source} (settings {digest})"
    digest = hashlib.sha256()
    with open(config.replay_path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return f"bar file {Path(config.replay_path).name} (sha256 {digest.hexdigest()[:12]})"


def check_same_market(store: Any, source: str, resume_ns: int) -> None:
    """Refuse to go on with a session the journal holds open on another market: its prices
    (and a restart's stops and P&L) would jump to that market's without a word. A session
    that closed, or another day's, may follow on any market."""
    held = store.get("market.session", None) or {}
    day = datetime.fromtimestamp(resume_ns / NS_PER_S, tz=IST).date().isoformat()
    if held.get("status") != "open" or held.get("session_date") != day:
        return
    before = held.get("source")
    # A journal written before the settings were part of it names the seed alone: it goes on,
    # said, since nothing tells whether this run's settings draw that day's path.
    if before and before != source and source.startswith(f"{before} (settings "):
        log.warning(
            "this journal's session of %s was opened by an earlier tradelab, which did not "
            "record the simulated market's settings: resumed on %s; unless --speed, "
            "--ticks-per-second and the sim_feed section are that run's, its prices jump",
            day,
            source,
        )
    elif before and before != source:
        settings = (
            " and its settings (--speed, --ticks-per-second, the sim_feed section)"
            if before.startswith("the simulated market")
            else ""
        )
        raise InvalidInputError(
            f"this journal's session of {day} is open on {before}; this run's market is "
            f"{source}: run it on the journal's market (its seed or file{settings}), or start "
            "a new journal (--journal for run, lab.journal_path in the --config file for serve)"
        )


DAY_ORDER_EXPIRED = "day order: the session closed before it filled"


def expire_day_orders(store: Any, desk: Any, sent_before: date | None = None) -> list[str]:
    """Cancel the working orders the exchange would have: NSE orders are day orders, so what
    has not filled by the close is cancelled then (`sent_before` None), and an order left
    from an earlier day (a session stopped before its close, started again later) when the
    next day opens (those sent on an IST day before `sent_before`). Each cancel is journaled
    (order.cancelled, reason DAY_ORDER_EXPIRED); one the broker refuses is logged."""
    working = store.get("trading.working", None) or {}
    if not working:
        return []
    orders = store.get("trading.orders", None) or {}
    expired = []
    for order_id in working:
        sent = (orders.get(order_id) or {}).get("sent_ts")
        if sent_before is not None and (sent is None or ist_date(sent) >= sent_before):
            continue
        try:
            desk.cancel_order(order_id, reason=DAY_ORDER_EXPIRED)
        except TradelabError as exc:  # finished meanwhile, or a broker down: said, not fatal
            log.warning("day order %s not cancelled at the close: %s", order_id, exc)
            continue
        expired.append(order_id)
    if expired:
        log.info("day orders cancelled at the close: %s", ", ".join(expired))
    return expired


def settle_expired_options(store: Any, broker: Any, submit: Callable[..., Any]) -> list[str]:
    """Have the broker settle the options whose expiry has closed (NSE settles them in cash at
    the close), split per strategy as the book holds them; its reports reach the desk as fills,
    and each settled contract is marked at its settlement price (`mark.updated`), as the
    exchange publishes it. An index with no quote at the broker yet (a restart) settles at its
    last journaled mark. A broker that is down or away: logged, the settlement waits for the
    next close or start. Returns the settlement orders' ids."""
    marks = store.get("market.marks", None) or {}
    prices = {symbol: mark["price"] for symbol, mark in marks.items() if "price" in mark}
    held_by: dict[str, dict[str, int]] = {}  # the book's split of each contract by strategy
    for position in (store.get("trading.positions", None) or {}).values():
        if position.get("net_quantity"):
            by = held_by.setdefault(position["symbol"], {})
            by[position["strategy"]] = by.get(position["strategy"], 0) + position["net_quantity"]
    try:
        updates = broker.settle_expired(prices, held_by)
    except TradelabError as exc:
        log.warning("expired options not settled: %s", exc)
        return []
    marked = set()
    for update in updates:
        # A warning, not news: a position the exchange closed, not its strategy.
        log.warning("%s (%s, %s %d)", update.reason, update.strategy, update.side, update.quantity)
        fill = update.fill
        if fill is not None and fill.symbol not in marked:
            marked.add(fill.symbol)
            price = fill.price
            submit(
                "mark.updated",
                {
                    "symbol": fill.symbol,
                    "price": price,
                    "bid": price,
                    "ask": price,
                    "last": price,
                    "ts": fill.ts,
                },
                key=fill.symbol,
            )
    return [update.order_id for update in updates]


def say_if_nothing_was_left(lab: Any) -> None:
    """A restart on a journal already past its feed's whole session plays nothing: say why,
    not only that the session ended."""
    last = lab.resumed_after_ns
    if lab.ticks_played or last is None or lab._stop.is_set():
        return
    log.warning(
        "nothing left to play: this journal's market time is %s IST, at or after the last "
        "tick of this %s (from %s IST); run a later day (sim_feed.session_date, another bar "
        "file) or start a new journal",
        _ist_minute(last),
        "bar file" if lab.config.feed == "replay" else "simulated session",
        _ist_minute(lab.open_ns),
    )


def _ist_minute(ts_ns: int) -> str:
    return f"{datetime.fromtimestamp(ts_ns / NS_PER_S, IST):%Y-%m-%d %H:%M}"
