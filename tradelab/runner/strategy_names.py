"""Strategies by name, as the command line, config files and the console give them: an example
from the registry (`STRATEGIES`) or a user's own as `FILE.py:Class` or `module:Class`."""

from __future__ import annotations

from collections.abc import Sequence

from tradelab.errors import InvalidInputError
from tradelab.runner.examples import ShortStraddle, SmaCross
from tradelab.runner.strategy import Strategy, checked_numbers, coerce_params, constructed
from tradelab.runner.user_strategies import strategy_class

STRATEGIES: dict[str, type[Strategy]] = {
    SmaCross.strategy_name: SmaCross,
    ShortStraddle.strategy_name: ShortStraddle,
}


def strategy_class_named(name: str, *, also: Sequence[str] = ()) -> type[Strategy]:
    """The Strategy subclass `name` picks: an example from the registry by name, or a user's
    own as `FILE.py:Class` or `module:Class`. What is not found is refused naming it and the
    names known, with `also`: the caller's other choices (a session's 'none')."""
    cls = STRATEGIES.get(name) or (strategy_class(name) if ":" in name else None)
    if cls is None:
        raise InvalidInputError(
            f"no strategy named {name!r}; known: {', '.join([*STRATEGIES, *also])}, or your "
            "own as FILE.py:Class or module:Class"
        )
    return cls


def make_strategy(name: str, params: dict[str, str] | None = None) -> Strategy:
    """The strategy `name` picks (`strategy_class_named`), with text parameters (`fast=5`)
    converted."""
    cls = strategy_class_named(name)
    # Named as the strategy calls itself (its own file's path says little), as the console does.
    shown = cls.strategy_name
    values = checked_numbers(cls, coerce_params(cls, params or {}), shown)
    return constructed(cls, values, name)  # its construction: the spec says where to look
