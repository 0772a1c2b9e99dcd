"""`tradelab.yaml`: one settings file mapped onto the param config classes, one section each.

`load_settings` reads a file (and dotted `section.key` overrides) into `Settings`, validating
every value with param itself; `settings_dump.dump_settings` writes settings back as a
documented YAML file (what `tradelab config` prints). No threads; called by the command line before anything starts.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import param

from tradelab.broker import PaperBrokerConfig
from tradelab.broker.reconcile import ReconcilerConfig
from tradelab.config import EngineConfig
from tradelab.errors import InvalidInputError
from tradelab.lab import Lab
from tradelab.lab_config import NO_STRATEGY, LabConfig, check_lab_together
from tradelab.market.feeds import ReplayFeedConfig, SimulatedFeedConfig
from tradelab.runner import STRATEGIES
from tradelab.runner.runner_config import RunnerConfig
from tradelab.runner.strategy import checked_number, coerce_params, constructed
from tradelab.runner.strategy_names import strategy_class_named
from tradelab.settings_yaml import read_yaml
from tradelab.trading.risk import RiskConfig
from tradelab.ui.config import ConsoleConfig

DEFAULT_FILE = "tradelab.yaml"

SECTIONS: dict[str, type[param.Parameterized]] = {
    "lab": LabConfig,
    "engine": EngineConfig,
    "sim_feed": SimulatedFeedConfig,
    "replay_feed": ReplayFeedConfig,
    "broker": PaperBrokerConfig,
    "risk": RiskConfig,
    "reconciler": ReconcilerConfig,
    "runner": RunnerConfig,
    "console": ConsoleConfig,
}

# Settings a Lab takes from its `lab` section: kept out of their own sections, where a second
# value would silently lose to the first.
SET_ELSEWHERE: dict[str, dict[str, str]] = {
    "engine": {
        "journal_path": "lab.journal_path",
        # The schema this code builds, not a choice: a journal written under another number is
        # one this tradelab then refuses. A program that migrates passes it to Engine itself.
        "state_schema_version": "this tradelab's code",
    },
    "sim_feed": {
        "seed": "lab.seed",
        "ticks_per_second": "lab.ticks_per_second",
        "speed": "lab.speed",
        "as_fast_as_possible": "lab.as_fast_as_possible",
        "strikes_each_side": "lab.strikes_each_side",
    },
    "replay_feed": {
        "path": "lab.replay_path",
        "speed": "lab.speed",
        "as_fast_as_possible": "lab.as_fast_as_possible",
        "bar_seconds": "the bar file's own timestamps",
    },
}


@dataclass
class Settings:
    """One config object per section, validated; `make_lab()` builds the session they describe."""

    lab: LabConfig
    engine: EngineConfig
    sim_feed: SimulatedFeedConfig
    replay_feed: ReplayFeedConfig
    broker: PaperBrokerConfig
    risk: RiskConfig
    reconciler: ReconcilerConfig
    runner: RunnerConfig
    console: ConsoleConfig

    def make_lab(self) -> Lab:
        return Lab(
            self.lab,
            engine=self.engine,
            sim_feed=self.sim_feed,
            replay_feed=self.replay_feed,
            broker=self.broker,
            risk=self.risk,
            reconciler=self.reconciler,
            runner=self.runner,
        )


def section_keys(section: str) -> list[str]:
    """The keys a section takes, in the class's declaration order."""
    skip = SET_ELSEWHERE.get(section, {})
    return [k for k in SECTIONS[section].param if k != "name" and k not in skip]


def read_file(path: str | Path) -> dict[str, Any]:
    """The YAML mapping in `path` (an empty file is no settings); a bad file is an error."""
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"config file {str(path)!r} holds a {type(data).__name__}; expected a mapping of "
            f"sections ({', '.join(SECTIONS)})"
        )
    return data


def load_settings(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Defaults, then the file at `path`, then `overrides` ({"lab.seed": 3, ...}); validated."""
    data = read_file(path) if path is not None else {}
    where = f" in {str(path)!r}" if path is not None else ""
    settings = parse_settings(data, where)
    if path is not None:
        _strategy_file_beside(settings.lab, Path(path))
    _check_strategy_params(settings.lab, where)
    check_lab_together(settings.lab, where)
    if overrides:
        apply_overrides(settings, overrides)
    return settings


def engine_settings(path: str | Path) -> dict[str, Any]:
    """The `engine` section of the file at `path`, as Engine overrides: the settings it changes
    from their defaults only, so a backtest's own (no timed snapshots, its pipe and commit
    pace) stay unless the file asks otherwise."""
    engine = load_settings(path).engine
    default = type(engine)()
    return {
        key: getattr(engine, key)
        for key in section_keys("engine")
        if getattr(engine, key) != getattr(default, key)
    }


def risk_limits(path: str | Path) -> RiskConfig | None:
    """The `risk` section of the file at `path`, or None when it sets no limit (a backtest
    then runs without a risk gate, as before it took one)."""
    risk = load_settings(path).risk
    limits = [k for k in section_keys("risk") if k.startswith(("max_", "daily_loss"))]
    return risk if any(getattr(risk, k) is not None for k in limits) else None


def set_but_unused_by_backtest(path: str | Path) -> list[str]:
    """The file's settings a backtest does not use that it changes from their defaults: the
    lab's strategy and its parameters (a backtest takes --strategy and --param) and the paper
    broker (a backtest has its own fill model, --cash and --commission)."""
    settings = load_settings(path)
    unused = [
        f"lab.{key}"
        for key in ("strategy", "strategy_params")
        if getattr(settings.lab, key) != type(settings.lab).param[key].default
    ]
    broker, default = settings.broker, type(settings.broker)()
    return unused + [
        f"broker.{key}"
        for key in section_keys("broker")
        if getattr(broker, key) != getattr(default, key)
    ]


def apply_overrides(settings: Settings, overrides: Mapping[str, Any]) -> None:
    """Set dotted keys ({"lab.seed": 3}) on `settings`, checked as a file's values are."""
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        _set(settings, section, key, value, "")
    _check_strategy_params(settings.lab, "")
    check_lab_together(settings.lab, "")


def parse_settings(data: Mapping[str, Any], where: str = "") -> Settings:
    """`Settings` from a mapping of sections; an unknown section or key, or a value param
    refuses, is an InvalidInputError naming the dotted key and what it allows."""
    objects = {name: cls() for name, cls in SECTIONS.items()}
    settings = Settings(**objects)
    for section, values in data.items():
        if section not in SECTIONS:
            raise InvalidInputError(
                f"unknown section {section!r}{where}; expected one of {', '.join(SECTIONS)}"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise InvalidInputError(
                f"section {section!r}{where} holds {_kind(values)}; expected a mapping "
                f"of its settings ({', '.join(section_keys(section))})"
            )
        for key, value in values.items():
            _set(settings, section, str(key), value, where)
    return settings


def _set(settings: Settings, section: str, key: str, value: Any, where: str) -> None:
    if section not in SECTIONS:
        raise InvalidInputError(
            f"unknown section {section!r}; expected one of {', '.join(SECTIONS)}"
        )
    dotted = f"{section}.{key}"
    elsewhere = SET_ELSEWHERE.get(section, {}).get(key)
    if dotted == "engine.state_schema_version" and value == EngineConfig.state_schema_version:
        return  # the code's own value, as `tradelab config` printed it before: nothing to do
    if elsewhere is not None:
        raise InvalidInputError(
            f"{dotted}{where} is not a setting: it comes from {elsewhere}; delete this line"
        )
    if key not in section_keys(section):
        raise InvalidInputError(
            f"unknown setting {dotted}{where}; {section} takes {', '.join(section_keys(section))}"
        )
    target = getattr(settings, section)
    parameter = type(target).param[key]
    if isinstance(value, bool) and isinstance(parameter, param.Number):  # Integer too
        # param takes True as 1; in YAML `seed: true` is a slip, not a number.
        raise InvalidInputError(
            f"{dotted}{where}: {_cut(value)} is refused (a yes/no, not a number); allowed: "
            f"{allowed(parameter)}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        # param's bounds let infinity through; a wait of .inf then overflows at run time
        raise InvalidInputError(
            f"{dotted}{where}: {_cut(value)} is refused (not a finite number); allowed: "
            f"{allowed(parameter)}"
        )
    if isinstance(parameter, param.Integer) and isinstance(value, float) and value.is_integer():
        value = int(value)  # `max_order_quantity: 1e6` means a million, as written
    if isinstance(parameter, param.CalendarDate) and isinstance(value, str):
        try:  # the file's dates are read as text (_DatesAsText), as a flag's would be
            value = date.fromisoformat(value)
        except ValueError as exc:
            raise InvalidInputError(
                f"{dotted}{where}: {_cut(value)} is refused ({_cut(exc)}); allowed: {allowed(parameter)}"
            ) from None
    try:  # param's own checks (type, bounds, objects) on assignment
        target.param.update(**{key: value})
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"{dotted}{where}: {_cut(value)} is refused ({_cut(exc)}); allowed: "
            f"{allowed(type(target).param[key])}"
        ) from None


def _strategy_file_beside(lab: LabConfig, config_file: Path) -> None:
    """`lab.strategy: mine.py:Class` names a file beside the YAML that names it, as a user
    writes it, when there is none of that name in the current directory."""
    where, sep, name = lab.strategy.rpartition(":")
    if not sep or not where.endswith(".py") or Path(where).is_absolute() or Path(where).exists():
        return
    beside = config_file.parent / where
    if beside.is_file():
        lab.strategy = f"{beside}:{name}"


def _check_strategy_params(lab: LabConfig, where: str) -> None:
    """`lab.strategy_params` against the chosen strategy's own parameters (param checks them)."""
    if lab.strategy != NO_STRATEGY:
        try:
            cls = strategy_class_named(lab.strategy, also=(NO_STRATEGY,))
        except InvalidInputError as exc:
            raise InvalidInputError(f"lab.strategy{where}: {exc}") from None
    if not lab.strategy_params:
        return
    if lab.strategy == NO_STRATEGY:
        raise InvalidInputError(
            f"lab.strategy_params{where} given with lab.strategy {NO_STRATEGY!r}; choose one of "
            f"{', '.join(STRATEGIES)}"
        )
    values = {}
    for name, value in lab.strategy_params.items():
        dotted = f"lab.strategy_params.{name}"
        if name == "name" or name not in cls.param:
            raise InvalidInputError(
                f"unknown setting {dotted}{where}; strategy {lab.strategy!r} takes "
                f"{', '.join(p for p in cls.param if p != 'name')}"
            )
        try:
            typed = coerce_params(cls, {name: value})[name] if isinstance(value, str) else value
            # 2.0 for an integer is 2; a fraction or a value out of bounds said in words
            typed = checked_number(cls, name, typed, lab.strategy)
        except InvalidInputError as exc:  # text that is not of the parameter's type
            raise InvalidInputError(f"{dotted}{where}: {exc}") from None
        values[name] = typed
        try:
            cls(**{name: typed})
        except InvalidInputError:
            pass  # a rule between parameters (sma_cross: fast < slow): checked on them all below
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"{dotted}{where}: {_cut(value)} is refused ({_cut(exc)}); allowed: {allowed(cls.param[name])}"
            ) from None
        except Exception:  # its own __init__ failing: said for the whole set below
            pass
    try:
        constructed(cls, values, lab.strategy)
    except InvalidInputError as exc:
        raise InvalidInputError(f"lab.strategy_params{where}: {exc}") from None


def allowed(parameter: param.Parameter) -> str:
    """What a parameter accepts, in words, read from its own declaration."""
    if getattr(parameter, "allowed_text", None):  # a parameter type of ours says it itself
        text = parameter.allowed_text
    elif isinstance(parameter, param.ListSelector):  # a Selector subclass in param
        text = "a list of " + ", ".join(repr(o) for o in parameter.objects)
    elif isinstance(parameter, param.Selector):
        text = "one of " + ", ".join(repr(o) for o in parameter.objects)
    elif isinstance(parameter, param.Boolean):
        text = "true or false"
    elif isinstance(parameter, param.CalendarDate):  # a Number subclass in param
        text = "a date, YYYY-MM-DD"
    elif isinstance(parameter, param.Integer | param.Number):
        kind = "an integer" if isinstance(parameter, param.Integer) else "a number"
        low, high = parameter.bounds or (None, None)
        above = ">=" if parameter.inclusive_bounds[0] else ">"
        below = "<=" if parameter.inclusive_bounds[1] else "<"
        if low is not None and high is not None and (above, below) == (">=", "<="):
            text = f"{kind} from {low} to {high}"
        elif low is not None and high is not None:
            text = f"{kind} {above} {low} and {below} {high}"
        elif low is not None:
            text = f"{kind} {above} {low}"
        elif high is not None:
            text = f"{kind} {below} {high}"
        else:
            text = kind
    elif isinstance(parameter, param.Dict):
        text = "a mapping"
    elif isinstance(parameter, param.List):
        text = "a list"
    elif isinstance(parameter, param.String):
        text = "text"
    else:
        text = "any value"
    return f"{text} or null" if parameter.allow_None else text


def _kind(value: object) -> str:
    """What a YAML value is, in words: "a list", "an int"."""
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _cut(value: object, limit: int = 120) -> str:
    """`value` as a refusal quotes it (repr, or an exception's text), cut to `limit`
    characters: a 5 MB value in a config file is not echoed whole. A container is shown by
    reprlib, a few items a level deep, never built whole (a YAML alias bomb is gigabytes)."""
    if isinstance(value, BaseException):
        text = str(value)
    elif isinstance(value, str | bytes):
        text = repr(value)
    else:
        text = _SHORT.repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxstring = 3, 6, 6, 120
