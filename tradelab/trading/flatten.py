"""Closing the book: a flatten (every working order cancelled, every open position closed with
a market order) and a halt's cancels (the working orders the risk state forbids).

Either may run on several threads at once: the console's Flatten, a notebook, the risk
monitor's flatten on a breach, the halting thread and the risk monitor both cancelling on a
halt. So a flatten closes only what no market exit is closing yet (`RiskGate.exit_room`; a
resting limit closes nothing until it fills), its closing orders are exit-only (denied once
they no longer reduce), and a cancel of an order the broker has finished meanwhile is not a
failure. A flatten never takes a symbol's position at the broker past zero or away from it:
where the book and the broker differ, it closes only what the broker holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradelab.errors import OrderDeniedError, OrderRejectedError, TradelabError
from tradelab.trading.holdings import flatten_closes_that_fit, held_units
from tradelab.trading.orders import Side
from tradelab.trading.risk_state import ACTIVE

if TYPE_CHECKING:
    from tradelab.trading.execution import ExecutionDesk


class FlattenError(OrderRejectedError):
    """A flatten could not close some positions (or cancel some working orders); the closing
    orders of the others were sent."""

    def __init__(self, placed: list[str], not_closed: dict[str, str]) -> None:
        self.placed = placed
        self.not_closed = not_closed
        why = "; ".join(f"{pid} ({reason})" for pid, reason in not_closed.items())
        super().__init__(
            f"flatten left {len(not_closed)} position(s) or order(s) ({len(placed)} closing "
            f"order(s) sent for the others): {why}"
        )


def blocked_orders(desk: ExecutionDesk) -> list[str]:
    """The working orders the risk state no longer allows (`RiskGate.blocked_working_orders`:
    all but a flatten's closes that fit the book when halted; those that do not reduce a
    position when reducing), and a flatten's close the book would keep that no longer fits the
    broker's position (closed elsewhere, a sale whose report was lost): spared on the book's
    word alone, it took the broker past zero during the halt."""
    if desk.risk is None:
        return []
    blocked = desk.risk.blocked_working_orders()
    if desk.risk.state == ACTIVE:
        return blocked
    working = desk.store.get("trading.working", None) or {}
    fit = set(_closes_that_fit(desk, working))
    unfit = [o for o, order in working.items() if order.get("exit_only") and o not in fit]
    return blocked + [order_id for order_id in unfit if order_id not in blocked]


def cancel_blocked_orders(desk: ExecutionDesk) -> list[str]:
    """Cancel the working orders the risk state no longer allows (`blocked_orders`), each
    through `cancel_order` so it is journaled. Every one is tried; then, if any cancel failed,
    one OrderRejectedError names each. Returns the ids cancelled."""
    cancelled: list[str] = []
    failed: list[str] = []
    for order_id in blocked_orders(desk):
        try:
            desk.cancel_order(order_id)
            cancelled.append(order_id)
        except TradelabError as exc:
            # The halting thread and the risk monitor both cancel on a halt, and an order
            # may fill meanwhile: one the broker has finished is not left working.
            if not _finished_at_broker(desk, order_id):
                failed.append(f"{order_id} ({exc})")
    if failed:
        raise OrderRejectedError(
            f"risk state {desk.risk.state}: {len(failed)} working order(s) it forbids could "
            f"not be cancelled ({len(cancelled)} were): {'; '.join(failed)}"
        )
    return cancelled


def _finished_at_broker(desk: ExecutionDesk, order_id: str) -> bool:
    """Whether nothing of `order_id` is left to cancel: the broker finished it, or it is
    another call's order on its way (submitted in the book, not at the broker yet: that call
    gets the broker's answer; a flatten beside it closes only what no exit is closing)."""
    try:
        report = desk.broker.order(order_id)
    except TradelabError:  # disconnected: not known to be finished
        return False
    if report is None:
        order = desk.store.get(f"trading.orders.{order_id}", None) or {}
        return order.get("status") == "submitted"
    return report.status.is_terminal


def flatten_book(
    desk: ExecutionDesk,
    *,
    exit_only: bool = True,
    cancelled: list | None = None,
    kept: list | None = None,
) -> list[str]:
    """Cancel every working order (their ids appended to `cancelled`) but an earlier
    flatten's closes that still fit the book and the broker (`kept`: `_closes_that_fit`),
    then close with a market order what is open and no such close is closing (allowed in a
    halt: exits only). A working entry left would open a position again; a working exit would
    count against the closing order. An earlier flatten's close is left to fill (cancelled and
    sent again by each try, a close slower than the tries' second never filled).

    Every order and position is tried even if one is refused, so a refusal never leaves the
    rest of the book open; then, if any was refused, FlattenError names each (its `placed`
    has the orders that were sent). Returns the ids of the closing orders."""
    placed: list[str] = []
    not_closed: dict[str, str] = {}
    working = desk.store.get("trading.working", None) or {}
    fitting = _closes_that_fit(desk, working) if exit_only else []
    if kept is not None:
        kept.extend(fitting)
    for order_id in sorted(set(working) - set(fitting)):
        try:
            desk.cancel_order(order_id)
        except TradelabError as exc:
            if not _finished_at_broker(desk, order_id):  # another flatten's cancel, a fill
                not_closed[order_id] = f"working order not cancelled: {exc}"
        else:
            if cancelled is not None:
                cancelled.append(order_id)
    positions = desk.store.get("trading.positions", None) or {}
    by_symbol: dict[str, list[dict]] = {}
    for ids in (desk.store.get("trading.open_positions", None) or {}).values():
        for pid in sorted(ids):
            by_symbol.setdefault(positions[pid]["symbol"], []).append(positions[pid])
    for symbol, held in by_symbol.items():
        _close_symbol(desk, symbol, held, exit_only, placed, not_closed)
    if not_closed:
        raise FlattenError(placed, not_closed)
    return placed


def _closes_that_fit(desk: ExecutionDesk, working: dict[str, dict]) -> list[str]:
    """The earlier flatten's closes still working that fit the book's positions
    (`flatten_closes_that_fit`) and the broker's: per symbol, all reducing what it holds, in
    all no more than that (a sale whose report was lost, a position closed elsewhere). The rest
    are cancelled, and what is held now is closed again."""
    fitting = flatten_closes_that_fit(working, lambda *owner: held_units(desk.store, *owner))
    if not fitting:
        return []
    try:
        at_broker = desk.broker.positions()
    except TradelabError:  # not known: nothing kept (the closes below are not sent blind)
        return []
    reduced: dict[str, int] = {}
    for order_id in fitting:
        order = working[order_id]
        change = int(order.get("remaining_quantity") or 0)
        reduced[order["symbol"]] = reduced.get(order["symbol"], 0) + (
            change if order["side"] == "BUY" else -change
        )

    def fits(symbol: str) -> bool:  # towards zero, never past it
        held = at_broker.get(symbol, 0)
        after = held + reduced[symbol]
        return 0 <= after < held if held > 0 else held < after <= 0

    return [order_id for order_id in fitting if fits(working[order_id]["symbol"])]


def _close_symbol(
    desk: ExecutionDesk,
    symbol: str,
    held: list[dict],
    exit_only: bool,
    placed: list[str],
    not_closed: dict[str, str],
) -> None:
    """Close the book's positions in `symbol` so that the broker's position, read afresh before
    each order, only moves towards zero, never past it nor away from it.

    The book can differ from the broker (a `missing_position`, a `quantity_mismatch`): closing
    the book's 75 the broker no longer holds would open a naked short there, which the book,
    flat, would never show. And each order is checked and filled alone: of a long's SELL and a
    short's BUY at a broker holding none, the first sent is a position there, refused for
    margin, or filled while the second is refused. So a close that reduces the broker's
    position goes first, as far as zero; when none does (the broker holds none, strategies
    both ways), one close is sent as the leg the others then reduce, kept only if it filled at
    once (else what is left of it is cancelled and the other direction tried once). What
    cannot be closed so is named in `not_closed`, with what the broker holds."""
    sent: dict[str, list[str]] = {}  # position id -> this flatten's orders for it
    refused: set[str] = set()
    legs_failed: set[Side] = set()  # a first close of this side that did not fill at once
    for _ in range(4 * len(held) + 4):  # each turn sends, or tries one of two legs, or ends
        left = []
        for pos in held:
            pid = pos["position_id"]
            quantity = _left_to_close(desk, pos, exit_only, sent.get(pid, []))
            if not quantity:  # closed (a leg that filled as its cancel came): nothing to name
                not_closed.pop(pid, None)
            elif pid not in refused:
                left.append((pos, Side.SELL if pos["net_quantity"] > 0 else Side.BUY, quantity))
        if not left:
            return
        now = _held_now(desk, symbol)
        if now is None:
            for pos, side, quantity in left:
                not_closed[pos["position_id"]] = (
                    f"{side} {quantity}: not sent blind, the broker's position is unknown"
                )
            return
        reducing = Side.SELL if now > 0 else Side.BUY
        close = next((c for c in left if now and c[1] is reducing), None)
        if close is not None:
            pos, side, quantity = close
            if _send(desk, pos, side, min(quantity, abs(now)), exit_only, placed, sent, not_closed):
                continue
            refused.add(pos["position_id"])
            continue
        sides = {c[1] for c in left}
        leg_side = next((s for s in (Side.BUY, Side.SELL) if s in sides - legs_failed), None)
        if leg_side is None or len(sides) < 2:
            break
        pos, side, quantity = next(c for c in left if c[1] is leg_side)
        order_id = _send(desk, pos, side, quantity, exit_only, placed, sent, not_closed)
        if order_id is None or not _keep_if_filled_at_once(desk, order_id):
            legs_failed.add(leg_side)  # the other side may go first instead
            if order_id is not None:
                not_closed[pos["position_id"]] = (
                    f"{side} {quantity} sent first to net the positions held both ways did not "
                    "fill at once; what was left of it is cancelled"
                )
    why = (
        "strategies hold it both ways, and no close could go first to net them"
        if legs_failed
        else "this close would take it past zero or away from it (see the "
        "reconciliation_mismatches view)"
    )
    for pos, side, quantity in left:
        not_closed.setdefault(
            pos["position_id"],
            f"{side} {quantity} not closed: the broker holds {now} of {symbol}; {why}",
        )


def _left_to_close(desk: ExecutionDesk, pos: dict, exit_only: bool, orders: list[str]) -> int:
    """What no market exit closes yet: another flatten or a strategy's exit may be on its way
    to the broker beside this one (`RiskGate.exit_room`), and this flatten's own orders."""
    current = desk.store.get(f"trading.positions.{pos['position_id']}", None) or pos
    if exit_only and desk.risk is not None:
        return desk.risk.exit_room(current["strategy"], current["symbol"])
    in_flight = 0
    for order_id in orders:
        try:
            report = desk.broker.order(order_id)
        except TradelabError:  # the broker does not answer: `_held_now` says so next
            continue
        if report is not None and not report.status.is_terminal:
            in_flight += report.quantity - report.filled_quantity
    return max(abs(current["net_quantity"]) - in_flight, 0)


def _send(desk, pos, side, quantity, exit_only, placed, sent, not_closed) -> str | None:
    pid, symbol, strategy = pos["position_id"], pos["symbol"], pos["strategy"]
    try:
        if exit_only:
            order_id = desk.place_exit(symbol, side, quantity, strategy)
        else:
            order_id = desk.place_order(symbol, side, quantity, strategy=strategy)
    except OrderDeniedError as exc:
        # Closed meanwhile by another exit or flatten: nothing of it is left to close.
        if exc.check != "exit_only" or desk.risk.exit_room(strategy, symbol):
            not_closed[pid] = f"{side} {quantity}: {exc}"
        return None
    except TradelabError as exc:
        not_closed[pid] = f"{side} {quantity}: {exc}"
        return None
    placed.append(order_id)
    sent.setdefault(pid, []).append(order_id)
    not_closed.pop(pid, None)
    return order_id


def _keep_if_filled_at_once(desk: ExecutionDesk, order_id: str) -> bool:
    """Whether a leg filled whole as it was sent. One still working would fill after the closes
    that depend on it were refused: what is left of it is cancelled (a cancel refused means it
    finished meanwhile; the next read of the broker says how)."""

    def filled() -> bool:
        report = desk.broker.order(order_id)
        return report is not None and report.filled_quantity >= report.quantity

    try:
        if filled():
            return True
        desk.cancel_order(order_id, "flatten: the closes that depend on it could not follow")
        return False
    except TradelabError:  # finished meanwhile, or the broker stopped answering
        try:
            return filled()
        except TradelabError:
            return False


def _held_now(desk: ExecutionDesk, symbol: str) -> int | None:
    """The broker's position in `symbol`, with the orders working there that reduce it counted
    as filled (this flatten's, a strategy's exit, another caller's close: they fill on later
    quotes); None when the broker does not answer."""
    try:
        held = desk.broker.positions().get(symbol, 0)
        working = [o for o in desk.broker.open_orders() if o.symbol == symbol]
    except TradelabError:
        return None
    for order in working:
        left = order.quantity - order.filled_quantity
        change = left if order.side is Side.BUY else -left
        if held and (held > 0) != (change > 0):  # it reduces: count it, as far as zero
            held = max(held + change, 0) if held > 0 else min(held + change, 0)
    return held
