"""`PositionMonitor`: stop loss, target and trailing stop per position; exits through the desk.

Levels are set with `set_exit` (journaled as `trade.exit_updated`, and kept in the store as
`trading.exits`, so `restore` re-arms them after a restart), checked on every journaled
`mark.updated` of the position's symbol, and an exit is a market order for the whole position,
placed through the normal order path as the position's strategy. An exit the risk gate or the
broker refuses (journaled as `order.denied`/`order.rejected`, and as `trade.exit_updated` with
reason `exit_refused`) stays armed and is tried again on a mark `retry_seconds` of market time
later: a halt lifted by an operator lets the stop fire again, and a halt that lasts does not
journal a refusal on every mark. Thread model: the runner's thread only (it calls every method).
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from tradelab.errors import InvalidInputError, OrderRejectedError
from tradelab.market.clock import NS_PER_S
from tradelab.trading.book import without_float_noise

log = logging.getLogger(__name__)
_FINISHED = ("order.cancelled", "order.rejected", "order.denied", "order.filled")


class PositionMonitor:
    """Exit levels per position id (`<strategy>:<symbol>`)."""

    def __init__(self, runner: Any, retry_seconds: float = 60.0) -> None:
        self._runner = runner
        self.retry_ns = int(retry_seconds * NS_PER_S)
        self._exits: dict[str, dict[str, Any]] = {}
        self._by_symbol: dict[str, set[str]] = {}
        self.exits_placed = 0
        # The last refusal told on the log per position: a halt refuses the same exit every
        # retry (each in the journal as exit_refused); the log says so once, then on a change.
        self._refusals_told: dict[str, str] = {}
        # The latest price seen per symbol (marks, bar closes, fills): a trailing stop armed on
        # an open position trails from it, so the first move against it is covered too. One
        # entry per symbol traded or marked: bounded by the session's instruments.
        self._last_price: dict[str, float] = {}

    def levels(self, position_id: str) -> dict[str, Any] | None:
        exit_ = self._exits.get(position_id)
        return None if exit_ is None else dict(exit_)

    def set_exit(
        self,
        position_id: str,
        *,
        stop: float | None = None,
        target: float | None = None,
        trail: float | None = None,
    ) -> None:
        """Set the exit levels given of an open position, keeping those not given (a target
        added later keeps the stop; the same trailing distance set again keeps the stop trailed
        so far, a new one moves it to that distance from the best price seen); with all None,
        clear them all. Levels are dropped when the position goes flat or reverses."""
        for what, value in (("stop", stop), ("target", target), ("trail", trail)):
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise InvalidInputError(
                    f"{what} {value!r} for position {position_id} is not a positive number"
                )
        if stop is target is trail is None:
            self._drop(position_id)
            self._publish(position_id, None, "cleared")
            return
        before = self._exits.get(position_id, {}).get("trail")
        given = {"stop": stop, "target": target, "trail": trail}
        exit_ = self._arm(position_id, **{k: v for k, v in given.items() if v is not None})
        net = self._net(position_id)
        if net and exit_["trail"] is not None and exit_["best"] is None:
            # Trailed from the price now, not from the next one, whichever way it moves.
            exit_["best"] = self._price_now(exit_["symbol"])
        if net and trail is not None:  # the tighter of a stop given and the trail wins
            if stop is None and before is not None and trail != before:
                exit_["stop"] = None  # trailed at the old distance: it trails at the new one
            self._trail(exit_, net > 0)
        self._publish(position_id, exit_, "set")

    def restore(
        self, store: Any, held_back: Callable[[str], bool] = lambda order_id: False
    ) -> list[str]:
        """Re-arm the levels the store holds (`trading.exits`, tradelab.trading.exits) for
        positions still open, or still being opened by a working entry order (levels set
        while it works): after a restart a position keeps its stop, target and trailing stop,
        trailed as far as it was. Levels set before the position last closed belong to an
        earlier position and are left. An exit order that ended is still the exit's while
        `held_back(order_id)` (fills of it not booked): no second exit is sent past what the
        broker holds. Returns the position ids re-armed."""
        restored = []
        working = store.get("trading.working", None) or {}
        for pid, saved in sorted((store.get("trading.exits", None) or {}).items()):
            position = store.get(f"trading.positions.{pid}", None) or {}
            owner = tuple(pid.split(":", 1))  # (strategy, symbol)
            if position.get("net_quantity"):
                if saved["seq"] < _closed_seq(store, position):
                    continue  # set for a position that closed since
            elif not any((o.get("strategy"), o.get("symbol")) == owner for o in working.values()):
                continue  # flat, and no entry on its way: nothing to protect
            order = saved.get("exit_order")
            self._arm(
                pid,
                stop=saved["stop"],
                target=saved["target"],
                trail=saved["trail"],
                best=saved.get("best"),
                exit_order=order if order in working or (order and held_back(order)) else None,
            )
            restored.append(pid)
        return restored

    def _arm(self, position_id: str, **levels: Any) -> dict[str, Any]:
        """The position's exit (made on first use), with `levels` set, watched on its symbol."""
        strategy, _, symbol = position_id.partition(":")
        exit_ = self._exits.get(position_id) or {
            "position_id": position_id,
            "strategy": strategy,
            "symbol": symbol,
            "stop": None,
            "target": None,
            "trail": None,
            "best": None,
            "exit_order": None,
            "retry_at": 0,  # market time before which a refused exit is not tried again
        }
        exit_.update(levels)
        self._exits[position_id] = exit_
        self._by_symbol.setdefault(symbol, set()).add(position_id)
        return exit_

    def on_mark(self, payload: Mapping[str, Any]) -> None:
        self.on_price(payload["symbol"], payload["price"])

    def on_price(self, symbol: str, price: float) -> None:
        """`symbol`'s new mark `price`: checks the exits of its positions (a backtest's bar
        passes its close, with no mark payload built for it)."""
        price = float(price)
        self._last_price[symbol] = price
        pids = self._by_symbol.get(symbol)
        if not pids:
            return
        for pid in sorted(pids):  # sorted: exits of one mark are placed in a replayable order
            self._check(self._exits[pid], price)

    def on_order_event(self, topic: str, payload: Mapping[str, Any]) -> None:
        """An exit order that finished without flattening lets the monitor try again."""
        if topic not in _FINISHED:
            return
        for exit_ in self._exits.values():
            if exit_["exit_order"] == payload.get("order_id"):
                exit_["exit_order"] = None

    def on_fill(self, position_id: str, symbol: str, price: float) -> None:
        """A fill in `symbol` at `price`: the latest price, and where a trailing stop armed
        before its position opened (with the entry order working) starts trailing from."""
        self._last_price[symbol] = float(price)
        exit_ = self._exits.get(position_id)
        if exit_ is not None and exit_["trail"] is not None and exit_["best"] is None:
            net = self._net(position_id)
            if net:
                exit_["best"] = float(price)
                if self._trail(exit_, net > 0):
                    self._publish(position_id, exit_, "trailed")

    def on_position_flat(self, position_id: str) -> None:
        self._drop(position_id)

    def on_position_reversed(self, position_id: str) -> None:
        """A fill took the position through zero: its levels were for the other direction
        (a long's stop below the price would stop the new short out at once)."""
        if position_id in self._exits:
            self._drop(position_id)
            self._publish(position_id, None, "reversed")

    def _check(self, exit_: dict[str, Any], price: float) -> None:
        if exit_["exit_order"] is not None or self._runner.current_ts < exit_["retry_at"]:
            return
        net = self._net(exit_["position_id"])
        if net == 0:
            return
        long = net > 0
        if exit_["trail"] is not None:
            best = exit_["best"]
            if best is None or (price > best if long else price < best):
                exit_["best"] = price
                if self._trail(exit_, long):
                    self._publish(exit_["position_id"], exit_, "trailed")
        stop, target = exit_["stop"], exit_["target"]
        reason = None
        if stop is not None and (price <= stop if long else price >= stop):
            reason = "stop"
        elif target is not None and (price >= target if long else price <= target):
            reason = "target"
        if reason is None:
            return
        side = "SELL" if long else "BUY"
        net = self._cancel_resting_exits(exit_, side, net)
        if not net or (net > 0) != long:
            return
        runner = self._runner
        self.exits_placed += 1
        order_id = f"exit-{runner.current_seq}-{self.exits_placed}"
        exit_["exit_order"] = order_id
        self._publish(exit_["position_id"], exit_, f"exit_{reason}", price=price)
        # The strategy's context counts the exit as working, so a close of its own meanwhile
        # (a time exit) does not send a second one.
        ctx = runner.context_of(exit_["strategy"])
        if ctx is not None:
            ctx._track(order_id, exit_["symbol"], -net)
        try:
            runner.desk.place_order(
                exit_["symbol"], side, abs(net), strategy=exit_["strategy"], order_id=order_id
            )
        except BaseException as exc:
            if ctx is not None:
                ctx._on_order_finished({"order_id": order_id})
            if not isinstance(exc, OrderRejectedError):
                raise
            exit_["exit_order"] = None
            exit_["retry_at"] = runner.current_ts + self.retry_ns
            position_id = exit_["position_id"]
            self._publish(position_id, exit_, "exit_refused", refusal=str(exc))
            if self._refusals_told.get(position_id) != str(exc):
                self._refusals_told[position_id] = str(exc)
                log.warning(
                    "%s exit of %s refused: %s; tried again every %g s of market time (the "
                    "same refusal again is journaled, not logged)",
                    reason,
                    position_id,
                    exc,
                    self.retry_ns / NS_PER_S,
                )

    @staticmethod
    def _trail(exit_: dict[str, Any], long: bool) -> bool:
        """Move the stop to the trailing distance from the best price seen, if that is
        tighter; whether it moved."""
        trail, best, stop = exit_["trail"], exit_["best"], exit_["stop"]
        if trail is None or best is None:
            return False
        trailed = best - trail if long else best + trail
        if stop is not None and (trailed <= stop if long else trailed >= stop):
            return False
        exit_["stop"] = without_float_noise(trailed)
        return True

    def _cancel_resting_exits(self, exit_: dict[str, Any], side: str, net: int) -> int:
        """Cancel the strategy's resting limit orders on the exit's side in the symbol (a
        bracket's take-profit) before the market exit: left, one filling later would open the
        other way, and the broker counts it against the exit. Returns the position after."""
        working = self._runner.engine.store.get("trading.working", None) or {}
        resting = [
            order_id
            for order_id, order in sorted(working.items())
            if order.get("strategy") == exit_["strategy"]
            and order.get("symbol") == exit_["symbol"]
            and order.get("side") == side
            and order.get("limit_price") is not None
        ]
        for order_id in resting:
            try:
                self._runner.desk.cancel_order(order_id)
            except OrderRejectedError:  # finished meanwhile: the position read next says how
                log.info("exit of %s: resting order %s already finished", exit_, order_id)
        return self._net(exit_["position_id"]) if resting else net

    def _price_now(self, symbol: str) -> float | None:
        """The latest price of `symbol` this runner has seen, else the store's mark (after a
        restart), else None (then the next price starts the trail)."""
        price = self._last_price.get(symbol)
        if price is None:
            mark = self._runner.engine.store.get(f"market.marks.{symbol}", None) or {}
            price = mark.get("price")
        return None if price is None else float(price)

    def _net(self, position_id: str) -> int:
        pos = self._runner.engine.store.get(f"trading.positions.{position_id}", None)
        return int(pos["net_quantity"]) if pos else 0

    def _drop(self, position_id: str) -> None:
        self._refusals_told.pop(position_id, None)
        exit_ = self._exits.pop(position_id, None)
        if exit_ is not None:
            self._by_symbol.get(exit_["symbol"], set()).discard(position_id)

    def _publish(
        self, position_id: str, exit_: Mapping[str, Any] | None, reason: str, **extra: Any
    ) -> None:
        body = {"position_id": position_id, "reason": reason, **extra}
        for name in ("stop", "target", "trail", "best", "exit_order"):
            body[name] = None if exit_ is None else exit_[name]
        self._runner.submit("trade.exit_updated", body, key=position_id)


def _closed_seq(store: Any, position: Mapping[str, Any]) -> int:
    """The seq of the fill that last closed `position` (0: never closed)."""
    trade_id = position.get("closed_by_trade_id")
    trade = store.get(f"trading.trades.{trade_id}", None) if trade_id else None
    return int((trade or {}).get("seq") or 0)
