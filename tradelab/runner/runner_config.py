"""The strategy runner's settings (`runner` in tradelab.yaml): `RunnerConfig`."""

from __future__ import annotations

import param


class RunnerConfig(param.Parameterized):
    """How the strategies' runner holds what it has not handled yet, and when a strategy's hook
    counts as holding it up."""

    inbox_limit = param.Integer(
        default=100_000,
        bounds=(1, None),
        doc="Entries waiting for the strategies (superseded quotes not counted). Full, a quote "
        "is dropped (counted), and a bar, order event or fill dropped stops every strategy, "
        "which is never fed a gap (events_dropped in the runner's metrics).",
    )
    hook_stall_after_s = param.Number(
        default=5.0,
        bounds=(0.0, None),
        inclusive_bounds=(False, True),
        doc="Seconds a strategy's hook (on_bar, on_fill ...) may run before it is logged as "
        "holding the runner and shown in the console's metrics (stalled_hook).",
    )
