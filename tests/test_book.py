import pytest
from contracts.local_kernel import LocalKernel

SYM = "NIFTY25NOV24000CE"  # lot size 75; quantities below are units (lots x 75)
PUT = "NIFTY25NOV24000PE"


def fill(kernel, n, side, qty, price, *, fee=20.0, strategy="s1", symbol=SYM):
    pid = f"{strategy}:{symbol}"
    return kernel.submit(
        "trade.executed",
        {
            "fill_seq": n,
            "trade_id": f"T{n}",
            "order_id": f"O{n}",
            "broker_order_id": f"B{n}",
            "symbol": symbol,
            "side": side,
            "quantity": qty,
            "price": price,
            "fee": fee,
            "ts": n,
            "strategy": strategy,
            "lot_size": 75,
            "position_id": pid,
        },
        key=pid,
    )


def mark(kernel, symbol, price):
    kernel.submit(
        "mark.updated",
        {"symbol": symbol, "price": price, "bid": price, "ask": price, "last": price, "ts": 0},
        key=symbol,
    )


def test_scripted_fills_open_add_partial_close_reverse_match_hand_arithmetic():
    k = LocalKernel()
    pos = f"trading.positions.s1:{SYM}"

    fill(k, 1, "BUY", 150, 100.0)  # open long 2 lots @ 100
    assert k.store.get(pos)["net_quantity"] == 150
    assert k.store.get(pos)["average_price"] == pytest.approx(100.0)

    fill(k, 2, "BUY", 75, 106.0)  # add 1 lot: avg = (150*100 + 75*106) / 225 = 22950/225 = 102
    assert k.store.get(pos)["average_price"] == pytest.approx(102.0)
    assert k.store.get(pos)["lots"] == 3

    fill(k, 3, "SELL", 150, 110.0)  # partial close: 150 * (110 - 102) = +1200, 75 left @ 102
    p = k.store.get(pos)
    assert (p["net_quantity"], p["average_price"]) == (75, pytest.approx(102.0))
    assert p["realized_pnl"] == pytest.approx(1200.0)
    assert k.store.get("trading.trades.T3")["realized_pnl"] == pytest.approx(1200.0)

    fill(k, 4, "SELL", 150, 98.0)  # reverse: close 75 * (98 - 102) = -300, open short 75 @ 98
    p = k.store.get(pos)
    assert (p["net_quantity"], p["average_price"]) == (-75, pytest.approx(98.0))
    assert p["realized_pnl"] == pytest.approx(900.0)  # 1200 - 300

    mark(k, SYM, 95.0)  # short 75 @ 98 marked at 95: (95 - 98) * -75 = +225
    assert k.store.get(pos)["unrealized_pnl"] == pytest.approx(225.0)
    assert k.store.get("pnl.fees") == pytest.approx(80.0)  # 4 fills x 20
    assert k.store.get("pnl.net") == pytest.approx(900.0 + 225.0 - 80.0)

    fill(k, 5, "BUY", 75, 96.0)  # cover: 75 * (96 - 98) * -1 = +150, flat
    p = k.store.get(pos)
    assert (p["net_quantity"], p["status"]) == (0, "flat")
    assert p["realized_pnl"] == pytest.approx(1050.0)
    assert k.store.get("pnl.unrealized") == 0.0
    assert k.store.get("pnl.net") == pytest.approx(1050.0 - 100.0)


def test_daily_pnl_counts_from_the_session_reset_mark_to_market():
    k = LocalKernel()
    fill(k, 1, "SELL", 75, 98.0)
    mark(k, SYM, 95.0)  # yesterday's close: short worth +225
    k.submit("pnl.session_reset", {"session_date": "2025-11-13"})
    assert k.store.get("pnl.daily")["unrealized_at_open"] == pytest.approx(225.0)
    fill(k, 2, "BUY", 75, 96.0)
    daily = k.store.get("pnl.daily")
    # Today: realized 75*(96-98)*-1 = +150, unrealized went 225 -> 0, fee 20: 150 - 225 - 20.
    assert daily["realized"] == pytest.approx(150.0)
    assert daily["net"] == pytest.approx(-95.0)
    assert daily["session_date"] == "2025-11-13"


def test_pnl_is_attributed_to_the_strategy_that_traded():
    k = LocalKernel()
    fill(k, 1, "BUY", 75, 100.0, strategy="trend")
    fill(k, 2, "BUY", 75, 50.0, strategy="hedge", symbol=PUT)
    mark(k, SYM, 104.0)
    mark(k, PUT, 60.0)
    by = k.store.get("pnl.by_strategy")
    assert by["trend"] == {
        "realized": 0.0,
        "unrealized": pytest.approx(300.0),
        "fees": 20.0,
        "net": pytest.approx(280.0),
    }
    assert by["hedge"]["net"] == pytest.approx(75 * 10.0 - 20.0)
    assert k.store.get("pnl.unrealized") == pytest.approx(300.0 + 750.0)


def test_mark_of_an_unheld_symbol_changes_only_the_market_marks():
    k = LocalKernel()
    fill(k, 1, "BUY", 75, 100.0)
    before = k.store.get("trading.positions")
    mark(k, "NIFTY", 24010.0)
    assert k.store.get("trading.positions") == before
    assert k.store.get("market.marks.NIFTY")["price"] == 24010.0


def test_replaying_the_events_rebuilds_the_same_book():
    k = LocalKernel()
    fill(k, 1, "BUY", 150, 100.0)
    mark(k, SYM, 101.5)
    fill(k, 2, "SELL", 225, 103.0)
    k.submit("pnl.session_reset", {"session_date": "2025-11-13"})
    mark(k, SYM, 99.0)
    assert k.replayed_store().state_hash() == k.store.state_hash()


def test_exit_levels_are_state_until_cleared_or_the_position_closes():
    k = LocalKernel()
    pid = f"s1:{SYM}"

    def exit_updated(reason, stop=None, trail=None, best=None):
        body = {"position_id": pid, "reason": reason, "stop": stop, "target": None}
        k.submit("trade.exit_updated", {**body, "trail": trail, "best": best, "exit_order": None})

    fill(k, 1, "BUY", 75, 100.0)
    exit_updated("set", trail=5.0)
    exit_updated("trailed", stop=103.0, trail=5.0, best=108.0)
    saved = k.store.get(f"trading.exits.{pid}")
    assert (saved["stop"], saved["trail"], saved["best"]) == (103.0, 5.0, 108.0)
    exit_updated("cleared")
    assert k.store.get("trading.exits", None) in (None, {})
    exit_updated("set", stop=90.0)
    fill(k, 2, "SELL", 75, 95.0)
    k.submit("position.closed", {"position_id": pid, "trade_id": "T2"}, key=pid)
    assert k.store.get(f"trading.positions.{pid}")["status"] == "closed"
    assert k.store.get("trading.exits", None) in (None, {})


def test_a_positions_times_are_its_fills_market_times_not_the_engines_stamps():
    k = LocalKernel()
    pid = f"s1:{SYM}"
    fill(k, 1, "BUY", 75, 100.0)  # the helper's fill n happens at market time n
    fill(k, 2, "BUY", 75, 101.0)
    fill(k, 3, "SELL", 150, 102.0)
    k.submit("position.closed", {"position_id": pid, "trade_id": "T3"}, key=pid)
    p = k.store.get(f"trading.positions.{pid}")
    assert (p["opened_ts"], p["updated_ts"], p["closed_ts"]) == (1, 3, 3)


def test_the_consoles_positions_show_the_exit_levels_armed_for_an_open_one():
    from types import SimpleNamespace

    from tradelab.ui.frames import positions

    k = LocalKernel()
    fill(k, 1, "SELL", 75, 150.0)
    fill(k, 2, "BUY", 75, 100.0, symbol=PUT)
    fill(k, 3, "SELL", 75, 110.0, symbol=PUT)  # the put is flat again
    for symbol, stop in ((SYM, 198.58), (PUT, 90.0)):
        body = {"position_id": f"s1:{symbol}", "reason": "set", "stop": stop, "target": None}
        k.submit("trade.exit_updated", {**body, "trail": None, "best": None, "exit_order": None})
    shown = positions(SimpleNamespace(store=k.store)).set_index("symbol")
    assert shown.loc[SYM, "stop"] == 198.58
    assert shown.loc[PUT, "stop"] is None or shown.loc[PUT, "stop"] != shown.loc[PUT, "stop"]


def test_the_consoles_positions_keep_a_sub_cent_price_and_its_stop():
    # To the paisa, a coin at 0.0000216 and its stop read 0.0 on the page.
    from types import SimpleNamespace

    from tradelab.ui.frames import positions

    k = LocalKernel()
    fill(k, 1, "BUY", 75, 0.0000216)
    body = {"position_id": f"s1:{SYM}", "reason": "set", "stop": 0.000021168, "target": None}
    k.submit("trade.exit_updated", {**body, "trail": None, "best": None, "exit_order": None})
    [row] = positions(SimpleNamespace(store=k.store)).to_dict("records")
    assert (row["average_price"], row["stop"]) == (0.0000216, 0.000021168)
