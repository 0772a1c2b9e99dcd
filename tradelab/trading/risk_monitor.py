"""The daily loss limit: watches `pnl.daily.net` and halts trading when it crosses the limit.

A breach journals the critical `risk.daily_loss_breached`, which halts by itself (mode 'halted' or
'reducing' per RiskConfig.on_breach, by 'risk'; risk_state.py), and a critical `risk.halted` for
whoever follows halts, then, through the desk, cancels the
working orders that mode forbids and optionally flattens the book. The limit holds while an
operator or the reconciler has halted trading too: a breach then takes the halt over in the
stricter of the two modes. A flatten refused by the broker, or a position opened after it (a
fill the broker made after its cancel), is closed on later checks, the waits between tries
doubling, up to FLATTEN_ATTEMPTS in a row (`flatten_given_up`, in `Lab.status()`); the broker
reconnecting starts the tries again. One breach per trading day; only `RiskGate.resume` (an operator) lifts it.
Thread model: `check()` runs on the monitor's own thread (`start`), woken by the bus on every
fill, mark and session reset and at least every `check_interval_s`, and on the Lab's after a
close settled expired options (one at a time); never on the kernel thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tradelab.errors import TradelabError
from tradelab.trading.book import excess_over, without_float_noise
from tradelab.trading.flatten import blocked_orders
from tradelab.trading.risk import RiskConfig
from tradelab.trading.risk_state import ACTIVE, HALTED, REDUCING, breach_reason, control_state

log = logging.getLogger(__name__)
Submit = Callable[..., Any]
WAKE_TOPICS = ("trade.executed", "mark.updated", "pnl.session_reset", "broker.reconnected")
# A breach's flatten (and a restart's: quotes arrive with the feed) is retried on the next
# checks while anything is open, the waits between failed tries doubling from 1 s to a minute,
# at most this many in a row (~15 minutes): a broker refusing every order must not get an
# order per position on every mark.
FLATTEN_ATTEMPTS = 20
FLATTEN_FIRST_WAIT_S, FLATTEN_LONGEST_WAIT_S = 1.0, 60.0
_STRICTNESS = {ACTIVE: 0, REDUCING: 1, HALTED: 2}


def _after_failures(now: float, failures: int) -> float:
    """When to try again after `failures` failed tries in a row: 1 s on, doubling to a minute."""
    return now + min(FLATTEN_FIRST_WAIT_S * 2 ** (failures - 1), FLATTEN_LONGEST_WAIT_S)


class DailyLossMonitor:
    def __init__(
        self,
        config: RiskConfig,
        store: Any,
        submit: Submit,
        *,
        desk: Any = None,
        bus: Any = None,
    ) -> None:
        self.config = config
        self.store = store
        self._submit = submit
        self.desk = desk
        self.bus = bus
        self.breaches = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscriptions: list[Any] = []
        self._flatten_failures = 0  # failed flattens in a row since the book was last flat
        self._flatten_next_try = 0.0  # time.monotonic() of the next try
        self._cancel_failures = 0  # a halt's cancels refused in a row (broker down)
        self._cancel_next_try = 0.0
        self._broker_back = False  # set on `broker.reconnected`: retry now, not after a wait
        self._check_lock = threading.Lock()

    def check(self) -> bool:
        """Breach now if today's P&L is a loss at or below minus the limit (a limit of 0: any
        loss, never a flat day); True if it breached. One check at a time: the Lab checks at a
        close too, beside this monitor's thread."""
        with self._check_lock:
            return self._check()

    def check_logged(self) -> None:
        """`check`, a failure logged rather than raised (as on the monitor's own thread, which
        checks again on its next wake)."""
        try:
            self.check()
        except Exception:
            log.exception("daily loss check failed")

    @property
    def flatten_given_up(self) -> bool:
        """A breach's flatten failed FLATTEN_ATTEMPTS times in a row: an operator must close
        what is open (a reconnect of the broker tries again)."""
        return self._flatten_failures >= FLATTEN_ATTEMPTS

    def _check(self) -> bool:
        if self._broker_back:  # tries made while it was down say nothing: a fresh budget
            self._broker_back = False
            self._flatten_next_try = self._cancel_next_try = 0.0
            self._flatten_failures = self._cancel_failures = 0
        if self.desk is not None:
            self._flatten_if_due()
        if self.desk is not None and control_state(self.store) != ACTIVE:
            self._cancel_blocked_if_due()
        limit = self.config.daily_loss_limit
        if limit is None:
            return False
        daily = self.store.get("pnl.daily", None) or {}
        net = daily.get("net")
        session = daily.get("session_date")
        if net is None:
            return False
        # At the limit's precision (a limit of 0: a unit's): a loss of exactly the limit
        # breaches, and a flat day does not, whatever float noise the sums of its fills and
        # marks carry (-233.74999999999957 for 233.75, -5.7e-14 for 0). Journaled so too.
        net = without_float_noise(net, limit or 1.0)
        if net >= 0 or excess_over(-net, limit) < 0:
            return False
        if self.store.get("risk.breached_session", None) == (session or ""):
            return False  # already breached today; an operator resumed since
        # Halted or reducing already (an operator, the reconciler): the stricter mode wins.
        mode = max(self.config.on_breach, control_state(self.store), key=_STRICTNESS.get)
        reason = breach_reason(net, limit)
        self._submit(
            "risk.daily_loss_breached",
            {
                "loss": -net,
                "limit": limit,
                "daily_pnl": net,
                "session_date": session,
                "action": mode,
                "flatten": self.config.flatten_on_breach,
            },
            key="risk",
        )
        self._submit("risk.halted", {"reason": reason, "by": "risk", "mode": mode}, key="risk")
        self.breaches += 1
        log.warning("risk %s: %s", mode, reason)
        if self.desk is not None:
            self._act_on_breach()
        return True

    def finish_after_restart(self, reconcile: Callable[[], Any] | None = None) -> None:
        """On a start over a recovered store: do what a halt still standing asks of the desk, in
        case a crash came between the halt and its follow-up. Cancel the working orders it
        forbids now; after a breach that asked to flatten, close what is still open on the
        next checks (the broker has no quotes before the feed runs), once `reconcile()` (when
        given) has brought the book to the broker's: a fill the crash kept from the journal
        must not be sold twice."""
        if self.desk is None or control_state(self.store) == ACTIVE:
            return
        try:  # each cancel is journaled; the halt stands whatever is left
            self.desk.cancel_blocked_orders()
        except TradelabError as exc:
            log.error("on start, risk %s: %s", control_state(self.store), exc)
        flatten_due = self._breach_flatten_due() and self.store.get("trading.open_positions")
        if flatten_due and reconcile is not None:  # the checks' flatten then closes the broker's
            reconcile()

    def _breach_flatten_due(self) -> bool:
        """Whether the halt standing is a breach's that asked to flatten (not one an operator
        lifted or called since)."""
        breach = self.store.get("risk.breach", None) or {}
        control = self.store.get("risk.control", None) or {}
        return bool(
            breach.get("flatten")
            and control.get("state", ACTIVE) != ACTIVE
            and control.get("by") == "risk"
            and control.get("seq", 0) >= breach.get("seq", float("inf"))
        )

    def _flatten_if_due(self) -> None:
        """While a breach that asked to flatten stands and something is open (a refused exit, a
        crash between the breach and its flatten, a fill the broker made after its cancel),
        flatten again; after a failure, not before the wait doubled from the last."""
        now = time.monotonic()
        if now < self._flatten_next_try:
            return
        if not self.store.get("trading.open_positions") or not self._breach_flatten_due():
            self._flatten_failures = 0  # flat, or an operator resumed (or halted) since
            return
        if self._flatten_failures >= FLATTEN_ATTEMPTS:
            return  # given up (logged): an operator must close the rest
        # Its market orders fill on the next quotes: not flattened again before they could.
        self._flatten_next_try = now + FLATTEN_FIRST_WAIT_S
        try:
            self.desk.flatten()
        except TradelabError as exc:
            self._flatten_failures += 1
            self._flatten_next_try = _after_failures(now, self._flatten_failures)
            last = self._flatten_failures >= FLATTEN_ATTEMPTS
            log.log(
                logging.ERROR if last else logging.WARNING,
                "flattening after the daily loss breach%s: %s",
                " (giving up: an operator must close the rest)" if last else "; will retry",
                exc,
            )
            return
        self._flatten_failures = 0

    def _cancel_blocked_if_due(self) -> None:
        """The working orders a halt forbids that the broker would not cancel then (it was
        disconnected, or refusing for a while) are cancelled on later checks, the waits
        doubling as a flatten's and cut short when the broker reconnects: an order resting
        from before must not open a position during the halt."""
        now = time.monotonic()
        risk = getattr(self.desk, "risk", None)
        if now < self._cancel_next_try or risk is None:
            return
        if not blocked_orders(self.desk):
            self._cancel_failures = 0
            return
        try:
            self.desk.cancel_blocked_orders()
        except TradelabError as exc:
            self._cancel_failures += 1
            self._cancel_next_try = _after_failures(now, self._cancel_failures)
            log.warning("%s; will retry", exc)
            return
        self._cancel_failures = 0

    def _act_on_breach(self) -> None:
        """Cancel the working orders the new state forbids, then flatten if configured (tried
        again on later checks while anything is open: `_flatten_if_due`)."""
        try:
            self.desk.cancel_blocked_orders()
        except TradelabError as exc:
            log.error("after the daily loss breach: %s", exc)
        if self.config.flatten_on_breach:
            self._flatten_failures, self._flatten_next_try = 0, 0.0
            self._flatten_if_due()

    # -- own thread -------------------------------------------------------------------------
    def start(self) -> DailyLossMonitor:
        if self.bus is not None:
            for topic in WAKE_TOPICS:
                self._subscriptions.append(
                    self.bus.subscribe(topic, self._on_event, name=f"risk-monitor-{topic}")
                )
        self._thread = threading.Thread(target=self._run, name="risk-monitor", daemon=True)
        self._thread.start()
        return self

    def _on_event(self, event: Any) -> None:
        # Kernel thread: only flags; the work is on the monitor's thread.
        if event.topic == "broker.reconnected":
            self._broker_back = True
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.check_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.check_logged()  # a failed check must not end the monitor: retried next wake

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for subscription in self._subscriptions:
            self.bus.unsubscribe(subscription)
        self._subscriptions.clear()
        if self._thread is not None:
            self._thread.join(timeout)
