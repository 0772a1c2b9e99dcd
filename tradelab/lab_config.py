"""`LabConfig` and how a Lab turns it into its parts: the configured strategies and, for
feed='replay', the replay feed with the universe and session its bar file spans."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import param

from tradelab.config import DAY_S
from tradelab.errors import InvalidInputError, TradelabError
from tradelab.journal.journal_file import NO_EXTENSIONS
from tradelab.journal.journal_lock import journal_lock_path
from tradelab.journal.segments import list_segments, segment_dir
from tradelab.market.bars import (
    LONGEST_SESSION_BAR_S,
    interval_seconds,
)
from tradelab.market.clock import NS_PER_S
from tradelab.market.feeds import (
    ReplayFeed,
    ReplayFeedConfig,
    SimulatedFeed,
    SimulatedFeedConfig,
)
from tradelab.market.instruments import IST, OptionUniverse
from tradelab.runner import STRATEGIES, InstrumentUniverse, PlainInstrument
from tradelab.runner.barfile import file_bar_length_ns
from tradelab.runner.strategy import (
    Strategy,
    check_strategy_inputs,
    checked_numbers,
    coerce_params,
    constructed,
)
from tradelab.runner.strategy_names import strategy_class_named

NO_STRATEGY = "none"

log = logging.getLogger(__name__)


class FilePath(param.String):
    """Text naming a file: blank text names none (as a path it would be the current folder)."""

    def _validate_value(self, value: Any, allow_None: bool) -> None:
        super()._validate_value(value, allow_None)
        if isinstance(value, str) and not value.strip():
            raise ValueError("an empty path names no file; give a file path, e.g. data/lab.duckdb")


class BarLengths(param.List):
    """Bar lengths such as '1m', '3m', '30m', '1h': each a whole number of s, m or h, at most 1h."""

    allowed_text = "a list of bar lengths of at most 1h, e.g. '1m', '3m', '15m', '1h'"

    def _validate_value(self, value: Any, allow_None: bool) -> None:
        super()._validate_value(value, allow_None)
        for length in value or ():
            seconds = interval_seconds(length)
            if seconds is None or seconds > LONGEST_SESSION_BAR_S:
                raise ValueError(
                    f"{length!r} is not a bar length of at most 1h (a whole number of s, m or h, "
                    "e.g. '1m', '3m', '1h')"
                )


class LabConfig(param.Parameterized):
    """The embedded default: where the journal lives, which market runs and what trades it."""

    journal_path = FilePath(default="data/lab.duckdb", doc="DuckDB journal of the session.")
    seed = param.Integer(
        default=7, bounds=(0, None), doc="Seed of the simulated market (same seed, same ticks)."
    )
    ticks_per_second = param.Integer(
        default=500, bounds=(1, 10_000), doc="Ticks per wall-clock second."
    )
    speed = param.Number(
        default=60.0, bounds=(0.001, 1_000_000.0), doc="Simulated seconds per wall second."
    )
    as_fast_as_possible = param.Boolean(
        default=False,
        doc="Ignore `speed`: play the market with no pacing at all, in lockstep with the "
        "strategies (the same file or seed gives the same journal).",
    )
    feed_stall_after_seconds = param.Number(
        default=0.0,
        bounds=(0.0, DAY_S),
        doc="Fault injection for tests and demos: the paced feed goes silent this many wall "
        "seconds after it starts, its session left open, as a dead market-data line would "
        "(0: never; not with as_fast_as_possible).",
    )
    strikes_each_side = param.Integer(
        default=5,
        bounds=(0, 40),
        doc="Option strikes quoted either side of the ATM strike (listed anew as the index moves).",
    )
    feed = param.Selector(
        default="sim",
        objects=["sim", "replay"],
        doc="'sim': the seeded simulated session; 'replay': the bar file `replay_path`.",
    )
    replay_path = param.String(
        default="data/nifty_sample_1m.csv",
        doc="Bar file replayed with feed='replay' (CSV/Parquet: timestamp or Date, open, high, "
        "low, close, optional symbol and volume, any case; no symbol: the file's name).",
    )
    bar_intervals = BarLengths(
        default=["15m", "1h"],
        item_type=str,
        doc="Bar lengths built from the feed's quotes, each at most 1h (1m, 3m, 15m, 1h...): "
        "what strategies get in on_bar and the "
        "console charts. A replay also builds its file's own bar length when it is 1h or "
        "shorter (a 1-minute file gives 1m bars too, a 30-minute one 30m), from the 09:15 open.",
    )
    strategy = param.String(
        default="short_straddle",
        doc="Strategy the session trades: an example (short_straddle, sma_cross), your own "
        "Strategy subclass as FILE.py:Class or module:Class, or 'none' (the market only).",
    )
    metrics_sample_seconds = param.Number(
        default=10.0,
        bounds=(0.0, DAY_S),
        doc="Seconds between journaled `metrics.sampled` "
        "events (0: none; none at speed max, sim or replay: its journal must not depend on "
        "wall time).",
    )
    book_history_sessions = param.Integer(
        default=5,
        bounds=(1, 100_000),
        doc="Sessions of finished orders and fills the live book keeps (working orders, open "
        "positions and their fills stay); the journal keeps all of them, and the trades table "
        "and analytics read it there.",
    )
    strategy_params = param.Dict(
        default={},
        doc="Parameters of `strategy`: name -> value (text such as '5' is converted).",
    )


def check_lab_parts(**parts: Any) -> None:
    """Each of Lab's settings objects (`config`, `risk`, `engine`...) is its own config class
    or None: a dict or another object would only fail later, deep in an order or on a thread
    of its own (the daily loss monitor's), leaving the session running unchecked."""
    from tradelab.broker import PaperBrokerConfig
    from tradelab.broker.reconcile import ReconcilerConfig
    from tradelab.config import EngineConfig
    from tradelab.runner.runner_config import RunnerConfig
    from tradelab.trading.risk import RiskConfig

    kinds = {
        "config": LabConfig,
        "risk": RiskConfig,
        "reconciler": ReconcilerConfig,
        "engine": EngineConfig,
        "sim_feed": SimulatedFeedConfig,
        "replay_feed": ReplayFeedConfig,
        "broker": PaperBrokerConfig,
        "runner": RunnerConfig,
    }
    for name, value in parts.items():
        kind = kinds[name]
        if value is None or isinstance(value, kind):
            continue
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        hint = ""
        if isinstance(value, dict):
            hint = (
                "; pass settings as keywords: Lab(**settings)"
                if name == "config"
                else f"; make one of the dict: {kind.__name__}(**settings)"
            )
        article = "an" if kind.__name__[0] in "AEIOU" else "a"
        raise InvalidInputError(
            f"Lab's {name} must be {article} {kind.__name__} or None (the defaults), got "
            f"{type(value).__name__} {shown}{hint}"
        )


def lab_settings(config: LabConfig | None, overrides: dict[str, Any]) -> LabConfig:
    """`Lab(config, **overrides)`'s settings: `config` (defaults if None) with `overrides`, on a
    copy when there are any, so the caller's config stays as they made it."""
    if config is None:
        config = LabConfig()
    elif overrides:
        config = type(config)(**config_values(config))  # a subclass's own settings too
    if overrides:
        apply_settings(config, overrides)
    return config


def apply_settings(cfg: LabConfig, settings: dict[str, Any]) -> None:
    """`Lab(**settings)` onto `cfg`: a path may be a Path; an unknown name or a bad value is an
    InvalidInputError naming the setting, and leaves `cfg` unchanged."""
    known = sorted(n for n in cfg.param if n != "name")
    for key in settings:
        if key not in known:
            raise InvalidInputError(
                f"Lab has no setting {key!r}; its settings are {', '.join(known)}"
            )
    values = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in settings.items()}
    try:
        type(cfg)(**{**cfg.param.values(), **values})  # tried on a copy first: all or nothing
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"Lab setting refused: {exc}") from None
    cfg.param.update(**values)


def configured_strategies(cfg: LabConfig) -> list[Strategy]:
    if cfg.strategy == NO_STRATEGY:
        if cfg.strategy_params:
            raise InvalidInputError(
                f"strategy parameters {', '.join(cfg.strategy_params)} given with strategy "
                f"'{NO_STRATEGY}'; choose one of {', '.join(STRATEGIES)}"
            )
        return []
    cls = strategy_class_named(cfg.strategy, also=(NO_STRATEGY,))
    text = {k: v for k, v in cfg.strategy_params.items() if isinstance(v, str)}
    typed = {k: v for k, v in cfg.strategy_params.items() if not isinstance(v, str)}
    values = checked_numbers(cls, {**typed, **coerce_params(cls, text)}, cls.strategy_name)
    return [constructed(cls, values, cfg.strategy)]


def config_values(config: param.Parameterized | None) -> dict[str, Any]:
    """A config's values to build a copy from (the lab's own settings are then given over)."""
    if config is None:
        return {}
    values = config.param.values()
    values.pop("name", None)
    return values


def check_lab_together(lab: LabConfig, where: str) -> None:
    """Settings each allowed alone that a session refuses together, said here too, so that
    `tradelab config` passes no file `run` would refuse."""
    if not lab.bar_intervals:
        raise InvalidInputError(
            f"lab.bar_intervals{where} is empty; choose one or more bar lengths of at most "
            "1h, e.g. 1m, 5m, 15m, 1h"
        )
    if lab.feed_stall_after_seconds and lab.as_fast_as_possible:
        raise InvalidInputError(
            f"lab.feed_stall_after_seconds{where} needs a paced feed (it stalls after wall "
            "seconds); lab.as_fast_as_possible has no wall clock"
        )


def tradable_symbols(universe: Any, symbols: set[str]) -> set[str]:
    """Of the symbols a session quotes, those its broker takes orders in (a simulated
    session quotes the index but trades only its options)."""
    tradable = set()
    for symbol in symbols:
        try:
            universe.parse(symbol)
        except TradelabError:
            continue
        tradable.add(symbol)
    return tradable


def session_inputs_check(
    cfg: LabConfig, symbols: set[str], intervals: tuple[str, ...], tradable: set[str] | None = None
) -> Callable[[Sequence[Strategy]], None]:
    """`check_strategy_inputs` for a session of `symbols` (a simulated session's are fixed
    when built: no BANKNIFTY, ever) building bars of `intervals`: an instrument it lacks is
    named as missing from its instruments, a bar interval from lab.bar_intervals."""
    replayed = f"bar file {cfg.replay_path!r}, " if cfg.feed == "replay" else ""
    return functools.partial(
        check_strategy_inputs,
        source=f"this session ({replayed}lab.bar_intervals)",
        symbols_source="this session's instrument list"
        + (f" (bar file {cfg.replay_path!r})" if replayed else ""),
        symbols=symbols,
        intervals=intervals,
        tradable=tradable,
    )


def check_not_a_backtest(journal_path: str) -> None:
    """Refuse a session on a backtest's journal (`tradelab backtest --journal`): its events would
    be mixed into the backtest's trades and P&L. Read from the first sealed segment (a backtest
    starts its runner in its first events and seals on stop); without one (the journal moved or
    copied on its own), from the journal's first events, but only while no engine holds it (no
    `.lock` beside it): a second handle in the holder's process would break DuckDB's lock."""
    question = (
        "SELECT 1 FROM {} WHERE seq <= 1000 AND topic = 'runner.started' AND "
        "json_extract_string(payload, '$.runner') = 'backtest' LIMIT 1"
    )
    segments = list_segments(segment_dir(Path(journal_path)))
    try:
        if segments:
            with duckdb.connect() as con:
                query = question.format("read_parquet(?)")
                found = con.execute(query, [str(segments[0][2])]).fetchall()
        elif Path(journal_path).is_file() and not journal_lock_path(journal_path).exists():
            with duckdb.connect(journal_path, read_only=True, config=NO_EXTENSIONS) as con:
                found = con.execute(question.format("events")).fetchall()
        else:
            return
    except duckdb.Error:  # damaged, or not a journal: the engine's recovery names it
        return
    if found:
        raise InvalidInputError(
            f"journal {journal_path!r} holds a backtest; a session run on it would mix its "
            "events into the backtest's trades: give the session a journal of its own"
        )


def check_tradable_hours(feed: ReplayFeed, strategies: list[Strategy]) -> None:
    """Refuse to trade a bar file none of whose bars falls in the exchange's hours (daily bars
    stamped 00:00 IST, a US stock's minutes): the session's broker takes orders only then, so
    every order would be refused. Without strategies the file is only replayed."""
    if not strategies or feed.bars.empty:
        return
    hours = feed.hours
    times = pd.to_datetime(feed.bars["timestamp"], unit="ns", utc=True).dt.tz_convert(IST)
    clock = times.dt.time
    if ((clock >= hours.open_time) & (clock < hours.close_time)).any():
        return
    first = times.iloc[0]
    raise InvalidInputError(
        f"bar file {feed.config.path!r} has no bar within exchange hours "
        f"({hours.open_time:%H:%M}-{hours.close_time:%H:%M} IST; its first is at "
        f"{first:%Y-%m-%d %H:%M} IST): a session's paper broker would refuse every order. "
        "Backtest it instead (tradelab backtest FILE --strategy ...: no exchange hours), or "
        "replay it with --strategy none"
    )


def sim_session(
    cfg: LabConfig, feed_config: SimulatedFeedConfig | None = None
) -> tuple[SimulatedFeed, Any, int, int]:
    """The simulated NIFTY feed `cfg` sets (seed, pace, strikes; the rest from `feed_config`),
    its universe and the session it spans."""
    values = {
        **config_values(feed_config),
        "seed": cfg.seed,
        "ticks_per_second": cfg.ticks_per_second,
        "speed": cfg.speed,
        "as_fast_as_possible": cfg.as_fast_as_possible,
        "strikes_each_side": cfg.strikes_each_side,
    }
    feed = SimulatedFeed(SimulatedFeedConfig(**values))
    return feed, feed.universe, feed.open_ns, feed.close_ns


def replay_session(
    cfg: LabConfig, feed_config: ReplayFeedConfig | None = None
) -> tuple[ReplayFeed, InstrumentUniverse, int, int]:
    """The replay feed of `cfg.replay_path`, a universe knowing its plain (non-option) symbols,
    and the session it spans (first bar start, last bar end)."""
    values = {
        **config_values(feed_config),
        "path": cfg.replay_path,
        "speed": cfg.speed,
        "as_fast_as_possible": cfg.as_fast_as_possible,
    }
    feed = ReplayFeed(ReplayFeedConfig(**values))
    times = feed.bars["timestamp"]
    # The bar length is the file's own (1m, 15m, 1d), read from its timestamps.
    length = file_bar_length_ns(times.to_numpy(dtype="int64"))
    bar_seconds = length // NS_PER_S if length else 60
    feed.config.bar_seconds = min(max(bar_seconds, 1), 86_400)
    feed.file_bar_seconds = bar_seconds
    options = OptionUniverse()
    plain = {}
    for symbol in feed.bars["symbol"].unique():
        try:
            options.parse(symbol)
        except InvalidInputError:  # an index or a stock: lot size 1, margin on its price
            plain[symbol] = PlainInstrument(str(symbol), 1)
    universe = InstrumentUniverse(plain, options)
    return (
        feed,
        universe,
        int(times.iloc[0]),
        int(times.iloc[-1]) + feed.config.bar_seconds * NS_PER_S,
    )
