"""How the runner hands one journaled event or tick to its strategies, its position monitor
and its trade log (`StrategyRunner._dispatch` calls `_handle` on the runner's thread).

Order, per event: the monitor first (a bar's or mark's price checks the exit levels; a fill
moves them), then the strategies' hooks (read-only payloads, so one strategy cannot change
what the next sees); a fill also reaches the trade log, once, at the seq it was booked at.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from tradelab.market.reducers import bar_mark_price
from tradelab.runner.strategy import PAUSED, RUNNING

# An order state the reconciler adopts that ends the order unfilled, as the order.* topic that
# says so. Not "filled": its fill is a trade of its own (adopted, or only flagged while the book
# still holds the position, when an exit must not be sent again).
_ADOPTED_END = {"cancelled": "order.cancelled", "rejected": "order.rejected"}
_ENDS = frozenset(_ADOPTED_END.values())
_ENDS_AWAITING_KEPT = 1_000


class EventHandlingMixin:
    def _handle(self, event: Any) -> None:
        topic = event.topic
        payload = event.payload
        self.current_ts = payload.get("end") or payload.get("ts") or self.current_ts  # bar: end
        if event.seq:
            self.current_seq = event.seq
            self.events_handled += 1
        if topic == "market.tick":
            self._each("on_tick", payload)
        elif topic == "market.bar":
            price = bar_mark_price(payload)  # a backtest's bar is also the mark (mark.updated)
            if price is not None:
                self.monitor.on_price(payload["symbol"], price)
            self._each("on_bar", payload)
            with self._progress:
                self.bars_handled += 1
                if self._bar_waiters:  # a backtest's own loop waits for nobody: no notify
                    self._progress.notify_all()
            if self._source is not None and self.bars_handled < self._source[1]:
                self._play(self.bars_handled)
        elif topic == "mark.updated":
            self.monitor.on_mark(payload)
        elif topic == "trade.executed":
            self._on_trade(event.seq, payload)
        elif topic == "reconciliation.fixed":
            # A fill the broker made and the book adopted (a missed report, or a session
            # started beside an account that holds positions) is the strategy's as any other:
            # without it, a strategy that had sold its straddle would sell it again.
            trade = payload.get("trade")
            if trade is not None:  # an adjusting trade has no market time of its own: now's
                self._on_trade(event.seq, {**trade, "ts": trade.get("ts") or self.current_ts})
            order = payload.get("order")
            if order is not None and order.get("status") in _ADOPTED_END:
                # The broker's end of an order whose report was lost, as its order.* event
                # would have said: else the strategy counts it working for ever (and `target`
                # sends nothing), and a stop's exit order is never placed again. Unless fills of
                # it are not booked (a missed fill only flagged): the book then holds more than
                # the broker, and an exit sized on the book would sell past what it holds.
                end = _ADOPTED_END[order["status"]]
                self._order_finished(end, order, exits=not self._held_for_fills(end, order))
        elif topic.startswith("order."):
            held = topic in _ENDS and self._held_for_fills(topic, payload)
            self._order_finished(topic, payload, exits=not held)

    def _held_for_fills(self, end: str, order: Any) -> bool:
        """Whether the exit of an order that ended (`end`: cancelled or rejected) is held back
        because fills the broker reports of it are not booked; it is re-armed when they are
        (`_on_trade`)."""
        if not int(order.get("filled_quantity") or 0) or self._fills_booked(order):
            return False
        waiting = self.ends_awaiting_fills
        if len(waiting) >= _ENDS_AWAITING_KEPT:
            del waiting[next(iter(waiting))]  # the oldest: its fills never came
        waiting[order["order_id"]] = (end, order)
        return True

    def held_after_restart(self, order_id: str) -> bool:
        """After a restart: whether the exit of the order `order_id` stays held back, as before
        it, for fills of it the book has not booked (`ends_awaiting_fills` is not journaled;
        the order's record and the trades are)."""
        order = self.engine.store.get(f"trading.orders.{order_id}", None) or {}
        end = _ADOPTED_END.get(order.get("status"))
        return end is not None and self._held_for_fills(end, order)

    def _fills_booked(self, order: Any) -> bool:
        """Whether the book holds every fill the broker reports of `order`."""
        trades = self.engine.store.get("trading.trades", None) or {}
        order_id = order["order_id"]
        booked = sum(int(t["quantity"]) for t in trades.values() if t.get("order_id") == order_id)
        return int(order.get("filled_quantity") or 0) <= booked

    def _order_finished(self, topic: str, payload: Any, exits: bool = True) -> None:
        if exits:
            self.monitor.on_order_event(topic, payload)
        if topic in ("order.cancelled", "order.rejected", "order.denied"):
            slot = self._slots.get(payload.get("strategy"))
            if slot is None:  # an adopted order state names no strategy: whose it was
                order_id = payload.get("order_id")
                slot = next((s for s in self._slots.values() if s.ctx.tracks(order_id)), None)
            if slot is not None:
                slot.ctx._on_order_finished(payload)

    def _on_trade(self, seq: int, payload: Any) -> None:
        trade = self.engine.store.get(f"trading.trades.{payload.get('trade_id')}", None)
        if trade is not None and trade.get("seq", seq) != seq:
            return  # a late report of a fill booked (and handed on) at an earlier seq
        waiting = self.ends_awaiting_fills.get(payload.get("order_id"))
        if waiting is not None and self._fills_booked(waiting[1]):
            del self.ends_awaiting_fills[payload["order_id"]]
            self.monitor.on_order_event(*waiting)  # its exit may be placed again
        if seq > self._seeded_seq:  # else the round trips were seeded with it
            self.trade_log.on_fill(payload)
        if trade is not None and seq > self._seeded_seq:
            after = trade["position_after"]
            before = after - (trade["quantity"] if trade["side"] == "BUY" else -trade["quantity"])
            if before * after < 0:  # dropped before on_fill: levels set there are the new side's
                self.monitor.on_position_reversed(payload["position_id"])
            self.monitor.on_fill(payload["position_id"], trade["symbol"], trade["price"])
        # Flat after this fill, by the fill's own record (the store's position may already hold
        # a later fill: two fills on one quote): its levels go, before on_fill, where levels
        # set are for the position the strategy opens next.
        if trade is not None:
            flat = not trade["position_after"]
        else:
            pos = self.engine.store.get(f"trading.positions.{payload['position_id']}", None)
            flat = pos is not None and not pos["net_quantity"]
        if flat:
            self.monitor.on_position_flat(payload["position_id"])
        slot = self._slots.get(payload["strategy"])
        if slot is not None:
            if seq > slot.ctx.seeded_seq:
                slot.ctx._on_fill(payload)
            if slot.state == RUNNING:
                self._call(slot, "on_fill", MappingProxyType(payload))
            elif slot.state == PAUSED:
                slot.hold_fill(payload)

    def _each(self, hook: str, payload: Any) -> None:
        # Read-only: one strategy changing a bar must not change what the next one (or the
        # trade log, or another bus subscriber) sees.
        payload = MappingProxyType(payload)
        for slot in self._slots.values():
            if slot.state == RUNNING:
                self._call(slot, hook, payload)
