"""Reducers of the trading book: orders, trades, positions and P&L from journaled events.

Pure functions of (StateView, Event) -> [(dot_path, value)], so a replay of the journal rebuilds
the book exactly; a fill or a mark costs O(positions it touches), never O(book). State written:
  trading.orders.<order_id>          order record and lifecycle status
  trading.working.<order_id>         unfinished orders: symbol, side, remaining qty, limit price
  trading.trades.<trade_id>          each fill, with the P&L it realized
  trading.positions.<position_id>    "<strategy>:<symbol>" net qty (units), average, P&L, fees
  trading.open_positions.<symbol>    ids of the positions open in that symbol (sorted)
  trading.open_by_strategy.<name>    ids of the positions that strategy holds open (sorted)
  pnl.realized / unrealized / fees / net, pnl.by_strategy.<strategy>, pnl.daily (by delta)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tradelab.errors import InvalidInputError
from tradelab.events import Event
from tradelab.market.reducers import bar_mark_price
from tradelab.state import DELETE, fresh_values
from tradelab.state.paths import path_level
from tradelab.trading import exits, history, risk_state
from tradelab.trading.book import apply_fill, empty_position, remark, with_open, without_open
from tradelab.trading.orders import FINISHED_STATUSES
from tradelab.trading.pnl import PnlDelta, pnl_changes, unrealized_pnl_changes

Change = tuple[str, Any]
ORDER_TOPICS = (
    "order.submitted",
    "order.accepted",
    "order.partially_filled",
    "order.filled",
    "order.cancelled",
    "order.rejected",
    "order.denied",
)
# How far along its life a status is. Reports of one order can reach the engine from two
# threads (the caller's and the feed's) in either order; a record only moves forward, so the
# fold ends the same whichever arrived first.
_RANK = {
    "submitted": 0,
    "accepted": 1,
    "partially_filled": 2,
    "filled": 3,
    "cancelled": 3,
    "rejected": 3,
    "denied": 3,
}
_ORDER_FIELDS = (
    "broker_order_id",
    "filled_quantity",
    "remaining_quantity",
    "average_price",
    "reason",
)
# Only the submission carries these: filled in even when it is folded after a broker report.
_REQUEST_FIELDS = ("order_type", "limit_price", "exit_only")


def order_reducer(view: Any, event: Event) -> Iterable[Change]:
    """Keep one record per order; it only moves forward (a finished order is final, a late
    report of an earlier stage changes nothing), and `trading.working` indexes unfinished ones."""
    payload = event.payload
    order_id = path_level(payload["order_id"], "order id")
    path = f"trading.orders.{order_id}"
    status = event.topic.split(".", 1)[1]
    previous = view.get(path)
    if previous is None:
        record: dict[str, Any] = {
            "order_id": order_id,
            "symbol": payload.get("symbol"),
            "side": payload.get("side"),
            "quantity": payload.get("quantity"),
            "order_type": payload.get("order_type", "MARKET"),
            "limit_price": payload.get("limit_price"),
            "strategy": payload.get("strategy", "manual"),
            "broker_order_id": None,
            "filled_quantity": 0,
            "remaining_quantity": payload.get("quantity"),
            "average_price": 0.0,
            "reason": "",
            "submitted_ts": event.ts,
        }
        if status == "submitted" and payload.get("ts") is not None:
            record["sent_ts"] = payload["ts"]  # market time: the risk gate's order rate
        if status == "submitted" and payload.get("exit_only"):
            record["exit_only"] = True  # a flatten's close: a halt does not cancel it
    else:
        record = dict(previous)
        before = _RANK.get(record.get("status"), 0)
        rank = _RANK[status]
        late = rank < before or (rank == before and rank == 3)
        late = late or (
            rank == before == 2
            and payload.get("filled_quantity", 0) <= record.get("filled_quantity", 0)
        )
        if late:
            if status != "submitted":
                return []
            for name in _REQUEST_FIELDS:
                if name in payload:
                    record[name] = payload[name]
            return [] if record == previous else [(path, record)]
    for name in _ORDER_FIELDS:
        if name in payload and payload[name] is not None:
            record[name] = payload[name]
    record["status"] = status
    record["updated_ts"] = event.ts
    record["last_seq"] = event.seq
    was_working = previous is not None and previous.get("status") not in FINISHED_STATUSES
    return [(path, record), *working_index_changes(order_id, record, was_working)]


def working_index_changes(order_id: str, record: dict, was_working: bool) -> list[Change]:
    """`trading.working.<id>`, the index of unfinished orders, after `record` changed: the
    order's entry while it works, deleted once it is finished (if it had one)."""
    working = f"trading.working.{order_id}"
    if record["status"] in FINISHED_STATUSES:
        return [(working, DELETE)] if was_working else []
    entry = {
        "symbol": record["symbol"],
        "side": record["side"],
        "strategy": record["strategy"],
        "remaining_quantity": record["remaining_quantity"],
        "limit_price": record.get("limit_price"),
    }
    if record.get("exit_only"):
        entry["exit_only"] = True
    return [(working, entry)]


def trade_reducer(view: Any, event: Event) -> Iterable[Change]:
    """A fill moves its position, realizes P&L on any closed units and charges its fee.

    Cost is O(1) in the size of the book: one position, the open index of its symbol and
    strategy (only when it opens or goes flat), and the P&L totals by delta.
    """
    p = event.payload
    pid = path_level(p["position_id"], "position id")
    # The trade id, symbol and strategy name levels of the paths written below.
    trade_id = path_level(p["trade_id"], "trade id")
    path_level(p["symbol"], "symbol")
    path_level(p["strategy"], "strategy name")
    trading = view.get("trading") or {}
    if trade_id in (trading.get("trades") or {}):
        # The broker's late report of a fill the reconciler adopted meanwhile: booked once.
        return []
    position = (trading.get("positions") or {}).get(pid) or empty_position(
        p["strategy"], p["symbol"], p["lot_size"]
    )
    signed = p["quantity"] if p["side"] == "BUY" else -p["quantity"]
    fee = float(p["fee"])
    market = view.get(f"market.marks.{p['symbol']}")
    if market is not None and market.get("price") is not None:
        # Valued at the symbol's mark from the fill on, as the reconciler's fixes are: at its
        # own price, a new position hid the spread paid from the loss limit until the next mark.
        position = {**position, "mark": market["price"]}
    updated, realized = apply_fill(position, signed, float(p["price"]), fee)
    updated["last_trade_id"] = trade_id
    # The fill's market time (a replay's or a backtest's clock, as analytics' fills have it),
    # not when the engine stamped it; the stamp for a fill without one.
    at = p.get("ts") or event.ts
    updated["updated_ts"] = at
    before, after = position["net_quantity"], updated["net_quantity"]
    if before == 0 or before * after < 0:
        # From flat, or a reversal: the position held now opened with this fill (the book
        # keeps its fills from here; a stop-and-reverse strategy is never flat).
        updated["opened_ts"] = at
        updated["opened_seq"] = event.seq
    trade = dict(p)
    trade["realized_pnl"] = realized
    trade["seq"] = event.seq
    trade["position_after"] = updated["net_quantity"]
    trade["position_realized_pnl"] = updated["realized_pnl"]
    trade["position_fees"] = updated["fees"]
    changes: list[Change] = [
        (f"trading.trades.{trade_id}", trade),
        (f"trading.positions.{pid}", updated),
    ]
    index_changes, strategy_flat, book_flat = _open_index_changes(trading, pid, position, updated)
    changes.extend(index_changes)
    strategy = updated["strategy"]
    delta = PnlDelta(
        strategy, realized, updated["unrealized_pnl"] - position["unrealized_pnl"], fee
    )
    changes.extend(
        pnl_changes(
            view.get("pnl"),
            (delta,),
            flat_strategies=(strategy,) if strategy_flat else (),
            book_flat=book_flat,
        )
    )
    return changes


@fresh_values
def mark_reducer(view: Any, event: Event) -> Iterable[Change]:
    """Re-value the open positions in the marked symbol: O(positions open in that symbol)."""
    return _remark_symbol(view, event.payload["symbol"], event.payload["price"])


@fresh_values
def bar_mark_reducer(view: Any, event: Event) -> Iterable[Change]:
    """A bar carrying `"mark": true` (a backtest's) marks its symbol at its close, as a
    `mark.updated` would (see tradelab.market.reducers)."""
    price = bar_mark_price(event.payload)
    return () if price is None else _remark_symbol(view, event.payload["symbol"], price)


def _remark_symbol(view: Any, symbol: str, price: Any) -> list[Change]:
    trading = view.get("trading")
    if not trading:
        return []
    changes: list[Change] = []
    by_symbol = trading.get("open_positions")
    if by_symbol is None:  # state written before the open index existed
        positions = trading.get("positions")
        if not positions:
            return []
        by_symbol, by_strategy = rebuilt_open_index(positions)
        changes += [
            ("trading.open_positions", by_symbol),
            ("trading.open_by_strategy", by_strategy),
        ]
    pids = by_symbol.get(symbol)
    if not pids:
        return changes
    price = float(price)
    if price - price != 0.0:  # stored in positions as computed (fresh_values): checked here
        raise InvalidInputError(f"mark price for {symbol} must be finite, got {price!r}")
    positions = trading["positions"]
    moves: list[tuple[str, float]] = []
    for pid in pids:
        before = positions[pid]
        if before["mark"] == price:
            continue
        after = remark(before, price)
        changes.append((f"trading.positions.{pid}", after))
        unrealized = after["unrealized_pnl"] - before["unrealized_pnl"]
        if unrealized:
            moves.append((after["strategy"], unrealized))
    if moves:
        changes += unrealized_pnl_changes(view.get("pnl"), moves)
    return changes


def rebuilt_open_index(
    positions: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(open ids by symbol, open ids by strategy) from scratch, for state that predates them."""
    by_symbol: dict[str, tuple[str, ...]] = {}
    by_strategy: dict[str, tuple[str, ...]] = {}
    for pid in sorted(positions):
        position = positions[pid]
        if position["net_quantity"]:
            by_symbol[position["symbol"]] = with_open(by_symbol.get(position["symbol"]), pid)
            by_strategy[position["strategy"]] = with_open(
                by_strategy.get(position["strategy"]), pid
            )
    return by_symbol, by_strategy


def _open_index_changes(
    trading: Mapping[str, Any], pid: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[list[Change], bool, bool]:
    """Index writes for a fill, and whether its strategy / the whole book is now flat."""
    opened = not before["net_quantity"] and after["net_quantity"]
    closed = before["net_quantity"] and not after["net_quantity"]
    by_symbol = trading.get("open_positions")
    by_strategy = trading.get("open_by_strategy")
    rebuild = by_symbol is None or by_strategy is None
    if not (opened or closed or rebuild):
        return [], False, False
    if rebuild:
        by_symbol, by_strategy = rebuilt_open_index(trading.get("positions") or {})
    symbol, strategy = after["symbol"], after["strategy"]
    step = with_open if opened else without_open
    symbol_ids = step(by_symbol.get(symbol), pid)
    strategy_ids = step(by_strategy.get(strategy), pid)
    strategy_flat = bool(closed) and not strategy_ids
    book_flat = strategy_flat and all(name == strategy for name in by_strategy)
    if rebuild:
        by_symbol, by_strategy = dict(by_symbol), dict(by_strategy)
        if opened or closed:
            _set_or_drop(by_symbol, symbol, symbol_ids)
            _set_or_drop(by_strategy, strategy, strategy_ids)
        changes = [("trading.open_positions", by_symbol), ("trading.open_by_strategy", by_strategy)]
    else:
        changes = [
            (f"trading.open_positions.{symbol}", symbol_ids or DELETE),
            (f"trading.open_by_strategy.{strategy}", strategy_ids or DELETE),
        ]
    return changes, strategy_flat, book_flat


def _set_or_drop(index: dict[str, tuple[str, ...]], name: str, ids: tuple[str, ...]) -> None:
    if ids:
        index[name] = ids
    else:
        index.pop(name, None)


def position_closed_reducer(view: Any, event: Event) -> Iterable[Change]:
    pid = path_level(event.payload["position_id"], "position id")
    position = view.get(f"trading.positions.{pid}")
    # A close reported after the position reopened (the report and the reopening fill came from
    # two threads) is history: it must not mark an open position closed.
    if position is None or position["net_quantity"]:
        return []
    closed = dict(position)
    closed["status"] = "closed"
    trade = view.get(f"trading.trades.{event.payload.get('trade_id')}") or {}
    closed["closed_ts"] = trade.get("ts") or event.ts  # the closing fill's market time
    closed["closed_by_trade_id"] = event.payload.get("trade_id")
    return [(f"trading.positions.{pid}", closed), *exits.dropped_on_close(view, pid)]


def session_reset_reducer(view: Any, event: Event) -> Iterable[Change]:
    """Start a new trading day: today's P&L counts from the book's value at this instant."""
    daily = {
        "session_date": event.payload.get("session_date"),
        "realized": 0.0,
        "fees": 0.0,
        "unrealized_at_open": float(view.get("pnl.unrealized", 0.0)),
        "net": 0.0,
        "reset_ts": event.ts,
    }
    return [("pnl.daily", daily)]


def reducers() -> dict[str, list[Callable[[Any, Event], Iterable[Change]]]]:
    out: dict[str, list[Callable[[Any, Event], Iterable[Change]]]] = {
        topic: [order_reducer] for topic in ORDER_TOPICS
    }
    out["trade.executed"] = [trade_reducer]
    out["mark.updated"] = [mark_reducer]
    out["market.bar"] = [bar_mark_reducer]
    out["position.closed"] = [position_closed_reducer]
    out["pnl.session_reset"] = [session_reset_reducer]
    for module in (risk_state, exits, history):
        for topic, extra in module.reducers().items():
            out.setdefault(topic, []).extend(extra)
    return out
