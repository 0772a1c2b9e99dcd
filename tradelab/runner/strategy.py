"""The Strategy API: a `Strategy` declares its parameters with `param` and reacts to bars, ticks
and fills; a `StrategyContext` is all it may touch (positions, marks, bars, clock, orders,
signals).

Thread model: every callback of a strategy, and every call it makes on its context, runs on its
`StrategyRunner`'s thread; a context is not shared between threads.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import param

from tradelab.errors import InvalidInputError
from tradelab.payloads import encode_submitted, validate_payload
from tradelab.state.paths import check_path_level
from tradelab.trading.book import position_id
from tradelab.trading.orders import check_strategy


class Strategy(param.Parameterized):
    """Base class: override the `on_*` hooks you need. Parameters are `param` parameters.

    Order of callbacks (on the runner's one thread): `on_start` once; then, in the order events
    reach the runner, `on_bar` (a journaled `market.bar`), `on_tick` (a transient quote) and
    `on_fill` (a journaled `trade.executed` of this strategy's orders); `on_stop` once at the end.
    """

    #: The default name of instances (a strategy name: letters, digits, '_' or '-').
    strategy_name = "strategy"

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

    def intervals_needed(self) -> dict[str, str]:
        """Bar intervals this strategy reads and no other, each with the parameter naming it
        (e.g. {'5m': 'interval'}); refused like `symbols_needed` when the session does not
        build them or the bar file's bars are of another length."""
        return {}


def check_strategy_inputs(
    strategies: Sequence[Strategy],
    source: str,
    *,
    symbols: Collection[str] | None,
    intervals: Collection[str],
) -> None:
    """Refuse strategies that need an instrument or a bar interval `source` (a bar file, a
    session) does not have; `symbols` None: any instrument may come."""

    def listed(values: Collection[str]) -> str:
        shown = sorted(values) if isinstance(values, set | frozenset) else list(values)
        return ", ".join(shown[:6]) + (", ..." if len(shown) > 6 else "")

    for strategy in strategies:
        needs = [(s, p, "trades", symbols) for s, p in strategy.symbols_needed().items()]
        needs += [
            (i, p, "reads bars of", intervals) for i, p in strategy.intervals_needed().items()
        ]
        for value, parameter, verb, available in needs:
            if available is not None and value not in available:
                raise InvalidInputError(
                    f"strategy {strategy.name!r} {verb} {parameter}={value!r}, which {source} "
                    f"does not have (it has {listed(available)})"
                )


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
        try:
            if isinstance(parameter, param.Boolean):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                out[name] = text.lower() in ("true", "1", "yes")
            elif isinstance(parameter, param.Integer):
                out[name] = int(text)
            elif isinstance(parameter, param.Number):
                out[name] = float(text)
            else:
                out[name] = text
        except ValueError:
            wanted = (
                "true or false"
                if isinstance(parameter, param.Boolean)
                else "an integer"
                if isinstance(parameter, param.Integer)
                else "a number"
            )
            raise InvalidInputError(
                f"parameter {name!r} of {strategy_cls.strategy_name!r}: {text!r} is not {wanted}"
            ) from None
    return out


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


def checked_params(strategy: Strategy, params: Mapping[str, Any]) -> dict[str, Any]:
    """New values for `strategy`'s parameters (text converted as `coerce_params` does), checked
    against their declarations without touching `strategy`: a bad name or value is an
    InvalidInputError naming it."""
    cls = type(strategy)
    if "name" in params:
        raise InvalidInputError(f"the name of strategy {strategy.name!r} cannot be changed")
    text = {k: v for k, v in params.items() if isinstance(v, str)}
    values = {**{k: v for k, v in params.items() if not isinstance(v, str)}}
    values.update(coerce_params(cls, text))
    try:  # a throwaway instance runs param's own type and bound checks on the whole set
        cls(**{**strategy.parameters(), **values, "name": strategy.name})
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"strategy {strategy.name!r}: {exc}") from None
    return values


# Fields of a signal's payload and its stored row that tradelab sets itself.
SIGNAL_FIELDS = frozenset({"strategy", "name", "ts", "signal_id", "detected_ts", "seq"})


class StrategyContext:
    """What one strategy sees and does: reads go to the store, orders go to the execution desk.

    Order ids are `<strategy>-<seq>-<k>`: the seq of the event being handled and a counter, so a
    replay places the same ids and a restart (later seqs) never reuses one.
    """

    def __init__(self, runner: Any, strategy: Strategy) -> None:
        self._runner = runner
        self.strategy = strategy
        self.name = strategy.name
        self.log = logging.getLogger(f"tradelab.strategy.{self.name}")
        self._id_seq = -1
        self._id_count = 0
        # The strategy's view as of the event being handled (not the store's, which may be
        # ahead of it): positions folded from its fills, and its working orders.
        self._positions: dict[str, int] = {}
        self._working: dict[str, dict[str, Any]] = {}  # order id -> {symbol, signed remaining}
        self._signals: set[str] = set()  # names of this strategy's active signals

    # -- reading ---------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self._runner.engine.store

    @property
    def universe(self) -> Any:
        return self._runner.desk.universe

    def now_ns(self) -> int:
        """Exchange time (the feed's clock), UTC ns."""
        return self._runner.clock.now_ns()

    def position(self, symbol: str) -> int:
        """This strategy's filled net quantity in `symbol` (units; short < 0), as of the event
        being handled."""
        return self._positions.get(symbol, 0)

    def positions(self) -> dict[str, int]:
        """This strategy's open positions: symbol -> net quantity."""
        return {s: q for s, q in self._positions.items() if q}

    def working(self, symbol: str) -> int:
        """Signed quantity of this strategy's orders in `symbol` not filled or finished yet."""
        return sum(w["remaining"] for w in self._working.values() if w["symbol"] == symbol)

    def mark(self, symbol: str) -> float | None:
        mark = self.store.get(f"market.marks.{symbol}", None)
        return None if mark is None else float(mark["price"])

    def bars(self, symbol: str, interval: str) -> tuple[Mapping[str, Any], ...]:
        """The last closed bars kept in the store (oldest first)."""
        return tuple(self.store.get(f"market.bars.{symbol}.{interval}", None) or ())

    # -- acting ----------------------------------------------------------------------------
    def place_order(
        self,
        symbol: str,
        side: str,
        quantity: int,
        *,
        order_type: str = "MARKET",
        limit_price: float | None = None,
    ) -> str:
        """Send an order through the execution desk, as this strategy; returns its id."""
        seq = self._runner.current_seq
        if seq != self._id_seq:
            self._id_seq, self._id_count = seq, 0
        self._id_count += 1
        order_id = f"{self.name}-{seq}-{self._id_count}"
        sign = 1 if str(side).upper() == "BUY" else -1
        # Tracked as working before the desk sees it (its fill can come back before
        # place_order returns); a quantity the desk will refuse is tracked as 0 meanwhile.
        whole = (
            isinstance(quantity, numbers.Real)
            and not isinstance(quantity, bool)
            and float(quantity).is_integer()
        )
        self._track(order_id, symbol, sign * int(quantity) if whole else 0)
        try:
            return self._runner.desk.place_order(
                symbol,
                side,
                quantity,
                order_type=order_type,
                limit_price=limit_price,
                strategy=self.name,
                order_id=order_id,
            )
        except BaseException:
            self._working.pop(order_id, None)
            raise

    def buy(self, symbol: str, quantity: int, **kwargs: Any) -> str:
        return self.place_order(symbol, "BUY", quantity, **kwargs)

    def sell(self, symbol: str, quantity: int, **kwargs: Any) -> str:
        return self.place_order(symbol, "SELL", quantity, **kwargs)

    def target(self, symbol: str, quantity: int) -> str | None:
        """Trade towards a signed target position (counting working orders); None if there."""
        delta = quantity - self.position(symbol) - self.working(symbol)
        if delta == 0:
            return None
        return self.place_order(symbol, "BUY" if delta > 0 else "SELL", abs(delta))

    def close(self, symbol: str) -> str | None:
        return self.target(symbol, 0)

    def set_exit(self, symbol: str, **levels: float | None) -> None:
        """Stop loss / target / trailing distance for this strategy's position in `symbol`
        (see `PositionMonitor.set_exit`)."""
        self._runner.monitor.set_exit(position_id(self.name, symbol), **levels)

    # -- signals ---------------------------------------------------------------------------
    def signal(self, name: str, /, **details: Any) -> str:
        """Journal that this strategy sees signal `name` (`signal.detected`): it is active, in
        the store's `signals.active` and the console's Signals table, until `clear_signal`.
        Detecting an active name again replaces its details (one row per name, e.g. a trend's
        current direction). `details` are JSON values; `ts` is the market time of the event
        being handled. Returns the id, `<strategy>-<name>`."""
        signal_id = self._signal_id(name)
        taken = sorted(SIGNAL_FIELDS & set(details))
        if taken:
            raise InvalidInputError(
                f"signal {name!r}: {', '.join(taken)} {'is' if len(taken) == 1 else 'are'} set"
                f" by tradelab; name the detail otherwise"
            )
        body = {"strategy": self.name, "name": name, "ts": self._market_ts(), **details}
        self._runner.submit("signal.detected", body, key=signal_id)
        self._signals.add(name)
        return signal_id

    def clear_signal(self, name: str) -> bool:
        """Journal `signal.cleared` for this strategy's active signal `name`; False, with
        nothing journaled, when it is not active."""
        signal_id = self._signal_id(name)
        if name not in self._signals:
            return False
        body = {"strategy": self.name, "name": name, "ts": self._market_ts()}
        self._runner.submit("signal.cleared", body, key=signal_id)
        self._signals.discard(name)
        return True

    def _market_ts(self) -> int:
        # The market clock of the event being handled, as a fill's; the feed's outside one.
        return self._runner.current_ts or self.now_ns()

    def active_signals(self) -> list[str]:
        """Names of this strategy's active signals, sorted."""
        return sorted(self._signals)

    def _signal_id(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"a signal name must be non-empty text, not {name!r}")
        return check_path_level(f"{self.name}-{name}", f"signal {name!r} of {self.name!r}: id")

    # -- runner bookkeeping ----------------------------------------------------------------
    def _clear_signals(self) -> None:
        """A failed strategy keeps nothing up to date: its active signals are cleared."""
        for name in sorted(self._signals):
            self.clear_signal(name)

    def _seed_signals(self) -> None:
        """After a restart: this strategy's signals the store holds as active."""
        active = self.store.get("signals.active", None) or {}
        self._signals = {
            s["name"] for s in active.values() if s.get("strategy") == self.name and "name" in s
        }

    def _seed_positions(self) -> None:
        """After a restart: the positions the store holds for this strategy."""
        for pid in self.store.get(f"trading.open_by_strategy.{self.name}", None) or ():
            pos = self.store.get(f"trading.positions.{pid}", None)
            if pos and pos["net_quantity"]:
                self._positions[pos["symbol"]] = int(pos["net_quantity"])

    def _track(self, order_id: str, symbol: str, signed_quantity: int) -> None:
        """Count an order placed for this strategy as working until it fills or finishes."""
        self._working[order_id] = {"symbol": symbol, "remaining": signed_quantity}

    def _on_fill(self, fill: Mapping[str, Any]) -> None:
        # One step moves the fill from "working" to "position": no moment counts it twice.
        signed = int(fill["quantity"]) * (1 if fill["side"] == "BUY" else -1)
        symbol = fill["symbol"]
        self._positions[symbol] = self._positions.get(symbol, 0) + signed
        entry = self._working.get(fill.get("order_id"))
        if entry is not None:
            entry["remaining"] -= signed
            if entry["remaining"] == 0:
                del self._working[fill["order_id"]]

    def _on_order_finished(self, payload: Mapping[str, Any]) -> None:
        """A cancelled or rejected order works no more (its fills came as trade.executed)."""
        self._working.pop(payload.get("order_id"), None)
