"""Clocks and market hours: a simulated clock a feed drives, wall time, and real-time pacing.

A `SimulatedClock` has one writer (the feed thread that advances it); any thread may read
`now_ns()` (a single int attribute read). `Pacer` is used by the one thread that runs a feed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from tradelab.errors import InvalidInputError
from tradelab.market.calendar import REGULAR_CLOSE, REGULAR_OPEN, TradingCalendar, nse_calendar
from tradelab.market.instruments import IST

NS_PER_S = 1_000_000_000


class WallClock:
    """Real UTC time in nanoseconds."""

    def now_ns(self) -> int:
        return time.time_ns()


class SimulatedClock:
    """Exchange time as the feed says it is; never goes backwards."""

    def __init__(self, start_ns: int) -> None:
        self._now = int(start_ns)

    def now_ns(self) -> int:
        return self._now

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now / NS_PER_S, tz=IST)

    def set(self, ts_ns: int) -> None:
        if ts_ns < self._now:
            raise InvalidInputError(
                f"simulated clock cannot go back from {self._now} to {ts_ns} (ns since epoch)"
            )
        self._now = int(ts_ns)

    def advance(self, ns: int) -> None:
        if ns < 0:
            raise InvalidInputError(f"cannot advance the clock by a negative {ns} ns")
        self._now += int(ns)


SESSION_OPEN, SESSION_CLOSE = REGULAR_OPEN, REGULAR_CLOSE  # NSE's normal session, IST


@dataclass(frozen=True, slots=True)
class MarketHours:
    """NSE sessions: 09:15-15:30 IST on the trading days of `calendar` (NSE by default).

    A special session of the calendar (a Diwali Muhurat hour, a weekend Budget session) has its
    own hours; `holidays` closes further days on top of the calendar's.
    """

    open_time: dtime = SESSION_OPEN
    close_time: dtime = SESSION_CLOSE
    holidays: frozenset[date] = frozenset()
    calendar: TradingCalendar = field(default_factory=nse_calendar)

    def session(self, day: date) -> tuple[dtime, dtime] | None:
        """(open, close) IST of `day`, or None when the market does not trade that day."""
        if day in self.holidays:
            return None
        if day in self.calendar.special_sessions:
            return self.calendar.special_sessions[day]
        if self.calendar.has_regular_session(day):
            return self.open_time, self.close_time
        return None

    def is_trading_day(self, day: date) -> bool:
        return self.session(day) is not None

    def next_trading_day(self, day: date, *, inclusive: bool = False) -> date:
        """The first trading day after `day` (or on it, when `inclusive`)."""
        day = day if inclusive else day + timedelta(days=1)
        for _ in range(30):  # a weekend plus a few holidays at most
            if self.is_trading_day(day):
                return day
            day += timedelta(days=1)
        raise InvalidInputError(f"no trading day within 30 days before {day.isoformat()}")

    def session_ns(self, day: date) -> tuple[int, int]:
        """(open, close) of `day`'s session as UTC ns; a closed day is an `InvalidInputError`."""
        bounds = self.session(day)
        if bounds is None:
            raise InvalidInputError(
                f"{day.isoformat()} ({day.strftime('%A')}) is not a {self.calendar.name} "
                f"trading day; the next one is {self.next_trading_day(day).isoformat()}"
            )
        open_dt = datetime.combine(day, bounds[0], tzinfo=IST)
        close_dt = datetime.combine(day, bounds[1], tzinfo=IST)
        return int(open_dt.timestamp()) * NS_PER_S, int(close_dt.timestamp()) * NS_PER_S

    def is_open(self, ts_ns: int) -> bool:
        """True from the open (inclusive) to the close (exclusive) on a trading day."""
        at = datetime.fromtimestamp(ts_ns / NS_PER_S, tz=IST)
        bounds = self.session(at.date())
        return bounds is not None and bounds[0] <= at.time() < bounds[1]


def ist_date(ts_ns: int) -> date:
    # Whole seconds, floored: a float division rounds the last nanoseconds of a day up into
    # the next one.
    return datetime.fromtimestamp(ts_ns // NS_PER_S, tz=IST).date()


class Pacer:
    """Holds a stream of event times to wall time at `speed` x (None = as fast as possible)."""

    def __init__(self, speed: float | None, stop: threading.Event | None = None) -> None:
        if speed is not None and not speed > 0:
            raise InvalidInputError(f"replay speed {speed!r} must be > 0 (or None for max speed)")
        self.speed = speed
        self._stop = stop
        self._origin: tuple[int, float] | None = None
        # When (perf_counter) the event waited for, or last handed on, was due: a stream that
        # stops coming (a dead market-data line) leaves it in the past (`late_s`).
        self.due_at: float | None = None

    def wait_until(self, event_ns: int) -> bool:
        """Wait until `event_ns` is due; False when `stop` was set meanwhile (a wait can span a
        night or a gap in a bar file: a stop must not wait it out)."""
        if self.speed is None:
            return True
        if self._origin is None:
            self._origin = (event_ns, time.perf_counter())
            self.due_at = self._origin[1]
            return True
        sim0, wall0 = self._origin
        target = wall0 + (event_ns - sim0) / NS_PER_S / self.speed
        self.due_at = target
        ahead = target - time.perf_counter()
        # Sleep only when at least a millisecond ahead: shorter sleeps overshoot and the
        # next event catches up anyway.
        if ahead > 0.001:
            if self._stop is not None:
                return not self._stop.wait(ahead)
            time.sleep(ahead)
        return True

    def late_s(self) -> float | None:
        """Seconds since the last event waited for was due (< 0 while it is not due yet: a
        slow replay's next tick, a night); None when unpaced or before the first event. Large
        only when the stream stopped coming."""
        if self.speed is None or self.due_at is None:
            return None
        return time.perf_counter() - self.due_at


def run_paced(
    ticks: Iterable[Any],
    on_tick: Callable[[Any], object],
    *,
    speed: float | None,
    stop: threading.Event | None = None,
    max_ticks: int | None = None,
    pacer: Pacer | None = None,
) -> int:
    """Hand `ticks` (anything with a `ts` in ns) to `on_tick`, held to wall time at `speed` x
    (None = as fast as possible; or by `pacer`, made for `speed`); stop early on `stop` or
    after `max_ticks`. Returns how many."""
    pacer = pacer or Pacer(speed, stop)
    sent = 0
    for tick in ticks:
        if (stop is not None and stop.is_set()) or (max_ticks is not None and sent >= max_ticks):
            break
        if not pacer.wait_until(tick.ts):
            break
        on_tick(tick)
        sent += 1
    return sent
