"""The Strategy API: a `Strategy` declares its parameters with `param` and reacts to bars, ticks
and fills; a `StrategyContext` is all it may touch (positions, marks, bars, clock, orders,
signals).

Thread model: every callback of a strategy, and every call it makes on its context, runs on its
`StrategyRunner`'s thread; a context is not shared between threads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import param

from tradelab.errors import InvalidInputError
from tradelab.payloads import encode_submitted, validate_payload
from tradelab.trading.orders import STRATEGY_NAME, check_strategy

if TYPE_CHECKING:
    from tradelab.runner.context import StrategyContext

# The states of a strategy in its runner (`runner.state_changed`), besides "added".
RUNNING, PAUSED, STOPPED, FAILED = "running", "paused", "stopped", "failed"


class Strategy(param.Parameterized):
    """Base class: override the `on_*` hooks you need. Parameters are `param` parameters.

    Order of callbacks (on the runner's one thread): `on_start` once; then, in the order events
    reach the runner, `on_bar` (a journaled `market.bar`), `on_tick` (a transient quote) and
    `on_fill` (a journaled `trade.executed` of this strategy's orders); `on_stop` once at the end.
    """

    #: The default name of instances (a strategy name: letters, digits, '_' or '-'). A
    #: subclass that does not set it is named after itself (`MyBreakout` -> "my_breakout"), so
    #: two strategies of different classes never share a name in the book by default.
    strategy_name = "strategy"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "strategy_name" not in cls.__dict__:
            cls.strategy_name = default_strategy_name(cls.__name__)

    def __init__(self, **params: Any) -> None:
        params.setdefault("name", self.strategy_name)
        unknown = sorted(set(params) - set(self.param))
        if unknown:
            raise InvalidInputError(
                f"strategy {params['name']!r} has no parameter {unknown[0]!r}; it has "
                f"{', '.join(p for p in self.param if p != 'name')}"
            )
        super().__init__(**params)
        check_strategy(self.name)

    def on_start(self, ctx: StrategyContext) -> None:
        """Called once on the runner thread before any event."""

    def on_bar(self, ctx: StrategyContext, bar: Mapping[str, Any]) -> None:
        """A closed bar: {symbol, interval, start, end, open, high, low, close, volume, ticks}."""

    def on_tick(self, ctx: StrategyContext, tick: Mapping[str, Any]) -> None:
        """A raw quote: {symbol, ts, bid, ask, last, bid_size, ask_size, volume}."""

    def on_fill(self, ctx: StrategyContext, fill: Mapping[str, Any]) -> None:
        """A fill of one of this strategy's orders (the `trade.executed` payload)."""

    def on_stop(self, ctx: StrategyContext) -> None:
        """Called once when the strategy is stopped (not after it failed)."""

    def parameters(self) -> dict[str, Any]:
        return {k: v for k, v in self.param.values().items() if k != "name"}

    def symbols_needed(self) -> dict[str, str]:
        """Instruments this strategy cannot trade without, each with the parameter naming it
        (e.g. {'NIFTY': 'underlying'}). A replay or backtest whose bar file lacks one of them
        is refused before it starts, instead of running without a single order."""
        return {}

    def symbols_traded(self) -> dict[str, str]:
        """Of `symbols_needed`, those this strategy places orders in itself (default: all).
        A session that only quotes one of them (a simulated session's index) refuses it.
        short_straddle reads its underlying and trades options it picks: none."""
        return self.symbols_needed()

    def option_chains_needed(self) -> dict[str, str]:
        """Underlyings whose options this strategy trades (picked at run time), each with the
        parameter naming it (short_straddle: {'NIFTY': 'underlying'}): a replayed file holding
        none of its options is refused, not played all day without a trade."""
        return {}

    def intervals_needed(self) -> dict[str, str]:
        """Bar intervals this strategy reads and no other, each with the parameter naming it
        (e.g. {'5m': 'interval'}); refused like `symbols_needed` when the session does not
        build them or the bar file's bars are of another length."""
        return {}


def default_strategy_name(class_name: str) -> str:
    """A class's name as a strategy name: CamelCase to snake_case, at most 64 long; a name that
    still is not one (non-ASCII letters) falls back to "strategy"."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name)
    name = words.lower().strip("_")[:64]
    return name if STRATEGY_NAME.fullmatch(name) else "strategy"


def check_strategy_inputs(
    strategies: Sequence[Strategy],
    source: str,
    *,
    symbols: Collection[str] | None,
    intervals: Collection[str] | None,
    symbols_source: str | None = None,
    tradable: Collection[str] | None = None,
) -> None:
    """Refuse strategies that need an instrument or a bar interval `source` (a bar file, a
    session) does not have; `symbols` (or `intervals`) None: any may come. `symbols_source`:
    what holds the instruments, named in their refusal when that is not `source` (a session's
    instruments are not its bar intervals' setting). `tradable`: of `symbols`, those orders
    can be placed in (None: all); a strategy trading one that is only quoted is refused."""

    def listed(values: Collection[str]) -> str:
        shown = sorted(values) if isinstance(values, set | frozenset) else list(values)
        return ", ".join(shown[:6]) + (", ..." if len(shown) > 6 else "")

    for strategy in strategies:
        held_by = symbols_source or source
        needs = [(s, p, "trades", symbols, held_by) for s, p in strategy.symbols_needed().items()]
        needs += [
            (i, p, "reads bars of", intervals, source)
            for i, p in strategy.intervals_needed().items()
        ]
        for value, parameter, verb, available, where in needs:
            if available is not None and value not in available:
                raise InvalidInputError(
                    f"strategy {strategy.name!r} {verb} {parameter}={value!r}, which {where} "
                    f"does not have (it has {listed(available)})"
                )
        for value, parameter in strategy.option_chains_needed().items():
            options = [s for s in symbols or () if s != value and _is_option_on(s, value)]
            if symbols is not None and not options:
                raise InvalidInputError(
                    f"strategy {strategy.name!r} trades options on {parameter}={value!r}, and "
                    f"{held_by} holds none (it has {listed(symbols)}); replay a file with its "
                    "option chain"
                )
        for value, parameter in strategy.symbols_traded().items():
            if tradable is not None and value not in tradable:
                raise InvalidInputError(
                    f"strategy {strategy.name!r} trades {parameter}={value!r}, which this "
                    f"session quotes but does not trade (it trades {listed(tradable)}); "
                    f"replay a bar file that holds {value} to trade it"
                )


def _is_option_on(symbol: str, underlying: str) -> bool:
    """An NSE option symbol of `underlying` (NIFTY25N1824000CE): its name, then a call/put."""
    return symbol.startswith(underlying) and symbol.endswith(("CE", "PE"))


def checked_strategies(strategy: Any) -> list[Strategy]:
    """The strategies to run: one instance or a sequence of them (maybe none), with distinct
    names; anything else is refused before a file is touched."""
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
    strategies = list(strategy)  # may be empty: a Lab session that trades nothing
    names: set[str] = set()
    for one in strategies:
        if not isinstance(one, Strategy):
            checked_strategies(one)  # raises, naming what it is
        if one.name in names:
            raise InvalidInputError(
                f"two strategies are named {one.name!r}; give each its own name= to run both"
            )
        names.add(one.name)
        check_journalable_params(one.name, one.parameters())  # before any file is opened
    return strategies


def coerce_params(strategy_cls: type[Strategy], assignments: Mapping[str, str]) -> dict[str, Any]:
    """Text `name=value` settings (from a command line) as values of the parameters' types."""
    out: dict[str, Any] = {}
    for name, text in assignments.items():
        if name not in strategy_cls.param or name == "name":
            allowed = ", ".join(p for p in strategy_cls.param if p != "name")
            raise InvalidInputError(
                f"strategy {strategy_cls.strategy_name!r} has no parameter {name!r}; it has "
                f"{allowed}"
            )
        parameter = strategy_cls.param[name]
        if isinstance(parameter, (param.Date, param.CalendarDate)):  # Number subclasses
            raise InvalidInputError(
                f"parameter {name!r} of {strategy_cls.strategy_name!r} is a date, which a "
                "journal cannot hold (parameters are journaled as JSON): declare it as text "
                "(param.String, e.g. '2025-01-02') and parse it in the strategy"
            )
        try:
            if (
                parameter.allow_None
                and text.strip().lower() in _NONE_TEXT
                and not (isinstance(parameter, param.String))
            ):
                out[name] = None
            elif isinstance(parameter, (param.List, param.ListSelector, param.Tuple)):
                out[name] = _sequence(parameter, text)
            elif isinstance(parameter, param.Selector):  # after ListSelector: its subclass
                out[name] = _choice(parameter, text)
            elif isinstance(parameter, param.Boolean):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                out[name] = text.lower() in ("true", "1", "yes")
            elif isinstance(parameter, param.Integer):
                out[name] = _whole_number(text)
            elif isinstance(parameter, param.Number):
                out[name] = float(text)
            else:
                out[name] = text
        except ValueError:
            wanted = (
                "a list such as 3,4 or [3, 4]"
                if isinstance(parameter, (param.List, param.ListSelector, param.Tuple))
                else "one of " + ", ".join(repr(choice) for choice in parameter.objects)
                if isinstance(parameter, param.Selector)
                else "true or false"
                if isinstance(parameter, param.Boolean)
                else "an integer"
                if isinstance(parameter, param.Integer)
                else "a number"
            )
            raise InvalidInputError(
                f"parameter {name!r} of {strategy_cls.strategy_name!r}: {text!r} is not {wanted}"
            ) from None
    return out


_NONE_TEXT = ("", "none", "null")


def _whole_number(text: str) -> int:
    """An integer parameter's text: 2, or 2.0 (a tool's float of a whole number); not 2.5, nor
    a float too large to be exact (1e300 is no integer anyone typed)."""
    try:
        return int(text)
    except ValueError:
        number = float(text)  # a ValueError for text that is no number
        if not number.is_integer() or abs(number) >= 2**53:
            raise ValueError(text) from None
        return int(number)


def _sequence(parameter: param.Parameter, text: str) -> list | tuple:
    """`3,4` or `[3, 4]` (YAML) as the list or tuple a List, ListSelector, Tuple or Range
    parameter takes; items are YAML scalars (3 is a number, a is text)."""
    import yaml

    try:
        value = yaml.safe_load(text if text.strip().startswith("[") else f"[{text}]")
    except yaml.YAMLError:
        raise ValueError(text) from None
    if not isinstance(value, list):
        raise ValueError(text)
    return tuple(value) if isinstance(parameter, param.Tuple) else value


def _choice(parameter: param.Selector, text: str) -> Any:
    """The choice of a Selector that `text` names: a text choice as written, any other as YAML
    reads the text (20 is the number 20, false the boolean), as a config file would give it."""
    import yaml

    choices = list(parameter.objects)
    for choice in choices:
        if isinstance(choice, str) and choice == text:
            return choice
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    for choice in choices:
        if (
            not isinstance(choice, str)
            and isinstance(choice, bool) == isinstance(value, bool)
            and choice == value
        ):
            return choice
    if not choices or not parameter.check_on_set:
        return text  # a Selector without fixed choices takes any value
    raise ValueError(text)


def check_journalable_params(name: str, params: Mapping[str, Any]) -> None:
    """Parameters are journaled with every start and change (`runner.*` events): values JSON
    cannot hold exactly (NaN, a date, an object) are refused here, naming the parameter,
    before the strategy is added or changed."""
    try:
        encode_submitted(validate_payload({"params": dict(params)}, "runner.params_changed"))
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"strategy {name!r}: its parameters are journaled and must be JSON values: {exc}"
        ) from None


def checked_params(
    strategy: Strategy,
    params: Mapping[str, Any],
    inputs_check: Callable[[Sequence[Strategy]], None] | None = None,
) -> dict[str, Any]:
    """New values for `strategy`'s parameters (text converted as `coerce_params` does), checked
    against their declarations without touching `strategy`: a bad name or value is an
    InvalidInputError naming it. `inputs_check` (a session's `check_strategy_inputs`) also
    refuses an instrument or bar interval the session does not have."""
    cls = type(strategy)
    if not isinstance(params, Mapping):
        raise InvalidInputError(
            f"parameters of strategy {strategy.name!r} must be a mapping of name to value, "
            f"e.g. {{'lots': 2}}; got {type(params).__name__} {params!r}"[:300]
        )
    if "name" in params:
        raise InvalidInputError(f"the name of strategy {strategy.name!r} cannot be changed")
    text = {k: v for k, v in params.items() if isinstance(v, str)}
    values = {**{k: v for k, v in params.items() if not isinstance(v, str)}}
    values.update(coerce_params(cls, text))
    values = checked_numbers(cls, values, strategy.name)
    # A throwaway instance runs param's own type and bound checks on the whole set.
    trial = constructed(
        cls, {**strategy.parameters(), **values, "name": strategy.name}, strategy.name
    )
    if inputs_check is not None:
        inputs_check([trial])
    return values


def checked_numbers(cls: type[Strategy], values: Mapping[str, Any], name: str) -> dict[str, Any]:
    """`values` with each number checked as `checked_number` checks it (strategy `name`)."""
    return {pname: checked_number(cls, pname, value, name) for pname, value in values.items()}


def checked_number(cls: type[Strategy], pname: str, value: Any, name: str) -> Any:
    """`value` for parameter `pname`: a whole float for an Integer parameter as its int (a
    form or JSON's 7.0 is 7); a number out of bounds or a fraction refused in words that show
    the value as typed (param's own say "not <class 'float'>", or print 1e300 as its 301
    digits). Anything else as it is, for param's own checks."""
    declared = cls.param.objects("existing").get(pname)
    if not isinstance(declared, param.Number) or isinstance(value, bool):
        return value
    if not isinstance(value, int | float):
        return value  # not a number: param's own check names the type
    shown = f"{value:g}" if isinstance(value, float) or abs(value) >= 10**15 else str(value)
    where = f"parameter {pname!r} of strategy {name!r}"
    if isinstance(declared, param.Integer) and isinstance(value, float):
        if not value.is_integer():
            raise InvalidInputError(f"{where} must be a whole number, not {shown}")
        value = int(value)
    low, high = declared.bounds or (None, None)
    if low is not None and value < low:
        raise InvalidInputError(f"{where} must be at least {low}, not {shown}")
    if high is not None and value > high:
        raise InvalidInputError(f"{where} must be at most {high}, not {shown}")
    return value


def constructed(cls: type[Strategy], values: Mapping[str, Any], name: str) -> Strategy:
    """`cls(**values)`, any failure of its construction an InvalidInputError naming strategy
    `name`: param's own type and bound checks, or the strategy's own `__init__` (its rules, its
    setup, a bug), which must end in a usage error, not a traceback."""
    try:
        return cls(**values)
    except InvalidInputError:
        raise  # a rule between parameters, already naming them
    except (ValueError, TypeError) as exc:  # param's own checks say what is wrong
        raise InvalidInputError(f"strategy {name!r}: {exc}") from None
    except Exception as exc:
        raise InvalidInputError(
            f"strategy {name!r} could not be made: {type(exc).__name__}: {exc}"
        ) from exc
