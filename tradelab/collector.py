"""The cyclic garbage collector of a process that runs a live session.

CPython collects its youngest generation every 700 net container allocations. A live engine
allocates several containers per event (the event, its payload, the store's records), so at 40K
events/s it collected ~25 times a second, and every collection holds the GIL: in a scratch trace
of the 40K/s stream, 40 of them in 8 s took over 1 ms (up to 8 ms; a full one 9–23 ms), each
holding back any critical ack in flight. A process that runs a session (the `tradelab` command,
the console's `panel serve` plugin) therefore collects young objects every 50,000 allocations
and freezes what it holds when the session starts (`gc.freeze`: later full collections skip
it). The state is acyclic plain data that reference counting frees at once, so the collector
rarely finds anything; cycles are still collected, later. Measured in benchmarks/README.md
("The collector").

A library call does not change the process it runs in: a notebook that runs a session opts in
with `tradelab.tune_collector()`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from tradelab.errors import InvalidInputError

YOUNG_EVERY = 50_000  # allocations between young collections (CPython's default: 700)
OLDER_EVERY = 20  # young collections per middle one, middle per full (default: 10, 10)


def tune_collector(
    young_every: int = YOUNG_EVERY, older_every: int = OLDER_EVERY
) -> tuple[int, int, int]:
    """Collect less often and freeze what the process holds now; return the thresholds it had
    (`gc.set_threshold(*previous)` and `gc.unfreeze()` undo it)."""
    if young_every < 1 or older_every < 1:
        raise InvalidInputError(
            f"collector thresholds must be at least 1, got {young_every} and {older_every}"
        )
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(young_every, older_every, older_every)
    return previous


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector while a replay or a replica's catch-up is applied.

    Every event read survives a few young collections (it lives as long as its batch), so a
    replay keeps promoting objects and triggers full collections that walk the whole heap (every
    loaded module): about a third of the replay time. Replay builds acyclic plain data, so
    reference counting frees it all anyway. Process-wide, like every `gc` switch: another
    thread's cyclic garbage waits until the replay ends; a nested or concurrent pause leaves
    the switch to whoever turned it off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
