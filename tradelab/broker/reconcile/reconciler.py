"""The Reconciler: finds every difference between the book and the broker, records each one,
and fixes, flags or halts on it by the policy set for its kind.

A run reads the broker (positions, working orders, fills since the last point, with retries),
compares it with the store, and journals `reconciliation.started`, one `reconciliation.mismatch`
per difference (kind, expected = the book, actual = the broker), a critical
`reconciliation.fixed` per adopted fix, and `reconciliation.completed` with the new fill point.
A difference seen once may be an update in flight: with `settle_s` > 0 a run reads again after
that pause and reports only the differences seen both times. A broker that stays down after
the retries journals `broker.degraded` (and `broker.health.<name>` in the store) and the run
ends; the next run that reaches it journals `broker.recovered`. Nothing here raises into the
session. Thread model: `run_once` on any one thread; `start()` runs it on its own thread, on
start and every `interval_s`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import param

from tradelab.broker.base import Broker, BrokerUnavailableError
from tradelab.broker.reconcile import diff as d
from tradelab.broker.reconcile.diff import BrokerView, Mismatch
from tradelab.broker.reconcile.fixes import BY, fixes_for
from tradelab.broker.reconcile.reading import read_broker
from tradelab.broker.reconcile.reducers import DISCONNECTED
from tradelab.config import DAY_S
from tradelab.errors import InvalidInputError, LifecycleError
from tradelab.trading.closes import position_closed_payload
from tradelab.trading.risk import RiskGate
from tradelab.trading.risk_state import ACTIVE, HALT_MODES, HALTED, REDUCING, control_state

log = logging.getLogger(__name__)
ADOPT, FLAG, HALT = "adopt", "flag", "halt"
POLICIES = (ADOPT, FLAG, HALT)


def _policy(default: str, what: str) -> param.Selector:
    return param.Selector(
        objects=list(POLICIES),
        default=default,
        doc=f"What to do on a {what}: {', '.join(POLICIES)}.",
    )


class ReconcilerConfig(param.Parameterized):
    """When the reconciler runs, how it retries the broker, and its policy for each kind."""

    interval_s = param.Number(
        default=30.0,
        bounds=(0.05, DAY_S),
        doc="Wall-clock seconds between runs (one runs on start); a max-speed (lockstep) "
        "session runs only the one on start.",
    )
    run_on_start = param.Boolean(default=True, doc="Run once as soon as the reconciler starts.")
    dry_run = param.Boolean(default=False, doc="Report differences; fix and halt nothing.")
    settle_s = param.Number(
        default=0.5,
        bounds=(0.0, 30.0),
        doc="Pause before a second look; only differences seen twice are reported (0: one look).",
    )
    retry_attempts = param.Integer(default=4, bounds=(1, 20), doc="Tries per broker call.")
    retry_base_s = param.Number(default=0.2, bounds=(0.0, 60.0), doc="First backoff, seconds.")
    retry_max_s = param.Number(default=5.0, bounds=(0.0, 600.0), doc="Longest backoff, seconds.")
    halt_mode = param.Selector(
        objects=list(HALT_MODES),
        default=HALTED,
        doc="Risk state the 'halt' policy sets ('halted' also escalates a 'reducing' state).",
    )
    missed_fill = _policy(ADOPT, "fill the broker made that the book lacks")
    order_state_mismatch = _policy(ADOPT, "order whose status or filled quantity differ")
    unknown_open_order = _policy(FLAG, "working broker order unknown to the book")
    unknown_position = _policy(FLAG, "position the broker holds and the book does not")
    missing_position = _policy(HALT, "position the book holds and the broker does not")
    quantity_mismatch = _policy(HALT, "position held in different quantities")

    def policy(self, kind: str) -> str:
        if kind not in d.KINDS:
            raise InvalidInputError(f"mismatch kind {kind!r} is not one of {', '.join(d.KINDS)}")
        return getattr(self, kind)


@dataclass
class ReconciliationReport:
    """What one run found and did (also journaled)."""

    mismatches: list[Mismatch] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)  # items
    flagged: list[str] = field(default_factory=list)
    halted: bool = False  # this run halted trading (not: it found trading already halted)
    degraded: str | None = None  # why the broker could not be read, if it could not
    fill_point: int = 0
    fills_gone: int = 0  # fills after the point the broker no longer has (its history bound)

    @property
    def ok(self) -> bool:
        return self.degraded is None and not self.mismatches

    @property
    def kinds(self) -> list[str]:
        return [m.kind for m in self.mismatches]


class _Stopped(Exception):
    """`stop()` cut a run's pause short."""


class Reconciler:
    def __init__(
        self,
        broker: Broker,
        submit: Callable[..., Any],
        *,
        store: Any = None,
        risk: RiskGate | None = None,
        config: ReconcilerConfig | None = None,
        sleep: Callable[[float], object] | None = None,
        started_at_seq: int | None = None,
    ) -> None:
        """`sleep`: how a run pauses (its settle pause, its retries' backoff); by default a wait
        that `stop()` cuts short, ending the run. `started_at_seq`: the seq the journal held
        when this process started (by default the engine's recovery, with submit=engine.submit):
        an order submitted at or before it was sent by a process that is gone, so a broker that
        does not know it never will (see `_past_in_flight`)."""
        owner = getattr(submit, "__self__", None)
        self.store = store if store is not None else getattr(owner, "store", None)
        if self.store is None:
            raise InvalidInputError(
                "Reconciler needs the store it compares: pass store=, or submit=engine.submit"
            )
        self.broker = broker
        self.config = config or ReconcilerConfig()
        self.risk = risk or RiskGate(None, self.store, submit)
        self._submit = submit
        # A run waits for the kernel to apply what it journals: not from the kernel thread.
        self._on_kernel_thread = getattr(owner, "on_kernel_thread", lambda: False)
        self._sleep = sleep or self._pause
        self._run_lock = threading.Lock()  # one run at a time (the thread, or a notebook call)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        # Orders the book has as submitted that the broker did not know at the last run: in
        # flight then; a difference only if the broker still does not know them now.
        self._unknown_submitted: set[str] = set()
        if started_at_seq is None:
            recovered = getattr(owner, "recovery_report", None)
            started_at_seq = recovered.last_seq if recovered is not None else 0
        self.started_at_seq = started_at_seq

    def _pause(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped  # a broker that is down must not hold a session's stop

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Reconciler:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="reconciler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        wait = 0.0 if self.config.run_on_start else self.config.interval_s
        while not self._stop.wait(wait):
            try:
                self.run_once()
            except Exception:  # a run must never end the session; the log has the traceback
                log.exception("reconciliation run failed")
            wait = self.config.interval_s

    def _past_in_flight(self, found: list[Mismatch]) -> list[Mismatch]:
        """Drop the orders on their way to the broker: submitted in the book (the desk journals
        that before it calls the broker), unknown to the broker, and not so at the last run
        too. Adopting "cancelled: not known to the broker" for one lost a live order. One
        submitted before this process started is not on its way (its sender was killed between
        the two): a difference at once, or it stays working in the book for good."""
        in_flight = {
            m.item
            for m in found
            if m.kind == d.ORDER_STATE_MISMATCH
            and m.actual is None
            and (m.expected or {}).get("status") == "submitted"
            and self._submitted_seq(m.subject["order_id"]) > self.started_at_seq
        }
        before, self._unknown_submitted = self._unknown_submitted, in_flight
        return [m for m in found if m.item not in in_flight or m.item in before]

    def _submitted_seq(self, order_id: str) -> int:
        """The seq of the book's last change to a submitted order: its submission."""
        return int(self.store.get(f"trading.orders.{order_id}.last_seq", None) or 0)

    # -- one run ----------------------------------------------------------------------------
    def run_once(self) -> ReconciliationReport:
        if self._on_kernel_thread():
            raise LifecycleError(
                "run_once() was called on the engine's kernel thread (from a bus handler?); a "
                "run waits for that very thread to apply what it journals, so call it from "
                "another thread"
            )
        with self._run_lock:
            self.runs += 1
            return self._run()

    def _run(self) -> ReconciliationReport:
        cfg = self.config
        point = self._fill_point()
        try:
            view = self._read_broker(point)
            # Fills compared by both reads: one the second read alone holds (a report lost
            # during the wait) is left for the next run, so the point must not pass it.
            compared_through = view.last_fill_seq
            found = d.find_mismatches(view, self.store)
            if found and cfg.settle_s > 0:
                self._sleep(cfg.settle_s)
                view = self._read_broker(point)
                seen = {m.item for m in found}
                found = [m for m in d.find_mismatches(view, self.store) if m.item in seen]
        except BrokerUnavailableError as exc:
            self._set_health("broker.degraded", str(exc))
            return ReconciliationReport(degraded=str(exc), fill_point=point)
        except _Stopped:
            return ReconciliationReport(degraded="the reconciler stopped", fill_point=point)
        found = self._past_in_flight(found)
        self._set_health("broker.recovered", "broker calls succeed again")
        report = ReconciliationReport(mismatches=found, fills_gone=view.fills_gone)
        self._emit(
            "reconciliation.started",
            {
                "broker": self.broker.name,
                "account_id": view.account_id,
                "fill_point": point,
                "dry_run": cfg.dry_run,
            },
        )
        for mismatch in found:
            self._handle(mismatch, view, report)
        unresolved = [
            m.fill_seq for m in found if m.fill_seq is not None and m.item not in report.fixed
        ]
        report.fill_point = min(unresolved) - 1 if unresolved else compared_through
        self._emit(
            "reconciliation.completed",
            {
                "ok": report.ok,
                "mismatches": len(found),
                "kinds": sorted(set(report.kinds)),
                "fixed": len(report.fixed),
                "flagged": len(report.flagged),
                "halted": report.halted,
                "dry_run": cfg.dry_run,
                "account_id": view.account_id,
                "fill_point": report.fill_point,
                **({"fills_gone": view.fills_gone} if view.fills_gone else {}),
            },
        )
        return report

    def _handle(self, mismatch: Mismatch, view: BrokerView, report: ReconciliationReport) -> None:
        cfg = self.config
        policy = cfg.policy(mismatch.kind)
        fixes: list[dict[str, Any]] = []
        if cfg.dry_run:
            action = "none (dry run)"
        elif policy == ADOPT:
            fixes = fixes_for(mismatch, view, self.store, self.risk.clock.now_ns())
            action = self._adopt_action(mismatch, fixes)
        elif policy == HALT:
            action = self._halt_action()
        else:
            action = policy
        payload = {**mismatch.payload(), "policy": policy, "action": action, "dry_run": cfg.dry_run}
        self._emit("reconciliation.mismatch", payload, key=mismatch.item)
        if action == ADOPT:
            for fix in fixes:
                self._submit("reconciliation.fixed", fix, key=mismatch.item, critical=True)
                trade = fix.get("trade")
                # Applied once the critical submit returned: did it leave a position flat?
                closed = trade and position_closed_payload(self.store, trade["trade_id"])
                if closed:
                    self._submit("position.closed", closed, key=closed["position_id"])
            report.fixed.append(mismatch.item)
        elif action == HALT:
            report.flagged.append(mismatch.item)
            reason = (
                f"{mismatch.kind} {mismatch.item}: book {mismatch.expected!r}, "
                f"broker {mismatch.actual!r}"
            )
            if control_state(self.store) != ACTIVE:
                reason += f" (escalated from {self._risk_control()})"
            self.risk.halt(BY, reason, mode=cfg.halt_mode)
            report.halted = True
        else:
            report.flagged.append(mismatch.item)

    def _halt_action(self) -> str:
        """'halt' if the risk state is less strict than `halt_mode` (active; or reducing, for
        halted); else what already holds trading, and who set it: no new halt is journaled."""
        state = control_state(self.store)
        if state == ACTIVE or (state == REDUCING and self.config.halt_mode == HALTED):
            return HALT
        return f"none (already {self._risk_control()})"

    def _risk_control(self) -> str:
        """The risk state as an operator reads it: 'reducing by ops: news at 11'."""
        control = self.store.get("risk.control", None) or {}
        state = control.get("state") or control_state(self.store)
        by = control.get("by") or "someone unnamed"
        reason = control.get("reason")
        return f"{state} by {by}: {reason}" if reason else f"{state} by {by}"

    def _adopt_action(self, mismatch: Mismatch, fixes: list[dict[str, Any]]) -> str:
        """'adopt', or why adopting is not done: the book skips a trade whose id it already has,
        so a fix naming one would change nothing, and is not reported as done."""
        taken = [
            fix["trade"]["trade_id"]
            for fix in fixes
            if "trade" in fix
            and self.store.get(f"trading.trades.{fix['trade']['trade_id']}", None) is not None
        ]
        if not taken:
            return ADOPT
        why = f"trade {', '.join(taken)} is already in the book: adopting would change nothing"
        log.warning("%s not adopted: %s", mismatch.item, why)
        return f"flag (not adopted: {why})"

    # -- broker and store -------------------------------------------------------------------
    def _read_broker(self, point: int) -> BrokerView:
        return read_broker(self.broker, self.config, self.store, point, self._sleep)

    def _fill_point(self) -> int:
        """The broker fill_seq up to which the book has every fill (0 for a new account)."""
        last = self.store.get("reconciliation.last_run", None) or {}
        if last.get("account_id") != self.broker.account_id:
            return 0
        return int(last.get("fill_point") or 0)

    def journal_connection(self) -> None:
        """On start: a session that ended while the broker was disconnected left its health
        'degraded' by the disconnect; journal what the broker says now, when they differ."""
        health = self.store.get(f"broker.health.{self.broker.name}", None) or {}
        dropped = health.get("state") == "degraded" and health.get("reason") == DISCONNECTED
        connected = self.broker.is_connected
        if dropped == connected:
            topic = "broker.reconnected" if connected else "broker.disconnected"
            self._emit(topic, {"broker": self.broker.name, "ts_broker": time.time_ns()})

    def _set_health(self, topic: str, reason: str) -> None:
        name = self.broker.name
        state = (self.store.get(f"broker.health.{name}", None) or {}).get("state", "ok")
        if (topic == "broker.degraded") == (state == "degraded"):
            return  # journal changes of health only
        if topic == "broker.degraded":
            log.warning("broker %s degraded: %s", name, reason)
        self._emit(topic, {"broker": name, "reason": reason}, key=name)

    def _emit(self, topic: str, payload: dict[str, Any], key: str = "") -> None:
        self._submit(topic, payload, key=key or self.broker.name, wait=True)
