"""The daily loss limit: watches `pnl.daily.net` and halts trading when it crosses the limit.

A breach journals the critical `risk.daily_loss_breached` and a critical `risk.halted` (mode
'halted' or 'reducing' per RiskConfig.on_breach, by 'risk'), then, through the desk, cancels the
working orders that mode forbids and optionally flattens the book. One breach per trading day;
only `RiskGate.resume` (an operator) lifts it.
Thread model: `check()` runs on the monitor's own thread (`start`), woken by the bus on every
fill, mark and session reset and at least every `check_interval_s`; never on the kernel thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from tradelab.errors import TradelabError
from tradelab.trading.risk import RiskConfig
from tradelab.trading.risk_state import ACTIVE, control_state

log = logging.getLogger(__name__)
Submit = Callable[..., Any]
WAKE_TOPICS = ("trade.executed", "mark.updated", "pnl.session_reset")


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

    def check(self) -> bool:
        """Breach now if today's P&L is a loss at or below minus the limit (a limit of 0: any
        loss, never a flat day); True if it breached."""
        limit = self.config.daily_loss_limit
        if limit is None or control_state(self.store) != ACTIVE:
            return False
        daily = self.store.get("pnl.daily", None) or {}
        net = daily.get("net")
        session = daily.get("session_date")
        if net is None or net >= 0 or net > -limit:
            return False
        if self.store.get("risk.breached_session", None) == (session or ""):
            return False  # already breached today; an operator resumed since
        mode = self.config.on_breach
        reason = f"daily P&L {net:,.2f} crossed the daily loss limit -{limit:,.2f}"
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

    def _act_on_breach(self) -> None:
        """Cancel the working orders the new state forbids, then flatten if configured: each
        step runs even if the other failed (the error names what was left, and is logged)."""
        steps = [self.desk.cancel_blocked_orders]
        if self.config.flatten_on_breach:
            steps.append(self.desk.flatten)
        for step in steps:
            try:
                step()
            except TradelabError as exc:
                log.error("after the daily loss breach: %s", exc)

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
        self._wake.set()  # kernel thread: only a flag; the work is on the monitor's thread

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.check_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check()
            except Exception:  # a failed check must not end the monitor: log, retry next wake
                log.exception("daily loss check failed")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for subscription in self._subscriptions:
            self.bus.unsubscribe(subscription)
        self._subscriptions.clear()
        if self._thread is not None:
            self._thread.join(timeout)
