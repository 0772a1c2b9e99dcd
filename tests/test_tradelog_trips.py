"""A round trip's fees include those of the fills that added to it."""

from __future__ import annotations

from tradelab.runner.tradelog import TradeLog


def _fill(n, side, qty, price, fee):
    return {
        "trade_id": f"T{n}", "position_id": "a:NIFTY", "strategy": "a", "symbol": "NIFTY",
        "side": side, "quantity": qty, "price": price, "fee": fee, "ts": n * 10**9, "seq": n,
    }  # fmt: skip


def test_the_fees_of_every_fill_of_a_round_trip_are_charged_to_it():
    logged = []
    log = TradeLog(lambda topic, payload, key="": logged.append(payload))
    log.on_fill(_fill(1, "BUY", 75, 100.0, 20.0))
    log.on_fill(_fill(2, "BUY", 75, 102.0, 20.0))  # adds to the position
    log.on_fill(_fill(3, "SELL", 150, 104.0, 20.0))
    [trip] = logged
    assert trip["fees"] == 60.0
    assert trip["realized_pnl"] == (104.0 - 101.0) * 150
    assert trip["net_pnl"] == trip["realized_pnl"] - 60.0


def test_a_round_trip_closed_in_two_exits_has_their_average_exit_price():
    logged = []
    log = TradeLog(lambda topic, payload, key="": logged.append(payload))
    log.on_fill(_fill(1, "BUY", 150, 100.0, 0.0))
    log.on_fill(_fill(2, "SELL", 75, 110.0, 0.0))
    log.on_fill(_fill(3, "SELL", 75, 120.0, 0.0))
    [trip] = logged
    assert (trip["exit_price"], trip["realized_pnl"]) == (115.0, 2250.0)


def test_a_reversing_fill_charges_the_closing_trip_only_its_share_of_the_fee():
    logged = []
    log = TradeLog(lambda topic, payload, key="": logged.append(payload))
    log.on_fill(_fill(1, "BUY", 75, 100.0, 20.0))
    log.on_fill(_fill(2, "SELL", 150, 110.0, 40.0))  # closes 75, opens a short of 75
    log.on_fill(_fill(3, "BUY", 75, 105.0, 20.0))
    first, second = logged
    assert first["fees"] == 20.0 + 20.0  # its entry's fee and half the reversing fill's
    assert second["fees"] == 20.0 + 20.0


def test_a_side_filled_at_one_price_logs_that_price_as_it_was():
    # An adjusted close of 13 significant digits was logged rounded to 12 (103.062370711), so
    # a round trip showed another price than the fill that opened it.
    logged = []
    log = TradeLog(lambda topic, payload, key="": logged.append(payload))
    log.on_fill(_fill(1, "SELL", 1, 103.0623707106, 0.0))
    log.on_fill(_fill(2, "BUY", 1, 100.1078650799, 0.0))
    log.on_fill(_fill(3, "BUY", 2, 0.1, 0.0))
    log.on_fill(_fill(4, "BUY", 1, 0.2, 0.0))  # adds at another price: an average
    log.on_fill(_fill(5, "SELL", 3, 0.3, 0.0))
    first, second = logged
    assert (first["entry_price"], first["exit_price"]) == (103.0623707106, 100.1078650799)
    # (2 * 0.1 + 0.2) / 3 is 0.13333333333333333 in floats; the average keeps 12 digits.
    assert second["entry_price"] == 0.133333333333 and second["exit_price"] == 0.3


def test_a_trip_re_seeded_at_the_books_average_logs_it_without_float_noise():
    # After a restart whose store no longer holds the opening fill, the trip starts at the
    # position's book average: an average, rounded as one (0.15, not 0.15000000000000002).
    logged = []
    log = TradeLog(lambda topic, payload, key="": logged.append(payload))
    position = {"net_quantity": 2, "average_price": (0.1 + 0.2) / 2, "opened_seq": 5}
    log.seed({"a:NIFTY": {**position, "strategy": "a", "symbol": "NIFTY"}}, {}, {})
    log.on_fill(_fill(9, "SELL", 2, 1.0, 0.0))
    assert logged[0]["entry_price"] == 0.15
