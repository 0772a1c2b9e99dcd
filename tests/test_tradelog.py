"""The trade log's round trips are the same whether or not the session restarted mid-trip."""

import pytest

from tradelab.runner.tradelog import TradeLog
from tradelab.trading.book import apply_fill, empty_position

PID = "s:ABC"


def fill(seq, side, quantity, price, fee=20.0):
    return {
        "position_id": PID, "strategy": "s", "symbol": "ABC", "lot_size": 1, "seq": seq,
        "side": side, "quantity": quantity, "price": price, "fee": fee,
        "ts": 1_000 * seq, "trade_id": f"T{seq}",
    }  # fmt: skip


def store_after(fills):
    """The store's position and trades after `fills` (as trade_reducer keeps them)."""
    position = empty_position("s", "ABC", 1)
    for f in fills:
        if position["net_quantity"] == 0:
            opened = f["seq"]
        signed = f["quantity"] if f["side"] == "BUY" else -f["quantity"]
        position, _ = apply_fill(position, signed, f["price"], f["fee"])
    position["opened_seq"] = opened
    return {PID: position}, {f["trade_id"]: f for f in fills}


def logged(before, after, restart):
    out = []
    log = TradeLog(lambda topic, payload, key: out.append(payload))
    if restart:
        log.seed(*store_after(before))
    else:
        for f in before:
            log.on_fill(f)
    for f in after:
        log.on_fill(f)
    return out


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # Bought twice before the restart, sold after it.
        ([fill(1, "BUY", 10, 100.0), fill(2, "BUY", 10, 102.0)], [fill(3, "SELL", 20, 105.0)]),
        # Part closed before, the rest after.
        ([fill(1, "BUY", 10, 100.0), fill(2, "SELL", 4, 103.0)], [fill(3, "SELL", 6, 99.0)]),
        # Reversed before (a trip logged then), the new short closed after.
        ([fill(1, "BUY", 5, 100.0), fill(2, "SELL", 15, 101.0)], [fill(3, "BUY", 10, 98.0)]),
    ],
    ids=["added-to", "part-closed", "reversed"],
)
def test_a_round_trip_across_a_restart_is_logged_as_without_one(before, after):
    whole = logged(before, after, restart=False)
    across = logged(before, after, restart=True)
    assert across == whole[-1:]
    assert across[0]["opened_ts"] is not None and across[0]["entry_trade_id"] is not None
