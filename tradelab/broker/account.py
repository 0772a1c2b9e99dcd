"""The paper broker's own account: cash, positions, orders and fills, and the margin they block.

This is the broker's record, not the book's: it lives apart from the journal (in an
`AccountFile` when a path is given), so after a restart the broker still holds what it held and
its fill ids continue where they stopped. Not thread-safe on its own: the `PaperBroker` calls it
under its lock.

History bound: as a real broker's order book, it keeps only recent history. Working orders,
cash and positions are always kept; of the fills, the newest `history_fills`; of the finished
orders, the `history_orders` changed last. When one passes its bound by a tenth, the oldest
leave memory and the file in the next save (`trimmed_fills`, `trimmed_orders` count them):
`fills_since` then starts at the oldest fill kept, and an order id that left may be used again.
Which strategy holds each position is kept apart from the fills (`held_by_strategy`), so a
settlement still books each strategy's units after its opening fills have left.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tradelab.broker.account_file import AccountFile, foreign_account
from tradelab.broker.paper_order import PaperOrder, fill_from_payload
from tradelab.errors import InvalidInputError, OrderRejectedError
from tradelab.trading.book import entry_average
from tradelab.trading.orders import (
    Fill,
    OrderRequest,
    OrderType,
    Side,
)


class PaperAccount:
    """Cash, positions (units by symbol), orders and fills of one paper account."""

    def __init__(
        self,
        capital: float,
        *,
        universe: Any,
        short_margin_rate: float,
        path: str | Path | None = None,
        id_prefix: str | None = None,
        history_fills: int = 20_000,
        history_orders: int = 20_000,
    ) -> None:
        self.universe = universe
        self.history_fills = history_fills
        self.history_orders = history_orders
        self.short_margin_rate = short_margin_rate
        self.cash = float(capital)
        self.positions: dict[str, int] = {}
        # Volume-weighted entry price of each held position, averaged as the book averages.
        self.average_prices: dict[str, float] = {}
        # Price per short unit margin is taken on: an option's strike; for an instrument with
        # no strike (a stock, an index: strike 0), its latest fill price, so a backtest never
        # sizes margin on a price it has not reached yet.
        self.strikes: dict[str, float] = {}
        self._on_fill_price: set[str] = set()
        self.orders: dict[str, PaperOrder] = {}
        self.working: dict[str, PaperOrder] = {}  # not yet terminal; quotes only scan these
        self.fills: list[Fill] = []  # fills[i].fill_seq == fill_base + i + 1
        self.fill_base = 0  # fills through this fill_seq have left the account (the bound)
        # Units held per symbol and strategy, as the fills tagged them (the fills may leave).
        self.held_by_strategy: dict[str, dict[str, int]] = {}
        self.trimmed_fills = 0  # by this process, since it opened the account
        self.trimmed_orders = 0
        self._trimmed_order_ids: list[str] = []  # left memory, to leave the file next save
        self.next_order = 1
        self._dirty_orders: dict[str, PaperOrder] = {}
        self._saved_fills = 0
        self._file = AccountFile(path) if path is not None else None
        self.closed = False  # close() was called: its file takes nothing more
        stored = self._file.load() if self._file is not None else None
        if stored is None:
            # Ids must not repeat across broker restarts: the journal keeps trades by id. A file
            # keeps its prefix; without one, a random prefix keeps two sessions' ids apart.
            self.id_prefix = id_prefix or f"PB{uuid.uuid4().hex[:6].upper()}"
            self._dirty = True
            self.save()
            return
        meta, orders, fills = stored
        if id_prefix is not None and id_prefix != meta["id_prefix"]:
            raise InvalidInputError(
                f"account file {path} belongs to id prefix {meta['id_prefix']!r}, not "
                f"{id_prefix!r}; use another file or drop id_prefix"
            )
        self.id_prefix = meta["id_prefix"]
        self.cash = meta["cash"]
        self.positions = meta["positions"]
        # A file saved before costs were kept has none: those positions' costs stay unknown.
        self.average_prices = meta.get("average_prices", {})
        self.strikes = meta["strikes"]
        self.next_order = meta["next_order"]
        for record in orders:
            try:
                order = PaperOrder.from_record(record, universe)
            except InvalidInputError as exc:
                symbol = record["request"]["symbol"]
                raise foreign_account(self.path, symbol, universe, exc) from exc
            self.orders[order.request.order_id] = order
            if not order.status.is_terminal:
                self.working[order.request.order_id] = order
            if not order.contract.strike:
                self._on_fill_price.add(order.request.symbol)
        self.fills = [fill_from_payload(f) for f in fills]
        self.fill_base = self.fills[0].fill_seq - 1 if self.fills else meta.get("fill_base", 0)
        held = meta.get("held_by_strategy")
        if held is None:  # saved before the history bound: every fill is still in the file
            for fill in self.fills:
                self._hold(fill)
        else:
            self.held_by_strategy = held
        self._saved_fills = len(self.fills)
        self._dirty = False

    @property
    def path(self) -> Path | None:
        return None if self._file is None else self._file.path

    @property
    def file(self) -> AccountFile | None:
        return self._file

    # -- changes ----------------------------------------------------------------------------
    def new_broker_order_id(self) -> str:
        broker_order_id = f"{self.id_prefix}-{self.next_order:06d}"
        self.next_order += 1
        self._dirty = True
        return broker_order_id

    def add_order(self, order: PaperOrder) -> None:
        self.orders[order.request.order_id] = order
        self.working[order.request.order_id] = order
        if order.contract.strike:
            self.strikes[order.request.symbol] = order.contract.strike
        else:
            self._on_fill_price.add(order.request.symbol)
        self.touch(order)

    def touch(self, order: PaperOrder) -> None:
        """Mark an order changed (saved on the next `save`); finished orders leave `working`."""
        order_id = order.request.order_id
        if order.status.is_terminal and not order.reported_cancelled:
            self.working.pop(order_id, None)
            self._forget_if_idle(order.request.symbol)
        # Last changed last, as the file's rows come back: the history bound drops from the front.
        self.orders[order_id] = self.orders.pop(order_id, order)
        self._dirty_orders[order_id] = order
        self._dirty = True

    def record_fill(self, order: PaperOrder, size: int, price: float, fee: float, ts: int) -> Fill:
        r = order.request
        order.filled += size
        order.notional += price * size
        signed = size if r.side is Side.BUY else -size
        self.move(r.symbol, signed, price, fee)
        seq = self.fill_base + len(self.fills) + 1
        fill = Fill(
            fill_seq=seq,
            trade_id=f"{self.id_prefix}-F{seq:06d}",
            order_id=r.order_id,
            broker_order_id=order.broker_order_id,
            symbol=r.symbol,
            side=r.side,
            quantity=size,
            price=price,
            fee=fee,
            ts=ts,
            strategy=r.strategy,
            lot_size=order.lot_size,
        )
        self.fills.append(fill)
        self._hold(fill)
        return fill

    def _hold(self, fill: Fill) -> None:
        by = self.held_by_strategy.setdefault(fill.symbol, {})
        held = by.get(fill.strategy, 0) + (
            fill.quantity if fill.side is Side.BUY else -fill.quantity
        )
        if held:
            by[fill.strategy] = held
        else:
            by.pop(fill.strategy, None)
            if not by:
                del self.held_by_strategy[fill.symbol]

    def fills_from(self, fill_seq: int) -> list[Fill]:
        """The fills kept after `fill_seq` (from the oldest kept when older ones have left)."""
        return self.fills[max(fill_seq - self.fill_base, 0) :]

    def move(self, symbol: str, signed: int, price: float, fee: float) -> None:
        """Change a position by `signed` units at `price`, paying the premium and `fee`."""
        held = self.positions.get(symbol, 0)
        self.positions[symbol] = held + signed
        if not self.positions[symbol]:
            del self.positions[symbol]
        self._move_average(symbol, held, signed, price)
        self.cash += -signed * price - fee
        if symbol in self._on_fill_price:
            self.strikes[symbol] = price
        self._forget_if_idle(symbol)
        self._dirty = True

    def _forget_if_idle(self, symbol: str) -> None:
        """A symbol neither held nor in a working order needs no margin price: kept, every
        contract ever traded stayed in the account (and in each save of it) for good."""
        if symbol not in self.positions and all(
            o.request.symbol != symbol for o in self.working.values()
        ):
            self.strikes.pop(symbol, None)
            self._on_fill_price.discard(symbol)

    def _move_average(self, symbol: str, held: int, signed: int, price: float) -> None:
        """The average as `trading.book.apply_fill` keeps it: adding re-averages, reducing keeps
        it, opening or crossing zero starts at `price`; an unknown cost added to stays unknown."""
        after = held + signed
        average = self.average_prices.pop(symbol, None)
        if after == 0 or (average is None and held != 0 and (after > 0) == (held > 0)):
            return  # flat; or a position of unknown cost added to or reduced: still unknown
        self.average_prices[symbol] = entry_average(held, average or 0.0, signed, price)

    def save(self) -> None:
        """Write what changed since the last save in one transaction, the history bound's trim
        with it (without a file: only the trim)."""
        if self._file is None:  # nothing to write; the bound holds all the same
            self._trim()
            self._trimmed_order_ids.clear()
            self._dirty_orders.clear()
            return
        if not self._dirty:
            return
        new_fills = [f.to_payload() for f in self.fills[self._saved_fills :]]
        base = self.fill_base
        self._trim()
        self._file.save(
            {
                "id_prefix": self.id_prefix,
                "cash": self.cash,
                "positions": self.positions,
                "average_prices": self.average_prices,
                "strikes": self.strikes,
                "next_order": self.next_order,
                "fill_base": self.fill_base,
                "held_by_strategy": self.held_by_strategy,
            },
            [o.to_record() for o in self._dirty_orders.values()],
            new_fills,
            fills_through=self.fill_base if self.fill_base != base else 0,
            orders_gone=self._trimmed_order_ids,
        )
        self._dirty_orders.clear()
        self._trimmed_order_ids = []
        self._saved_fills = len(self.fills)
        self._dirty = False

    def _trim(self) -> None:
        """Drop the oldest fills and finished orders past their bound (plus a tenth, so a trim
        is one step every so often, not one row every save); see the module docstring."""
        fills = self.fills
        if len(fills) > self.history_fills + self.history_fills // 10:
            gone = len(fills) - self.history_fills
            del fills[:gone]
            self.fill_base += gone
            self.trimmed_fills += gone
        finished = len(self.orders) - len(self.working)
        if finished > self.history_orders + self.history_orders // 10:
            gone = finished - self.history_orders
            for order_id in list(self.orders):
                if not gone:
                    break
                if order_id in self.working:
                    continue
                del self.orders[order_id]
                self._dirty_orders.pop(order_id, None)
                self._trimmed_order_ids.append(order_id)
                gone -= 1
            self.trimmed_orders += len(self._trimmed_order_ids)

    def close(self) -> None:
        """Close the file; what is not saved stays unsaved (the broker saves each change)."""
        self.closed = True
        if self._file is not None:
            self._file.close()

    # -- margin -----------------------------------------------------------------------------
    def check_margin(
        self, request: OrderRequest, contract: Any, quotes: dict, fee: tuple = (0.0, 0.0)
    ) -> None:
        """Refuse an order the free cash cannot carry (premium of a buy, margin of a short), with
        its fee (`fee`: flat per fill, rate of the value) at the price it is checked at.

        The part of an order that only reduces the account's position in its symbol (less what
        working orders on the same side will already take off it) is never refused: it lowers
        the exposure margin protects, and cash driven below zero (a fill at a gap, a fee) must
        not trap a position open, its stop loss included. The rest is an opening, checked."""
        quote = quotes.get(request.symbol)
        room = self._reducible(request.symbol, request.side)
        if request.quantity <= room:
            return
        rate = self.short_margin_rate
        limit = request.order_type is OrderType.LIMIT
        if request.side is Side.BUY:
            price = request.limit_price if limit else quote[1]
            covering = min(request.quantity, room)
            blocked = self.strikes.get(request.symbol, contract.strike)
            needed = price * request.quantity - covering * blocked * rate
        else:
            price = request.limit_price if limit else quote[0]
            opening = request.quantity - min(request.quantity, room)
            needed = opening * _margin_price(contract, request, quote) * rate
        needed += fee[0] + fee[1] * price * request.quantity
        available = self.cash - self._blocked_margin() - self._working_reserve(quotes, fee)
        if needed > available:
            raise OrderRejectedError(
                f"insufficient margin for {request.side} {request.quantity} {request.symbol}: "
                f"needs {needed:,.2f}, available {available:,.2f}"
            )

    def _reducible(self, symbol: str, side: Side) -> int:
        """Units an order on `side` can still take off the position in `symbol`: the position
        (long for a sell, short for a buy) less the same side's working orders there."""
        held = self.positions.get(symbol, 0)
        position = held if side is Side.SELL else -held
        working = sum(
            order.remaining
            for order in self.working.values()
            if order.request.symbol == symbol and order.request.side is side
        )
        return max(position - working, 0)

    def _working_reserve(self, quotes: dict, fee: tuple = (0.0, 0.0)) -> float:
        """Cash that working orders will take when they fill: premium of the unfilled part of
        a buy (at its limit, else the ask), short margin of the part of a sell that opens
        (the long position covers the sells in the order they were placed), and each one's fee.
        Without it, several working orders each pass alone and then overdraw the cash."""
        rate = self.short_margin_rate
        reserve = 0.0
        long_left: dict[str, int] = {}  # long units not yet promised to an earlier working sell
        for order in self.working.values():
            r, left = order.request, order.remaining
            quote = quotes.get(r.symbol) or (0, 0)
            limit = r.limit_price if r.order_type is OrderType.LIMIT else None
            price = limit or quote[1 if r.side is Side.BUY else 0]
            reserve += fee[0] + fee[1] * price * left
            if r.side is Side.BUY:
                reserve += price * left
            else:
                held = long_left.get(r.symbol, max(self.positions.get(r.symbol, 0), 0))
                covered = min(left, held)
                long_left[r.symbol] = held - covered
                price = _margin_price(order.contract, r, quotes.get(r.symbol))
                reserve += (left - covered) * price * rate
        return reserve

    def _blocked_margin(self) -> float:
        rate = self.short_margin_rate
        return sum(-q * self.strikes.get(s, 0) * rate for s, q in self.positions.items() if q < 0)


def _margin_price(contract: Any, request: OrderRequest, quote: list[float] | None) -> float:
    """Price per unit a sell's short margin is taken on: the option's strike, else the price it
    sells at (its limit, or the bid now)."""
    if contract.strike:
        return contract.strike
    if request.order_type is OrderType.LIMIT:
        return float(request.limit_price)
    return float((quote or (0.0, 0.0))[0])
