"""How a reconciliation run reads the broker: every call retried with backoff (retry.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tradelab.broker.base import Broker
from tradelab.broker.reconcile import diff as d
from tradelab.broker.reconcile.diff import BrokerView
from tradelab.broker.retry import call_with_retry
from tradelab.errors import InvalidInputError

log = logging.getLogger(__name__)


def read_broker(
    broker: Broker, cfg: Any, store: Any, point: int, sleep: Callable[[float], object]
) -> BrokerView:
    """What a run compares: the broker's fills after `point`, open orders, positions, their
    costs and lot sizes, and the state of each order the book asks about, each read with
    retries (`cfg`: the ReconcilerConfig). Fills the broker no longer has (its bounded
    history) are counted in `fills_gone`, and the rest are then not compared as trades."""

    def call(fn: Callable[[], Any], what: str) -> Any:
        return call_with_retry(
            fn,
            what=f"{what} from broker {broker.name!r}",
            attempts=cfg.retry_attempts,
            base_s=cfg.retry_base_s,
            max_s=cfg.retry_max_s,
            sleep=sleep,
        )

    fills = call(lambda: broker.fills_since(point), "fills")
    # Only a broker that says where its kept fills begin can be said to have let some go: fill
    # numbers need only increase, so a jump between two is not a gap by itself.
    kept_from = getattr(broker, "first_fill_seq", None)
    first = call(kept_from, "where its fills begin") if kept_from is not None else 0
    gone = min(first - point - 1, fills[-1].fill_seq - point) if fills and first else 0
    if gone > 0:
        # The broker keeps bounded history and dropped fills after the point: the rest
        # start partway through round trips, and booked as trades they would give strategies
        # positions they never held. Positions and orders are compared as always.
        log.warning(
            "broker %r no longer has fills %d..%d (its history is bounded): they are not "
            "reconciled as trades; positions are",
            broker.name,
            point + 1,
            point + gone,
        )
        newest, fills = fills[-1].fill_seq, []
    adopting = cfg.policy(d.MISSED_FILL) == "adopt" and not cfg.dry_run
    open_orders = call(broker.open_orders, "open orders")
    positions = call(broker.positions, "positions")
    average_prices = call(broker.average_prices, "average prices")
    orders = {
        oid: call(lambda oid=oid: broker.order(oid), f"order {oid!r}")
        for oid in d.orders_to_compare(store, fills, adopting_fills=adopting)
    }
    lots = {s: lot for s in positions if (lot := _lot_size(broker, s)) is not None}
    last = newest if gone > 0 else fills[-1].fill_seq if fills else point
    return BrokerView(
        broker.account_id,
        positions,
        open_orders,
        fills,
        orders,
        last,
        average_prices,
        lots,
        fills_gone=max(gone, 0),
    )


def _lot_size(broker: Broker, symbol: str) -> int | None:
    """The broker's lot size of `symbol`, or None if it does not say (adopted in units)."""
    lot_size = getattr(broker, "lot_size", None)
    try:
        return None if lot_size is None else int(lot_size(symbol))
    except InvalidInputError:  # a symbol it cannot size (an instrument outside its universe)
        return None
