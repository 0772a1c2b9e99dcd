"""What the operator decided about each strategy, as state: `runner.by_strategy.<name>`.

{state, who, reason, params, held, operator_params}: the last transition and parameters, plus
what outlives a restart. `held` is a stop or pause an operator asked for (a transition journaled
with `hold`: not the session's own stop at shutdown, nor a failure): a restarted runner keeps
the strategy stopped or paused (StrategyRunner), as a risk halt is kept. `operator_params` are
the values set with `set_params` (the console's form): a restarted runner applies them over the
configured ones.
Pure reducers of (view, event); replicas see the same record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tradelab.errors import InvalidInputError
from tradelab.events import Event
from tradelab.state.paths import path_level

log = logging.getLogger(__name__)

Change = tuple[str, Any]
HELD_STATES = ("stopped", "paused")


def _record(view: Any, event: Event) -> tuple[str, dict[str, Any]]:
    name = path_level(event.payload["strategy"], "strategy name")
    path = f"runner.by_strategy.{name}"
    return path, dict(view.get(path) or {})


def state_changed_reducer(view: Any, event: Event) -> Iterable[Change]:
    p = event.payload
    if "strategy" not in p:
        return []
    path, record = _record(view, event)
    state, who = p.get("state"), p.get("who")
    record.update(state=state, who=who, reason=p.get("reason", ""), ts=event.ts)
    if "params" in p:
        record["params"] = p["params"]
    if "hold" in p:  # an operator's stop or pause (kept), or a start or resume (lifted)
        record["held"] = (
            {"state": state, "who": who, "reason": p.get("reason", ""), "seq": event.seq}
            if p["hold"] and state in HELD_STATES
            else None
        )
    return [(path, record)]


def params_changed_reducer(view: Any, event: Event) -> Iterable[Change]:
    p = event.payload
    path, record = _record(view, event)
    changed = dict(p.get("params") or {})
    record["params"] = {**(record.get("params") or {}), **changed}
    record["operator_params"] = {**(record.get("operator_params") or {}), **changed}
    record["params_set_by"] = p.get("who")
    return [(path, record)]


def trade_logged_reducer(view: Any, event: Event) -> Iterable[Change]:
    """`trading.logged_exits.<position_id>`: the exit fill of the position's last round trip in
    the trade log, so a runner starting later logs one that closed while none ran (tradelog)."""
    p = event.payload
    pid = path_level(p["position_id"], "position id")
    return [(f"trading.logged_exits.{pid}", p.get("exit_trade_id"))]


def reducers() -> dict[str, list[Callable[[Any, Event], Iterable[Change]]]]:
    return {
        "runner.state_changed": [state_changed_reducer],
        "runner.params_changed": [params_changed_reducer],
        "trade.logged": [trade_logged_reducer],
    }


def restored_params(
    strategy: Any, saved: Mapping[str, Any] | None, inputs_check: Callable | None = None
) -> None:
    """Put back on `strategy` the values an operator set before a restart (`operator_params`).
    Values this session refuses (a parameter gone, an instrument it lacks) are left out, with a
    warning: the configured ones stand."""
    if not saved:
        return
    from tradelab.runner.strategy import checked_params

    try:
        values = checked_params(strategy, dict(saved), inputs_check)
    except InvalidInputError as exc:
        log.warning(
            "strategy %s: parameters set before the restart not applied: %s", strategy.name, exc
        )
        return
    replaced = {
        name: (getattr(strategy, name), value)
        for name, value in values.items()
        if getattr(strategy, name) != value
    }
    if replaced:  # a --param or config value given for this run does not take: say so
        log.warning(
            "strategy %s: parameters set before the restart (by an operator or by itself) "
            "replace the configured ones: %s (change them in the console to set them again)",
            strategy.name,
            ", ".join(
                f"{name}={new!r} (configured {old!r})" for name, (old, new) in replaced.items()
            ),
        )
    strategy.param.update(**values)
