"""A Lab session's trading days: each opened once (its daily P&L reset, its bar history
trimmed, what a session stopped before its close left working expired, expiries a restart
skipped settled) and closed once (day orders expired, expiries settled, the loss limit checked).

Thread model: called on the Lab's feed thread (paced) or the runner's thread (lockstep), one at
a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradelab.errors import TradelabError
from tradelab.lab_sessions import (
    clock_to_close,
    day_close_ns,
    expire_day_orders,
    settle_expired_options,
)
from tradelab.market.clock import ist_date
from tradelab.trading.history import TOPIC as TRIM_TOPIC

if TYPE_CHECKING:
    from tradelab.lab import Lab


class TradingDays:
    def __init__(self, lab: Lab) -> None:
        """Made once `lab` has recovered its journal: the session an earlier run left open
        (stopped before its close) is read now and closed if this run opens a later day."""
        self.lab = lab
        left = lab.engine.store.get("market.session", None) or {}
        self._left_open: dict | None = left if left.get("status") == "open" else None
        # Opened and closed by this Lab: the store may not have applied them yet when the
        # next day opens, so they are remembered here.
        self._opened_date: str | None = None
        self._closed_date: str | None = None

    def open(self, at_ns: int | None = None) -> None:
        """Open the session of the day `at_ns` falls on (default: where the ticks start, the
        file's first day or a restart's resume point), unless the store has it open already."""
        lab = self.lab
        store = lab.engine.store
        if at_ns is None:
            resumed = lab.resumed_after_ns
            at_ns = lab.open_ns if resumed is None else max(lab.open_ns, resumed)
            if ist_date(at_ns) == ist_date(lab.open_ns):
                at_ns = lab.open_ns
        session_date = ist_date(at_ns).isoformat()
        if session_date == self._opened_date:
            return  # opened by this Lab already (the store may not show it yet)
        earlier, self._left_open = self._left_open, None
        if earlier is not None and (earlier.get("session_date") or "") < session_date:
            # Stopped before its close and started again on a later day: that day closed then
            # (its day orders expired, its expiries settled, its loss limit checked).
            self.close_day(day_close_ns(lab.broker.hours, earlier.get("ts") or at_ns))
        self._opened_date = session_date
        if (store.get("pnl.daily", None) or {}).get("session_date") != session_date:
            lab.desk.reset_daily_pnl(session_date)
        if (store.get("market.session", None) or {}).get("session_date") != session_date:
            lab.router.open_session(at_ns, source=lab.market_source)
            keep = lab.config.book_history_sessions
            expired = expired_symbols(store, lab.universe, session_date)
            lab.engine.submit(
                TRIM_TOPIC, {"keep_sessions": keep, "expired_symbols": expired}, key="trading"
            )
        # Left working by a session stopped before its close: expired by the exchange since.
        expire_day_orders(store, lab.desk, sent_before=ist_date(at_ns))
        # Held past an expiry a restart skipped.
        settle_expired_options(store, lab.broker, lab.engine.submit)

    def next_day(self, last_ns: int, first_ns: int) -> None:
        """A replayed file's next IST day: close the day before, open this one. In lockstep the
        reconciler runs at each day's open too (its timer does when paced): its fill point is
        what the book's trim may forget up to."""
        self.close_finished_day(last_ns)
        lab = self.lab
        if lab.lockstep and lab.reconciler is not None and lab.reconciler_config.run_on_start:
            lab.reconciler.run_once()
        self.open(first_ns)

    def close_finished_day(self, last_ns: int) -> None:
        lab = self.lab
        # The feed has a later day: this one closed at the exchange's close, not its last tick.
        self.close_day(day_close_ns(lab.broker.hours, last_ns))

    def close_day(self, last_ns: int) -> None:
        lab = self.lab
        day = ist_date(last_ns).isoformat()
        if self._closed_date is not None and day <= self._closed_date:
            return  # closed by this Lab already (a restart on a later day closed it at start)
        if self._opened_date is not None and day < self._opened_date:
            # A restart resuming after an earlier day's last mark: that day was closed in the
            # journal, or by open() if it was left open. Closing it now would close the day
            # this Lab opened (its session would read closed while it trades).
            return
        self._closed_date = day
        # Once: a paced session stopped in an overnight wait had closed its day already, and a
        # restart with nothing more of a closed day to play finds it closed. The clock reads
        # the day's close either way: an order after it is after hours. Paced, the store may
        # not have applied this day's open yet and still show the day before closed: only
        # this day's close counts.
        session = lab.engine.store.get("market.session", None) or {}
        if session.get("status") != "closed" or session.get("session_date") != day:
            lab.router.close_session(last_ns)
        clock_to_close(lab.clock, lab.broker.hours, last_ns)
        expire_day_orders(lab.engine.store, lab.desk)
        settled = settle_expired_options(lab.engine.store, lab.broker, lab.engine.submit)
        if settled and lab.risk_monitor is not None:
            # Before the next day's reset or the stop: in lockstep the monitor has no thread,
            # and paced its thread may come too late.
            lab.risk_monitor.check_logged()

    def close_session(self) -> None:
        lab = self.lab
        if not lab._stop.is_set():
            self.close_day(lab.close_ns)


def expired_symbols(store: Any, universe: Any, session_date: str) -> list[str]:
    """The quoted contracts whose expiry is before `session_date` (an index or a stock has
    none): the state drops their bars and marks when that session opens."""
    expired = []
    for symbol in store.get("market.marks", None) or {}:
        try:
            expiry = getattr(universe.parse(symbol), "expiry", None)
        except TradelabError:
            continue
        if expiry is not None and expiry.isoformat() < session_date:
            expired.append(symbol)
    return sorted(expired)
