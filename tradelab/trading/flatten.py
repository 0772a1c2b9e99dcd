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

from tradelab.errors import OrderRejectedError, TradelabError
from tradelab.trading.orders import Side
from tradelab.trading.risk import OrderDeniedError

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


def cancel_blocked_orders(desk: ExecutionDesk) -> list[str]:
    """Cancel the working orders the risk state no longer allows (all of them when halted;
    those that do not reduce a position when reducing), each through `cancel_order` so it
    is journaled. Every one is tried; then, if any cancel failed, one OrderRejectedError
    names each. Returns the ids cancelled."""
    if desk.risk is None:
        return []
    cancelled: list[str] = []
    failed: list[str] = []
    for order_id in desk.risk.blocked_working_orders():
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
    desk: ExecutionDesk, *, exit_only: bool = True, cancelled: list | None = None
) -> list[str]:
    """Cancel every working order (their ids appended to `cancelled`), then close every
    open position with a market order (allowed in a halt: exits only). A working entry
    left would open a position again; a working exit would count against the closing order.

    Every order and position is tried even if one is refused, so a refusal never leaves the
    rest of the book open; then, if any was refused, FlattenError names each (its `placed`
    has the orders that were sent). Returns the ids of the closing orders."""
    placed: list[str] = []
    not_closed: dict[str, str] = {}
    for order_id in sorted(desk.store.get("trading.working", None) or {}):
        try:
            desk.cancel_order(order_id)
        except TradelabError as exc:
            if not _finished_at_broker(desk, order_id):  # another flatten's cancel, a fill
                not_closed[order_id] = f"working order not cancelled: {exc}"
        else:
            if cancelled is not None:
                cancelled.append(order_id)
    positions = desk.store.get("trading.positions", None) or {}
    closes: list[tuple[str, dict, Side, int]] = []
    for ids in (desk.store.get("trading.open_positions", None) or {}).values():
        for pid in sorted(ids):
            pos = positions[pid]
            net = pos["net_quantity"]
            # What no market exit closes yet: another flatten (the console's, the risk
            # monitor's) or a strategy's exit may be on its way to the broker beside this one.
            quantity = abs(net)
            if exit_only and desk.risk is not None:
                quantity = desk.risk.exit_room(pos["strategy"], pos["symbol"])
            if quantity:
                closes.append((pid, pos, Side.SELL if net > 0 else Side.BUY, quantity))
    for pid, pos, side, quantity in _within_broker(desk, closes, not_closed):
        try:
            if exit_only:
                placed.append(desk.place_exit(pos["symbol"], side, quantity, pos["strategy"]))
            else:
                placed.append(
                    desk.place_order(pos["symbol"], side, quantity, strategy=pos["strategy"])
                )
        except OrderDeniedError as exc:
            # Closed meanwhile by another exit or flatten: nothing of it is left to close.
            if exc.check != "exit_only" or desk.risk.exit_room(pos["strategy"], pos["symbol"]):
                not_closed[pid] = f"{side} {quantity}: {exc}"
        except TradelabError as exc:
            not_closed[pid] = f"{side} {quantity}: {exc}"
    if not_closed:
        raise FlattenError(placed, not_closed)
    return placed


def _within_broker(
    desk: ExecutionDesk, closes: list[tuple[str, dict, Side, int]], not_closed: dict[str, str]
) -> list[tuple[str, dict, Side, int]]:
    """The closing orders cut so that no symbol's position at the broker goes past zero.

    The book can differ from the broker (the reconciler's `missing_position` or
    `quantity_mismatch`): closing the book's 75 the broker no longer holds would open a naked
    short there, which the book, now flat, would never see. Per symbol, the closes' net change
    is kept within what the broker holds; what they would close beyond it is named in
    `not_closed`. Without the broker's positions (it does not answer) nothing is closed blind.
    """
    if not closes:
        return []
    try:
        held = desk.broker.positions()
    except TradelabError as exc:
        for pid, _, side, quantity in closes:
            not_closed[pid] = f"{side} {quantity}: the broker's positions are unknown ({exc})"
        return []
    kept: list[tuple[str, dict, Side, int]] = []
    for symbol in dict.fromkeys(pos["symbol"] for _, pos, _, _ in closes):
        mine = [c for c in closes if c[1]["symbol"] == symbol]
        broker = held.get(symbol, 0)
        after = broker + sum(q if side is Side.BUY else -q for _, _, side, q in mine)
        # Closing may bring the broker's position towards zero, never past it nor away.
        excess = after - min(max(after, min(0, broker)), max(0, broker))
        beyond = abs(excess)
        for pid, pos, side, quantity in mine:
            cut = min(quantity, beyond) if excess and (side is Side.BUY) == (excess > 0) else 0
            beyond -= cut
            if cut:
                not_closed[pid] = (
                    f"{side} {quantity - cut} of {quantity} sent: the broker holds {broker} of "
                    f"{symbol}, and the rest would take it past zero or away from it (see the "
                    "reconciliation_mismatches view)"
                )
            if quantity - cut:
                kept.append((pid, pos, side, quantity - cut))
    return _towards_zero_first(kept, held)


def _towards_zero_first(
    closes: list[tuple[str, dict, Side, int]], held: dict[str, int]
) -> list[tuple[str, dict, Side, int]]:
    """The closes in an order that keeps each symbol's position at the broker within what it
    holds: each order goes alone, so a long's SELL sent before a short's BUY at a broker holding
    none is a naked short there, refused for margin, and the BUY then opens a long. Closes
    that bring the position towards zero go first; of the rest, BUYs (a premium paid) before
    SELLs (margin taken)."""
    running = dict(held)
    ordered: list[tuple[str, dict, Side, int]] = []
    left = list(closes)
    while left:

        def rank(close: tuple[str, dict, Side, int]) -> tuple[bool, bool]:
            _, pos, side, quantity = close
            now = running.get(pos["symbol"], 0)
            after = now + (quantity if side is Side.BUY else -quantity)
            towards = abs(after) <= abs(now) and after * now >= 0
            return (not towards, not towards and side is not Side.BUY)

        best = min(left, key=rank)  # min keeps the first of equals: position-id order
        left.remove(best)
        ordered.append(best)
        _, pos, side, quantity = best
        symbol = pos["symbol"]
        running[symbol] = running.get(symbol, 0) + (quantity if side is Side.BUY else -quantity)
    return ordered
