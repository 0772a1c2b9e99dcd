"""The checks `run_backtest` makes of its settings before it reads a file or creates a journal
(its strategies: `strategy.checked_strategies`): a refused call leaves nothing behind, and its
error names the argument; a strategy a backtest cannot feed is refused (`check_backtestable`). And
the one change it makes to its strategies: `symbols_as_ids`."""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Sequence
from typing import Any

from tradelab.config import EngineConfig
from tradelab.errors import InvalidInputError
from tradelab.market.bar_files import instrument_id
from tradelab.runner.strategy import Strategy

log = logging.getLogger("tradelab.runner.backtest")


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


def symbols_as_ids(strategies: Sequence[Strategy]) -> None:
    """Set a strategy's instrument written as a vendor's ticker (`--param symbol=TCS.NS`) to
    the id a bar file's rows of that ticker trade as (TCS_NS), as `--symbol` takes either
    spelling: set to TCS.NS, it would never see a bar of TCS_NS (nor pass the file's check).
    Only a parameter holding that very name is changed (see `Strategy.symbols_needed`)."""
    for strategy in strategies:
        for name, parameter in strategy.symbols_needed().items():
            as_id = instrument_id(name)
            settable = parameter in strategy.param and getattr(strategy, parameter) == name
            if as_id and as_id != name and settable:
                setattr(strategy, parameter, as_id)


def check_backtestable(strategies: Sequence[Strategy]) -> None:
    """Refuse a strategy that trades options picked at run time (short_straddle, or any whose
    `option_chains_needed()` names an underlying): a backtest plays one symbol's bars, so
    every order would be refused for want of a quote."""
    from tradelab.runner.strategy_names import STRATEGIES  # examples import the runner package

    for strategy in strategies:
        chains = strategy.option_chains_needed()
        if chains:
            registered = STRATEGIES.get(strategy.strategy_name) is type(strategy)
            pick = strategy.strategy_name if registered else f"FILE.py:{type(strategy).__name__}"
            raise InvalidInputError(
                f"strategy {strategy.name!r} trades {', '.join(chains)} options, and a "
                "backtest plays one symbol's bars, so it would have no option quotes to trade "
                "on; replay a file of the index and its options instead: tradelab run --feed "
                f"replay FILE --strategy {pick} --speed max"
            )
        kind = type(strategy)
        if kind.on_tick is not Strategy.on_tick and kind.on_bar is Strategy.on_bar:
            # Not refused: it may trade from on_start or on_fill; but a run without a
            # single call of its trading hook is most likely a surprise.
            log.warning(
                "strategy %s defines on_tick but not on_bar, and a backtest plays bars only "
                "(no ticks): its on_tick is never called; replay the file to feed it ticks: "
                "tradelab run --feed replay FILE --speed max",
                strategy.name,
            )


def check_symbol_pick(strategies: Sequence[Strategy], picked: str, source: str) -> None:
    """A symbol picked from a file (--symbol, symbol=) must be the one each strategy that
    names one trades: the file may hold both, so say which choice disagrees."""
    for strategy in strategies:
        for wanted, parameter in strategy.symbols_needed().items():
            if wanted != picked:
                raise InvalidInputError(
                    f"strategy {strategy.name!r} trades {parameter}={wanted!r}, but --symbol "
                    f"(symbol=) picks {picked!r} of {source}: make them agree"
                )


def check_risk(risk: Any) -> None:
    """A backtest's `risk` is a RiskConfig or None; its daily loss limit is said not to apply."""
    from tradelab.trading.risk_config import RiskConfig

    if risk is None:
        return
    if not isinstance(risk, RiskConfig):
        raise InvalidInputError(
            f"risk {risk!r} must be a tradelab.trading.risk.RiskConfig (pre-trade limits) or None"
        )
    if risk.daily_loss_limit is not None:
        log.warning(
            "risk.daily_loss_limit %s is not applied in a backtest (it resets no daily P&L); "
            "the pre-trade limits are. Replay the file to test it: tradelab run --feed replay "
            "FILE --speed max",
            risk.daily_loss_limit,
        )
