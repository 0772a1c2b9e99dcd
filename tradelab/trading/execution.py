"""The execution desk: checks orders, sends them to a Broker and turns its callbacks into events.

Every step goes through one `submit(topic, payload, *, key, critical)` callable (Engine.submit in
a session): order.submitted, the broker's order.* lifecycle, a critical `trade.executed` per
fill and a critical `position.closed` when a position goes flat. Orders that fail the checks
become `order.rejected` plus an `OrderRejectedError` naming the bad value; the book is untouched.
A symbol or order id that cannot name a state path level (see `check_path_level`) is refused with
an InvalidInputError before anything is submitted or sent: no event may carry it.
Thread model: any thread may call. A short lock orders the desk's book-keeping and queues its
events; they are submitted outside it, FIFO (`OrderedOutbox`), so a critical submit waiting for
the kernel thread never blocks a strategy that places an order from that thread.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from tradelab.broker.base import Broker
from tradelab.errors import InvalidInputError, OrderRejectedError
from tradelab.market.instruments import OptionUniverse
from tradelab.state.paths import check_path_level, is_path_level
from tradelab.trading.book import apply_fill, empty_position, position_id
from tradelab.trading.orders import (
    OrderRequest,
    OrderType,
    OrderUpdate,
    check_price,
    check_quantity,
    check_strategy,
    coerce_order_type,
    coerce_side,
)
from tradelab.trading.outbox import OrderedOutbox

Submit = Callable[..., Any]


class ExecutionDesk:
    """Places orders with a broker and journals what happens to them."""

    def __init__(
        self,
        broker: Broker,
        submit: Submit,
        *,
        universe: OptionUniverse | None = None,
        positions: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.broker = broker
        self._submit = submit
        self.universe = universe or OptionUniverse()
        self._lock = threading.RLock()
        self._outbox = OrderedOutbox()
        # The desk's own running view of positions, kept with the same arithmetic as the
        # reducers, so it knows when a fill makes a position flat. Seed it from the store
        # (`trading.positions`) after a restart.
        self._positions: dict[str, dict[str, Any]] = {
            pid: dict(pos) for pid, pos in (positions or {}).items()
        }
        broker.add_listener(self.on_order_update, self.on_connection)

    def place_order(
        self,
        symbol: str,
        side: str,
        quantity: int,
        *,
        order_type: str = "MARKET",
        limit_price: float | None = None,
        strategy: str = "manual",
        order_id: str | None = None,
    ) -> str:
        """Check and send an order; returns its order id. Refusals raise `OrderRejectedError`
        (journaled as `order.rejected`), except a symbol or order id that is not a valid id at
        all: that is an InvalidInputError and nothing is journaled or sent."""
        check_path_level(symbol, "symbol")
        if order_id is not None:
            check_path_level(order_id, "order id")
        order_id = order_id or f"O-{uuid.uuid4().hex[:12]}"
        with self._lock:
            try:
                request = self._checked_request(
                    order_id, symbol, side, quantity, order_type, limit_price, strategy
                )
            except InvalidInputError as exc:
                self._queue(
                    "order.rejected",
                    {
                        "order_id": order_id,
                        "symbol": symbol,
                        # Only text that encodes anywhere: the refused value is named in reason.
                        "side": str(side) if str(side).isascii() else ascii(side),
                        "quantity": quantity if isinstance(quantity, int) else None,
                        "strategy": strategy if is_path_level(strategy) else "manual",
                        "reason": str(exc),
                    },
                    key=order_id,
                )
                self._outbox.drain()
                raise OrderRejectedError(str(exc)) from exc
            self._queue("order.submitted", request.to_payload(), key=order_id)
        self._outbox.drain()
        # The broker reports acceptance, fills or the rejection through on_order_update;
        # a rejection is re-raised here for the caller.
        self.broker.submit_order(request)
        return order_id

    def _queue(self, topic: str, payload: dict, *, key: str = "", critical: bool | None = None):
        self._outbox.put(lambda: self._submit(topic, payload, key=key, critical=critical))

    def cancel_order(self, order_id: str) -> None:
        self.broker.cancel_order(order_id)

    def reset_daily_pnl(self, session_date: str) -> None:
        """Start the day's P&L (critical: a restart must not count yesterday into today)."""
        with self._lock:
            self._queue("pnl.session_reset", {"session_date": session_date}, critical=True)
        self._outbox.drain()

    def _checked_request(
        self, order_id, symbol, side, quantity, order_type, limit_price, strategy
    ) -> OrderRequest:
        contract = self.universe.parse(symbol)
        side_ = coerce_side(side)
        type_ = coerce_order_type(order_type)
        strategy = check_strategy(strategy)
        qty = check_quantity(quantity, self.universe.lot_size(contract), symbol)
        if type_ is OrderType.LIMIT:
            if limit_price is None:
                raise InvalidInputError(f"limit order for {symbol} needs a limit price")
            limit_price = check_price(limit_price, "limit price", symbol)
        elif limit_price is not None:
            raise InvalidInputError(
                f"market order for {symbol} carries limit price {limit_price!r}; "
                "use order_type='LIMIT' or drop the price"
            )
        return OrderRequest(order_id, symbol, side_, qty, type_, limit_price, strategy)

    # -- broker callbacks -------------------------------------------------------------------
    def on_order_update(self, update: OrderUpdate) -> None:
        with self._lock:
            self._book(update)
        self._outbox.drain()

    def _book(self, update: OrderUpdate) -> None:
        """Advance the desk's position and queue the events for one broker update."""
        _check_update_ids(update)  # broker ids become path levels too: refuse before queueing
        self._queue(f"order.{update.status}", update.to_payload(), key=update.order_id)
        if update.fill is None:
            return
        fill = update.fill
        pid = position_id(fill.strategy, fill.symbol)
        before = self._positions.get(pid) or empty_position(
            fill.strategy, fill.symbol, fill.lot_size
        )
        signed = fill.quantity * fill.side.sign
        after, _ = apply_fill(before, signed, fill.price, fill.fee)
        self._positions[pid] = after
        trade = fill.to_payload()
        trade["position_id"] = pid
        self._queue("trade.executed", trade, key=pid, critical=True)
        if after["net_quantity"] == 0:
            self._queue(
                "position.closed",
                {
                    "position_id": pid,
                    "symbol": fill.symbol,
                    "strategy": fill.strategy,
                    "trade_id": fill.trade_id,
                    "realized_pnl": after["realized_pnl"],
                    "fees": after["fees"],
                },
                key=pid,
                critical=True,
            )

    def on_connection(self, connected: bool, ts: int) -> None:
        topic = "broker.reconnected" if connected else "broker.disconnected"
        with self._lock:
            self._queue(topic, {"broker": self.broker.name, "ts_broker": ts}, key=self.broker.name)
        self._outbox.drain()


def _check_update_ids(update: OrderUpdate) -> None:
    check_path_level(update.order_id, "broker update order id")
    check_path_level(update.symbol, "broker update symbol")
    check_path_level(update.strategy, "broker update strategy name")
    fill = update.fill
    if fill is not None:
        check_path_level(fill.trade_id, "broker fill trade id")
        check_path_level(fill.symbol, "broker fill symbol")
        check_path_level(fill.strategy, "broker fill strategy name")
