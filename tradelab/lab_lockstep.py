"""A Lab session at max speed, played in lockstep with its runner (`StrategyRunner.lockstep`):
the session opens, then the ticks of one timestamp per runner step, once everything before them
has settled, then it closes; the daily loss check runs between two timestamps.

Thread model: `run_lockstep` runs on the Lab's feed thread and only waits; the steps run on the
runner's thread.
"""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING

from tradelab.lab_sessions import SessionDays, say_if_nothing_was_left
from tradelab.market.ticks import Tick

if TYPE_CHECKING:
    from tradelab.lab import Lab

log = logging.getLogger("tradelab.lab")


def run_lockstep(lab: Lab) -> None:
    """Play `lab`'s session as runner steps; wait here until that is done or `lab.stop()`."""
    ticks = lab._resumed_ticks()
    stage = ["open"]
    held: list[Tick] = []  # the first tick of the next timestamp
    days = SessionDays()
    if lab.resumed_after_ns is not None:  # a restart's next tick may be on a later day
        days.enter(lab.resumed_after_ns)

    def step() -> bool:
        if lab._stop.is_set() or stage[0] == "done":
            return False
        if stage[0] == "open":
            lab.days.open()
            stage[0] = "ticks"
            return True
        lab.risk_monitor.check_logged()  # between two timestamps, once all before has settled
        tick = held.pop() if held else next(ticks, None)
        if tick is None:
            lab.days.close_session()
            say_if_nothing_was_left(lab)
            stage[0] = "done"  # one more step: the strategies' last reactions settle
            return True
        if days.crosses(tick.ts):  # a new day: a step of its own, settled before its ticks
            lab.days.next_day(days.last_ns, tick.ts)
            days.enter(tick.ts)
            held.append(tick)
            return True
        days.enter(tick.ts)
        at, on_tick = tick.ts, lab._route
        while tick is not None and tick.ts == at:
            on_tick(tick)
            tick = next(ticks, None)
        if tick is not None:
            held.append(tick)
        return True

    done = lab.runner.lockstep(step)
    while not lab._stop.is_set():
        try:
            done.result(timeout=0.2)  # raises what a step raised
            return
        except FutureTimeout:
            continue
