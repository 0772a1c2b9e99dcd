"""The checks `run_backtest` makes of its arguments before it reads a file or creates a
journal: a refused call leaves nothing behind, and its error names the argument."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from tradelab.config import EngineConfig
from tradelab.errors import InvalidInputError
from tradelab.runner.strategy import Strategy


def checked_strategies(strategy: Any) -> list[Strategy]:
    """The strategies to run: one instance or a sequence of them, with distinct names; anything
    else is refused before a file is touched."""
    if isinstance(strategy, Strategy):
        return [strategy]
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        raise InvalidInputError(
            f"strategy {strategy.__name__} is a class; pass an instance, e.g. "
            f"{strategy.__name__}() or {strategy.__name__}(size=2)"
        )
    if isinstance(strategy, str) or not isinstance(strategy, Sequence):
        hint = (
            f"; for a strategy by name, make_strategy({strategy!r}, {{...}})"
            if isinstance(strategy, str)
            else ""
        )
        raise InvalidInputError(
            f"strategy {strategy!r} is not a Strategy instance or a list of them{hint}"
        )
    strategies = list(strategy)
    if not strategies:
        raise InvalidInputError("no strategy to backtest; pass one (e.g. SmaCross()) or several")
    names: set[str] = set()
    for one in strategies:
        if not isinstance(one, Strategy):
            checked_strategies(one)  # raises, naming what it is
        if one.name in names:
            raise InvalidInputError(
                f"two strategies are named {one.name!r}; give each its own name= to run both"
            )
        names.add(one.name)
    return strategies


def check_settings(
    cash: Any, commission: Any, fee_per_fill: Any, overrides: Any, progress: Any
) -> None:
    def real(value: Any) -> bool:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)

    if not (real(cash) and math.isfinite(cash) and cash > 0):
        raise InvalidInputError(f"cash {cash!r} must be a finite amount > 0")
    if not (real(commission) and 0.0 <= commission <= 0.1):
        raise InvalidInputError(f"commission {commission!r} must be a fraction in [0, 0.1]")
    if not (real(fee_per_fill) and math.isfinite(fee_per_fill) and fee_per_fill >= 0):
        raise InvalidInputError(f"fee_per_fill {fee_per_fill!r} must be a finite amount >= 0")
    if progress is not None and not callable(progress):
        raise InvalidInputError(f"progress {progress!r} must be a callable(done, total) or None")
    if overrides is not None:
        unknown = sorted(set(overrides) - set(EngineConfig.param) - {"name"})
        if unknown:
            raise InvalidInputError(
                f"engine_overrides has no setting {unknown[0]!r}; the engine's settings are "
                f"{', '.join(sorted(n for n in EngineConfig.param if n != 'name'))}"
            )
