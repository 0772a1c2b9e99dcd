"""The risk control state in the store, and its reducers: active, halted or reducing.

`risk.control` = {state, by, reason, ts, seq} is written only by journaled `risk.halted` /
`risk.resumed` events and by the daily loss breach itself, so a halt survives a restart and a
kill -9 like any other state.
(tradelab.state.reducers keeps `risk.state` / `risk.halt` for the same topics; these add the
mode and who asked.) Pure functions of (view, event); thread-free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tradelab.errors import InvalidInputError
from tradelab.events import Event

Change = tuple[str, Any]
ACTIVE, HALTED, REDUCING = "active", "halted", "reducing"
HALT_MODES = (HALTED, REDUCING)


def control_state(view: Any) -> str:
    """`active`, `halted` (no new orders) or `reducing` (only orders that shrink a position)."""
    control = view.get("risk.control", None)
    if control is not None:
        return control["state"]
    # A halt journaled without the desk's payload (an operator tool, an older journal).
    state = view.get("risk.state", None)
    return state if state in HALT_MODES else ACTIVE


def halted_reducer(view: Any, event: Event) -> Iterable[Change]:
    """payload: reason, by (optional), mode 'halted' | 'reducing' (optional, default halted)."""
    mode = event.payload.get("mode", HALTED)
    if mode not in HALT_MODES:
        raise InvalidInputError(
            f"risk.halted mode {mode!r} is not one of {', '.join(map(repr, HALT_MODES))}"
        )
    return [("risk.control", _control(event, mode))]


def resumed_reducer(view: Any, event: Event) -> Iterable[Change]:
    """payload: by, reason (an operator's command) -> risk.control.state = active."""
    return [("risk.control", _control(event, ACTIVE))]


def breach_reducer(view: Any, event: Event) -> Iterable[Change]:
    """payload: session_date (optional) -> risk.breached_session: one breach per trading day
    ('' for P&L never reset to a session: one breach until it is); action 'halted' | 'reducing'
    (optional) -> risk.control in that state, by 'risk'; flatten (optional) -> risk.breach =
    {session_date, action, flatten, seq}: what a restart finishes if a crash cut it short.

    The breach halts by itself: the `risk.halted` journaled after it is then a no-op for the
    state, and a crash between the two cannot leave a breached day trading (the monitor never
    breaches a day twice)."""
    payload = event.payload
    session = payload.get("session_date")
    changes: list[Change] = [("risk.breached_session", session if session is not None else "")]
    mode = payload.get("action")
    flatten = bool(payload.get("flatten"))
    breach = {"session_date": session, "action": mode, "flatten": flatten, "seq": event.seq}
    changes.append(("risk.breach", breach))
    if mode in HALT_MODES:
        reason = breach_reason(payload.get("daily_pnl"), payload.get("limit"))
        control = {"state": mode, "by": "risk", "reason": reason, "ts": event.ts, "seq": event.seq}
        changes.append(("risk.control", control))
    return changes


def breach_reason(daily_pnl: Any, limit: Any) -> str:
    """Why the monitor halted: the same words on the breach's halt and on `risk.halted`."""
    try:
        # `or 0.0`: a limit of 0 reads 0.00, not -0.00.
        return f"daily P&L {daily_pnl:,.2f} crossed the daily loss limit {-limit or 0.0:,.2f}"
    except (TypeError, ValueError):  # a breach journaled by another tool, without the numbers
        return "the daily loss limit was crossed"


def _control(event: Event, state: str) -> dict[str, Any]:
    return {
        "state": state,
        "by": str(event.payload.get("by", "")),
        "reason": str(event.payload.get("reason", "")),
        "ts": event.ts,
        "seq": event.seq,
    }


def reducers() -> dict[str, list[Callable[[Any, Event], Iterable[Change]]]]:
    return {
        "risk.halted": [halted_reducer],
        "risk.resumed": [resumed_reducer],
        "risk.daily_loss_breached": [breach_reducer],
    }
