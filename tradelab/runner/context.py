"""What one strategy sees and does: `StrategyContext` (positions, marks, bars, clock, orders,
signals), built by the StrategyRunner for each strategy it runs.

Thread model: every call a strategy makes on its context runs on its runner's thread; a context
is not shared between threads (orders, exits and signals from another thread are refused).
"""

from __future__ import annotations

import logging
import numbers
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tradelab.errors import InvalidInputError, InvalidOrderError, LifecycleError
from tradelab.market.bars import INTERVAL_SECONDS
from tradelab.runner.strategy import PAUSED, STOPPED
from tradelab.runner.strategy_signals import StrategySignals
from tradelab.trading.book import position_id

if TYPE_CHECKING:
    from tradelab.runner.strategy import Strategy

# A bar length's label: a session's (INTERVAL_SECONDS) or a bar file's own (e.g. '1d', '30s').
BAR_LENGTH = re.compile(r"[1-9][0-9]*(?:[smhd]|mo)")  # 1mo: a file of calendar months


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
        self.seeded_seq = 0  # the seq its positions were seeded at (_seed_positions)
        self._working: dict[str, dict[str, Any]] = {}  # order id -> {symbol, signed remaining}
        self.signals = StrategySignals(self.name, runner)
        self._bar_lengths_seen: set[str] = set()  # intervals ctx.bars has checked
        self._symbols_seen: set[str] = set()  # symbols ctx.mark / ctx.bars have checked

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
        """The store's latest mark of `symbol` (in a live session it may be newer than the
        event being handled: the feed does not wait for strategies)."""
        if type(symbol) is not str or symbol not in self._symbols_seen:  # once each: it is hot
            self._check_symbol(symbol, "mark")
        mark = self.store.get(f"market.marks.{symbol}", None)
        return None if mark is None else float(mark["price"])

    def _check_symbol(self, symbol: object, call: str) -> None:
        """Refuse a symbol this session can never quote (a typo would read as "no price yet"
        for ever): one it quotes is fine, and in a session that lists new strikes as the index
        moves (the simulated one), any option symbol."""
        if type(symbol) is not str:
            raise InvalidInputError(
                f"ctx.{call} takes a symbol (a str), got {type(symbol).__name__} {symbol!r}"
            )
        runner = self._runner
        quoted = getattr(runner, "quoted_symbols", None)  # None: the session did not say
        if quoted is not None and symbol not in quoted:
            listed_later = getattr(runner, "lists_new_strikes", False)
            if not (listed_later and self._is_option(symbol)):
                shown = ", ".join(sorted(quoted)[:4]) + (", ..." if len(quoted) > 4 else "")
                raise InvalidInputError(
                    f"ctx.{call}({symbol!r}) would never have data: this session quotes "
                    f"{shown}" + (" and the option strikes it lists" if listed_later else "")
                )
        if len(self._symbols_seen) < 4096:
            self._symbols_seen.add(symbol)

    def _is_option(self, symbol: str) -> bool:
        try:
            self.universe.parse(symbol)
        except InvalidInputError:
            return False
        return True

    def _check_bar_length(self, interval: object) -> None:
        built = self._runner.bar_intervals
        if type(interval) is not str or not BAR_LENGTH.fullmatch(interval):
            # Not a bar length at all ('15min'): it would read as "no bars yet" for ever.
            lengths = sorted(built) if built is not None else INTERVAL_SECONDS
            raise InvalidInputError(
                f"interval {interval!r} is not a bar length; this session builds "
                f"{', '.join(lengths)} (a bar file's own length reads as e.g. '1d')"
            )
        if built is not None and interval not in built:
            # A length, but not one this session builds: it too would read as "no bars yet".
            raise InvalidInputError(
                f"interval {interval!r}: this session builds bars of {', '.join(sorted(built))}"
                f" only, so ctx.bars(..., {interval!r}) would never return one"
            )
        if len(self._bar_lengths_seen) < 64:
            self._bar_lengths_seen.add(interval)

    def bars(self, symbol: str, interval: str) -> tuple[Mapping[str, Any], ...]:
        """The closed bars the store keeps (the last BARS_KEPT, 200), oldest first, as of the
        event being handled: in on_bar the bar being handled is the last one, never a later
        bar the store already holds in a live session."""
        if interval not in self._bar_lengths_seen:  # checked once each: ctx.bars is hot
            self._check_bar_length(interval)
        if type(symbol) is not str or symbol not in self._symbols_seen:
            self._check_symbol(symbol, "bars")
        bars = self.store.get(f"market.bars.{symbol}.{interval}", None) or ()
        now = self._runner.current_ts
        if now and bars and bars[-1]["end"] > now:  # the store is ahead of this strategy
            return tuple(bar for bar in bars if bar["end"] <= now)
        return tuple(bars)

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
        self._on_handler_thread("place_order")
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
        limit = str(order_type).upper() == "LIMIT"
        self._track(order_id, symbol, sign * int(quantity) if whole else 0, limit=limit)
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

    def cancel(self, order_id: str) -> None:
        """Cancel one of this strategy's working orders (e.g. a limit order not filled); an
        unknown or finished order raises, naming it. Once this returns, `working` no longer
        counts what the cancel took off (a cancel and a `target` in one hook replace the order);
        fills made before it, not yet seen here, still count until they come."""
        self._on_handler_thread("cancel")
        if order_id not in self._working:
            raise InvalidInputError(
                f"order {order_id!r} is not a working order of strategy {self.name!r} (not "
                "placed by it, or finished: filled, cancelled or rejected)"
            )
        self._forget_cancelled(order_id, self._runner.desk.cancel_order(order_id))

    def buy(self, symbol: str, quantity: int, **kwargs: Any) -> str:
        return self.place_order(symbol, "BUY", quantity, **kwargs)

    def sell(self, symbol: str, quantity: int, **kwargs: Any) -> str:
        return self.place_order(symbol, "SELL", quantity, **kwargs)

    def target(self, symbol: str, quantity: int) -> str | None:
        """Trade towards a signed target position (counting working orders); None if there."""
        if isinstance(quantity, bool) or not isinstance(quantity, numbers.Real):
            # As place_order says it: text or None would fail inside the arithmetic below.
            raise InvalidOrderError(f"quantity {quantity!r} for {symbol} is not a number")
        delta = quantity - self.position(symbol) - self.working(symbol)
        if delta == 0:
            return None
        return self.place_order(symbol, "BUY" if delta > 0 else "SELL", abs(delta))

    def close(self, symbol: str) -> str | None:
        """Close this strategy's position in `symbol` now: cancel its resting limit orders there
        (an entry would open it again, and `target(symbol, 0)` would net against it and sell
        short while it rests; an exit at a limit may never fill), then a market order for what
        it holds less its market orders already in flight (a stop's exit being filled). Returns
        that order's id, None if nothing is left to send. A cancel the broker refuses (the
        order filled meanwhile) raises OrderRejectedError before anything is sent."""
        self._on_handler_thread("close")
        resting = [o for o, w in self._working.items() if w["symbol"] == symbol and w["limit"]]
        for order_id in resting:
            self._forget_cancelled(order_id, self._runner.desk.cancel_order(order_id))
        return self.target(symbol, 0)

    def _forget_cancelled(self, order_id: str, report: Any) -> None:
        """Stop counting what the broker's cancel `report` took off a working order. Filled
        before the cancel but not yet seen here (a fill on the feed's thread while this hook
        runs): still to come as fills, so still counted; the rest is gone."""
        entry = self._working.get(order_id)
        if entry is None:
            return
        unseen = int(report.filled_quantity) - entry["seen"]
        if unseen > 0:
            entry["remaining"], entry["cancelled"] = entry["sign"] * unseen, True
        else:
            del self._working[order_id]

    def set_exit(self, symbol: str, **levels: float | None) -> None:
        """Stop loss / target / trailing distance for this strategy's position in `symbol`
        (see `PositionMonitor.set_exit`): the position held, or the one a working order is
        opening; they are dropped when it goes flat. With neither, levels are refused: kept,
        they would stop out a position opened much later. Levels not given are kept (a trail
        set again keeps the stop trailed so far); `set_exit(symbol)` alone clears them all."""
        self._on_handler_thread("set_exit")
        if any(v is not None for v in levels.values()) and not (
            self.position(symbol) or self.working(symbol)
        ):
            raise InvalidInputError(
                f"strategy {self.name!r} holds no position and no working order in {symbol!r}: "
                "set its exits once it does (e.g. in on_fill)"
            )
        self._runner.monitor.set_exit(position_id(self.name, symbol), **levels)

    def exit_levels(self, symbol: str) -> dict[str, Any] | None:
        """The exit levels armed for this strategy's position in `symbol` (stop, target, trail,
        best price seen), None if none: after a restart, those the store kept."""
        levels = self._runner.monitor.levels(position_id(self.name, symbol))
        if levels is None:
            return None
        return {k: levels[k] for k in ("stop", "target", "trail", "best")}

    # -- its own lifecycle -----------------------------------------------------------------
    def pause(self, reason: str) -> None:
        """Pause this strategy (a losing streak, a market it does not like) until an operator
        resumes it in the console: as an operator's pause, journaled (`runner.state_changed`,
        `who` the strategy, with `reason`) and kept across a restart. It takes effect when the
        hook returns: then no bars or ticks reach it, its fills wait for the resume, and its
        exits and working orders stay. In `on_stop` it does nothing (it is stopping)."""
        self._hold("pause", PAUSED, reason)

    def stop(self, reason: str) -> None:
        """Stop this strategy (done for the day): as an operator's stop, journaled with
        `reason`, kept across a restart, and `on_stop` is called as the hook returns; its
        working orders that would open or add to a position are cancelled, its exits and
        positions stay (flatten closes them). The console's Start starts it again. In
        `on_stop` it does nothing (it is stopping)."""
        self._hold("stop", STOPPED, reason)

    def _hold(self, call: str, state: str, reason: object) -> None:
        self._on_handler_thread(call)
        why = _reason(reason, call)
        slot = self._runner._slot(self.name)
        if not slot.hook:
            raise LifecycleError(f"ctx.{call}(reason) is for the strategy's hooks; none runs")
        if slot.hook == "on_stop":
            self.log.info("ctx.%s in on_stop: the strategy is stopping already", call)
        elif slot.self_hold is None or state == STOPPED:  # a stop outranks a pause
            slot.self_hold = (state, why)

    # -- signals ---------------------------------------------------------------------------
    def signal(self, name: str, /, **details: Any) -> str:
        """Journal that this strategy sees signal `name` (`signal.detected`): it is active, in
        the store's `signals.active` and the console's Signals table, until `clear_signal`.
        Detecting an active name again replaces its details (one row per name, e.g. a trend's
        current direction). `details` are JSON values; `ts` is the market time of the event
        being handled. Returns the id, `<strategy>-<name>`."""
        self._on_handler_thread("signal")
        return self.signals.detect(name, self._market_ts(), details)

    def clear_signal(self, name: str) -> bool:
        """Journal `signal.cleared` for this strategy's active signal `name`; False, with
        nothing journaled, when it is not active."""
        self._on_handler_thread("clear_signal")
        return self.signals.clear(name, self._market_ts())

    def _on_handler_thread(self, call: str) -> None:
        """Refuse a call from a thread other than the one the strategy's hooks run on: its
        order ids and timing would follow that thread's scheduling, not the events (a replay
        would not place the same orders), and the runner's bookkeeping is not shared."""
        owner = self._runner.handler_ident
        if owner is not None and threading.get_ident() != owner:
            raise InvalidOrderError(
                f"strategy {self.name!r}: ctx.{call} called on thread "
                f"{threading.current_thread().name!r}; a strategy's context is used only in "
                "its hooks, on its runner's thread"
            )

    def _market_ts(self) -> int:
        # The market clock of the event being handled, as a fill's; the feed's outside one.
        return self._runner.current_ts or self.now_ns()

    def active_signals(self) -> list[str]:
        """Names of this strategy's active signals, sorted."""
        return sorted(self.signals.active)

    # -- runner bookkeeping ----------------------------------------------------------------
    def _seed_positions(self) -> None:
        """After a restart: the positions and working orders the store holds for this
        strategy, read at one seq (`seeded_seq`: the runner skips fills at or below it, already
        counted here). Orders left working are counted by `working`, `target` and `close`, and
        can be cancelled."""
        self.seeded_seq, view = self.store.frozen()
        for pid in view.get(f"trading.open_by_strategy.{self.name}", None) or ():
            pos = view.get(f"trading.positions.{pid}", None)
            if pos and pos["net_quantity"]:
                self._positions[pos["symbol"]] = int(pos["net_quantity"])
        for order_id, order in sorted((view.get("trading.working", None) or {}).items()):
            if order.get("strategy") == self.name:
                sign = 1 if order["side"] == "BUY" else -1
                remaining = sign * int(order.get("remaining_quantity") or 0)
                limit = order.get("limit_price") is not None
                filled = (view.get(f"trading.orders.{order_id}", None) or {}).get("filled_quantity")
                self._track(order_id, order["symbol"], remaining, limit=limit, seen=filled or 0)

    def _track(
        self,
        order_id: str,
        symbol: str,
        signed_quantity: int,
        *,
        limit: bool = False,
        seen: int = 0,
    ) -> None:
        """Count an order placed for this strategy as working until it fills or finishes
        (`seen`: units of it already filled and counted in the positions)."""
        self._working[order_id] = {
            "symbol": symbol,
            "remaining": signed_quantity,
            "sign": 1 if signed_quantity >= 0 else -1,
            "limit": limit,
            "seen": seen,
            "cancelled": False,
        }

    def _on_fill(self, fill: Mapping[str, Any]) -> None:
        # One step moves the fill from "working" to "position": no moment counts it twice.
        signed = int(fill["quantity"]) * (1 if fill["side"] == "BUY" else -1)
        symbol = fill["symbol"]
        self._positions[symbol] = self._positions.get(symbol, 0) + signed
        entry = self._working.get(fill.get("order_id"))
        if entry is not None:
            entry["remaining"] -= signed
            entry["seen"] += abs(signed)
            if entry["remaining"] == 0:
                del self._working[fill["order_id"]]

    def tracks(self, order_id: object) -> bool:
        """Whether this strategy counts `order_id` as working."""
        return order_id in self._working

    def _on_order_finished(self, payload: Mapping[str, Any]) -> None:
        """A cancelled or rejected order works no more (its fills came as trade.executed); one
        `close` cancelled with fills still on their way stays counted until they come."""
        entry = self._working.get(payload.get("order_id"))
        if entry is not None and not entry["cancelled"]:
            del self._working[payload["order_id"]]


def _reason(reason: object, call: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInputError(
            f"ctx.{call}(reason) needs the reason as text, e.g. ctx.{call}('three losses in a "
            f"row'), not {reason!r}: it is journaled for whoever looks next"
        )
    return reason.strip()[:200]
