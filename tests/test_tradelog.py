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


def store_after(fills, trimmed=False):
    """The store's position and trades after `fills` (as trade_reducer keeps them): opened at
    the fill that found it flat or reversed it; `trimmed`, the fills before that gone (the
    book's history trim)."""
    position = empty_position("s", "ABC", 1)
    trades = {}
    for f in fills:
        signed = f["quantity"] if f["side"] == "BUY" else -f["quantity"]
        before = position["net_quantity"]
        position, _ = apply_fill(position, signed, f["price"], f["fee"])
        if before == 0 or before * position["net_quantity"] < 0:
            opened = f["seq"]
        trades[f["trade_id"]] = {**f, "position_after": position["net_quantity"]}
    position["opened_seq"] = opened
    if trimmed:
        trades = {t: f for t, f in trades.items() if f["seq"] >= opened}
    return {PID: position}, trades


def logged(before, after, restart, trimmed=False):
    out = []
    log = TradeLog(lambda topic, payload, key: out.append(payload))
    if restart:
        log.seed(*store_after(before, trimmed))
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
@pytest.mark.parametrize("trimmed", [False, True], ids=["whole", "trimmed"])
def test_a_round_trip_across_a_restart_is_logged_as_without_one(before, after, trimmed):
    # A stop-and-reverse strategy is never flat: its position opened at its latest reversal,
    # and the book's trim keeps no fill before that, which must not change the trip.
    whole = logged(before, after, restart=False)
    across = logged(before, after, restart=True, trimmed=trimmed)
    assert across == whole[-1:]
    assert across[0]["opened_ts"] is not None and across[0]["entry_trade_id"] is not None


def closed_without_a_log(fills, logged_exit):
    """What seeding logs for a position the store has flat after `fills`, whose last logged
    round trip ended at `logged_exit`."""
    out = []
    positions, trades = store_after(fills)
    positions[PID]["last_trade_id"] = fills[-1]["trade_id"]
    log = TradeLog(lambda topic, payload, key: out.append(payload))
    log.seed(positions, trades, {PID: logged_exit} if logged_exit else {})
    return out


def test_a_round_trip_that_closed_while_no_trade_log_ran_is_logged_when_one_starts():
    # Closed by a fill the reconciler adopted on start (an expiry settled after a crash): no
    # runner folded it, and the trades table had no round trip for it.
    fills = [fill(1, "SELL", 75, 150.0), fill(2, "BUY", 75, 120.0, fee=0.0)]
    whole = logged(fills, [], restart=False)
    assert closed_without_a_log(fills, logged_exit=None) == whole
    assert whole[0]["realized_pnl"] == pytest.approx(75 * 30.0)


def test_a_round_trip_logged_before_the_restart_is_not_logged_again():
    fills = [fill(1, "BUY", 10, 100.0), fill(2, "SELL", 10, 101.0)]
    assert closed_without_a_log(fills, logged_exit="T2") == []


@pytest.mark.parametrize(
    ("fills", "entry", "exit_", "realized"),
    [
        # Scaled in at 0.1 and 0.2, out at 0.15: break-even, not +5.55e-17 (a "winner").
        ([fill(1, "SELL", 1, 0.1, 0), fill(2, "SELL", 1, 0.2, 0), fill(3, "BUY", 2, 0.15, 0)],
         0.15, 0.15, 0.0),
        # A coin in millionths keeps its decimals.
        ([fill(1, "BUY", 1000, 0.0000216, 0), fill(2, "SELL", 1000, 0.00002, 0)],
         0.0000216, 0.00002, -0.0016),
    ],
)  # fmt: skip
def test_round_trip_figures_keep_the_prices_decimals_and_drop_float_noise(
    fills, entry, exit_, realized
):
    [trip] = logged(fills, [], restart=False)
    assert (trip["entry_price"], trip["exit_price"]) == (entry, exit_)
    assert trip["realized_pnl"] == realized and trip["net_pnl"] == realized
