"""The exit levels the position monitor keeps, as state: `trading.exits.<position id>`.

Each `trade.exit_updated` stores the position's levels as they stand (stop, target, trail, the
best price a trailing stop has seen, the exit order in flight), so a restarted runner re-arms
them (PositionMonitor.restore) instead of leaving an open position with no stop. A level that
fired and whose exit was refused (trading halted) keeps the refusal (`refused`) until the next
update or until trading resumes (then the level is armed again: the monitor tries the exit at the
next mark past it), so the console shows the stop as hit, not as armed. Cleared levels and a
closed position delete the entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tradelab.events import Event
from tradelab.state import DELETE
from tradelab.state.paths import path_level

Change = tuple[str, Any]
LEVELS = ("stop", "target", "trail")


def exit_updated_reducer(view: Any, event: Event) -> Iterable[Change]:
    p = event.payload
    pid = path_level(p["position_id"], "position id")
    path = f"trading.exits.{pid}"
    if all(p.get(name) is None for name in LEVELS):
        return [(path, DELETE)] if view.get(path) is not None else []
    levels = {name: p.get(name) for name in (*LEVELS, "best", "exit_order")}
    if p.get("reason") == "exit_refused":
        levels["refused"] = str(p.get("refusal") or "refused")
    levels["updated_ts"] = event.ts
    levels["seq"] = event.seq
    return [(path, levels)]


def rearmed_on_resume(view: Any, event: Event) -> Iterable[Change]:
    """Trading resumed: a refused exit's level is armed again, no longer refused."""
    return [
        (f"trading.exits.{pid}", {k: v for k, v in levels.items() if k != "refused"})
        for pid, levels in (view.get("trading.exits", None) or {}).items()
        if "refused" in levels
    ]


def dropped_on_close(view: Any, position_id: str) -> list[Change]:
    """The exit entry of a position that closed, deleted (none: nothing to do)."""
    path = f"trading.exits.{position_id}"
    return [(path, DELETE)] if view.get(path) is not None else []


def reducers() -> dict[str, list[Callable[[Any, Event], Iterable[Change]]]]:
    return {"trade.exit_updated": [exit_updated_reducer], "risk.resumed": [rearmed_on_resume]}
