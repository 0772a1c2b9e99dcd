"""Flatten and halt cancels: working orders cancelled, each position closed once, failures named."""

import pytest

from tests.risk_session import PUT, SYM, Session
from tradelab.trading.flatten import FlattenError
from tradelab.trading.orders import OrderRequest, OrderType, Side


def test_flatten_tries_every_position_and_names_each_one_it_could_not_close():
    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.desk.place_order(PUT, "SELL", 75, strategy="b")
    s.broker.faults.reject_orders_for(60.0)
    with pytest.raises(FlattenError) as info:
        s.desk.flatten()
    # Both were tried (a refusal of the first does not leave the second untried)...
    assert [e.payload["symbol"] for e in s.kernel.events if e.topic == "order.rejected"] == [
        SYM,
        PUT,
    ]
    # ...and the one error names each position left open and why.
    assert set(info.value.not_closed) == {f"a:{SYM}", f"b:{PUT}"}
    assert f"a:{SYM} (SELL 150: broker" in str(info.value)
    assert f"b:{PUT} (BUY 75: broker" in str(info.value)
    assert info.value.placed == []


def test_flatten_cancels_every_working_order_so_no_entry_reopens_a_position():
    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    entry = s.desk.place_order(SYM, "BUY", 75, strategy="a", order_type="LIMIT", limit_price=99.0)
    s.desk.flatten()
    assert s.kernel.store.get(f"trading.orders.{entry}")["status"] == "cancelled"
    s.broker.set_quote(SYM, 98.0, 98.5, size=10_000)  # the entry's price: nothing is left to fill
    s.broker.poll()
    assert s.broker.positions() == {}


def test_flatten_replaces_the_positions_working_exits_with_a_market_order():
    s = Session(daily_loss_limit=500.0, on_breach="reducing")
    s.desk.reset_daily_pnl("2025-11-12")
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    exit_id = s.desk.place_order(
        SYM, "SELL", 150, strategy="a", order_type="LIMIT", limit_price=120.0
    )
    s.mark(SYM, 96.0)
    assert s.monitor.check() is True
    s.desk.flatten()
    assert s.kernel.store.get(f"trading.orders.{exit_id}")["status"] == "cancelled"
    assert s.broker.positions() == {} and s.kernel.store.get("trading.working") == {}


def test_a_halt_cancels_every_working_order_so_a_resting_entry_cannot_fill_after_it():
    s = Session(daily_loss_limit=500.0)
    s.desk.reset_daily_pnl("2025-11-12")
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    entry = s.desk.place_order(PUT, "BUY", 75, strategy="b", order_type="LIMIT", limit_price=80.0)
    s.mark(SYM, 96.0)
    assert s.monitor.check() is True and s.gate.state == "halted"
    assert s.kernel.store.get(f"trading.orders.{entry}")["status"] == "cancelled"
    assert "order.cancelled" in s.kernel.topics("order.")  # journaled like any cancel
    s.broker.set_quote(PUT, 79.0, 79.5)
    s.broker.poll()
    assert s.broker.positions() == {SYM: 150}


def test_a_halts_cancel_of_an_order_another_thread_cancelled_first_is_not_a_failure(caplog):
    # The halting thread and the risk monitor both cancel what a halt forbids: the one that came
    # second logged an ERROR that the orders "could not be cancelled", every halt.
    s = Session()
    entries = [
        s.desk.place_order(PUT, "BUY", 75, strategy="b", order_type="LIMIT", limit_price=80.0)
        for _ in range(3)
    ]
    stale = s.gate.blocked_working_orders
    s.gate.blocked_working_orders = lambda: entries  # read before the other thread's cancels
    s.desk.cancel_order(entries[0])
    s.gate.halt("ops", "news")  # cancels the other two, and the first is cancelled already
    assert s.desk.cancel_blocked_orders() == []  # the monitor's turn: all finished, no error
    s.gate.blocked_working_orders = stale
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert {s.kernel.store.get(f"trading.orders.{o}")["status"] for o in entries} == {"cancelled"}


def test_reducing_cancels_the_working_orders_that_do_not_reduce_and_keeps_the_exits():
    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    limit = {"order_type": "LIMIT", "limit_price": 120.0}
    keep = s.desk.place_order(SYM, "SELL", 150, strategy="a", **limit)
    excess = s.desk.place_order(SYM, "SELL", 75, strategy="a", **limit)  # past zero
    entry = s.desk.place_order(PUT, "BUY", 75, strategy="a", order_type="LIMIT", limit_price=80.0)
    s.gate.halt("ops", "news at 14:00", mode="reducing")  # an operator's halt acts the same
    status = {
        oid: s.kernel.store.get(f"trading.orders.{oid}")["status"] for oid in (keep, excess, entry)
    }
    assert status == {keep: "accepted", excess: "cancelled", entry: "cancelled"}


def test_a_halts_cancel_the_broker_refused_is_tried_again_once_it_answers():
    """A halt while the broker was disconnected tried its cancels once: after the reconnect the
    resting entry stayed working and filled during the halt."""
    s = Session()
    entry = s.desk.place_order(PUT, "BUY", 75, strategy="b", order_type="LIMIT", limit_price=80.0)
    s.broker.disconnect()
    s.gate.halt("ops-anna", "broker trouble")  # its cancel fails (logged); the halt stands
    assert s.kernel.store.get(f"trading.orders.{entry}")["status"] != "cancelled"
    s.monitor.check()  # still down: tried, and then not before a wait
    s.broker.connect()
    s.monitor._cancel_next_try = 0.0  # the wait is over (a reconnect cuts it short in a Lab)
    s.monitor.check()
    assert s.kernel.store.get(f"trading.orders.{entry}")["status"] == "cancelled"
    s.broker.set_quote(PUT, 79.0, 79.5)
    s.broker.poll()
    assert s.broker.positions() == {}


def test_two_flattens_at_once_close_each_position_once_and_never_reverse_it():
    # Each flatten read the positions, then sent their whole size as a market order; the second
    # no longer reduced anything and passed as an opening order: every position ended reversed.
    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.desk.place_order(PUT, "SELL", 75, strategy="b")
    place_exit, nested = s.desk.place_exit, []

    def another_flatten_first(*args, **kwargs):
        if not nested:  # the other flatten runs whole between this one's read and its order
            nested.append(None)
            nested[0] = s.desk.flatten()
        return place_exit(*args, **kwargs)

    s.desk.place_exit = another_flatten_first
    assert s.desk.flatten() == []  # nothing left to close, and no FlattenError
    assert len(nested[0]) == 2
    assert s.broker.positions() in ({}, {SYM: 0, PUT: 0})
    assert not s.kernel.store.get("trading.open_positions", None)


def test_a_flatten_beside_another_calls_order_on_its_way_to_the_broker_is_no_failure():
    # The other call's submission is journaled before the broker has it: the flatten's cancel
    # of it was refused as unknown, and the flatten failed though the book ended flat.
    s = Session()
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    on_its_way = {"order_id": "X1", "symbol": PUT, "side": "BUY", "quantity": 75, "strategy": "b"}
    s.kernel.submit("order.submitted", {**on_its_way, "order_type": "MARKET"}, key="X1")
    assert s.desk.flatten()  # closes a's position; X1 is the other call's to finish
    assert s.broker.positions() in ({}, {SYM: 0})


def test_a_flatten_beside_a_resting_limit_exit_on_its_way_is_not_said_done():
    # The limit exit in flight made the room 0: the flatten placed nothing, raised nothing,
    # and the position stayed open behind a limit far from the market.
    s = Session()
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    resting = OrderRequest(
        order_id="L1", symbol=SYM, side=Side.SELL, quantity=75, strategy="a",
        order_type=OrderType.LIMIT, limit_price=99_999.0,
    )  # fmt: skip
    assert s.gate.check(resting) is None  # let through, not in the store yet
    assert s.gate.exit_room("a", SYM) == 75  # a resting limit closes nothing
    with pytest.raises(FlattenError, match=f"a:{SYM}"):
        s.desk.flatten()


def test_a_breach_flatten_given_up_while_the_broker_was_down_starts_again_when_it_is_back():
    # After FLATTEN_ATTEMPTS failed tries (~15 minutes of a disconnected broker) the flatten
    # gave up for good: the reconnect cut the wait short but kept the failures, so the breached
    # positions stayed open at the broker for the rest of the session.
    from tradelab.trading.risk_monitor import FLATTEN_ATTEMPTS

    s = Session(daily_loss_limit=500.0, flatten_on_breach=True)
    s.desk.reset_daily_pnl("2025-11-12")
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.broker.disconnect()
    s.mark(SYM, 96.0)  # the day's loss crosses the limit while the broker is down
    assert s.monitor.check()
    for _ in range(FLATTEN_ATTEMPTS + 5):  # every try refused, each wait over
        s.monitor._flatten_next_try = 0.0
        s.monitor.check()
    assert s.monitor.flatten_given_up
    s.broker.connect()
    assert s.broker.positions() == {SYM: 150}
    s.monitor._on_event(type("Reconnected", (), {"topic": "broker.reconnected"})())
    s.monitor.check()
    assert not s.monitor.flatten_given_up
    assert s.broker.positions() in ({}, {SYM: 0})
    assert not s.kernel.store.get("trading.open_positions", None)


@pytest.mark.parametrize(
    ("outside", "sent", "left"),
    [
        (-150, 0, "the broker holds 0 of"),  # missing_position: closed at another terminal
        (-75, 75, "SELL 75 not closed: the broker holds 0 of"),  # quantity_mismatch: 75 sent
        (-225, 0, "the broker holds -75 of"),  # the broker short where the book is long
    ],
)
def test_a_flatten_never_takes_the_brokers_position_past_zero(outside, sent, left):
    # The flatten sized its orders from the book alone: after the reconciler halted on a
    # missing position, Flatten all sold the book's 150 the broker no longer held, a naked
    # short there, while the book (now flat) showed nothing.
    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.broker.faults.hold_outside_position(SYM, outside, 100.0)
    before = s.broker.positions().get(SYM, 0)
    with pytest.raises(FlattenError, match=left) as info:
        s.desk.flatten()
    assert len(info.value.placed) == (1 if sent else 0)
    assert s.broker.positions().get(SYM, 0) == before - sent
    assert "reconciliation_mismatches" in str(info.value)


def test_a_flatten_of_opposite_positions_in_one_symbol_closes_both():
    # Two strategies long and short the same contract: the broker nets them to nothing, and
    # closing both leaves it at nothing, so neither close is cut.
    s = Session()
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    s.desk.place_order(SYM, "SELL", 75, strategy="b")
    assert s.broker.positions().get(SYM, 0) == 0
    assert len(s.desk.flatten()) == 2
    assert s.broker.positions().get(SYM, 0) == 0
    assert not s.kernel.store.get("trading.open_positions", None)


def test_a_flatten_closes_nothing_blind_when_the_broker_cannot_say_what_it_holds():
    s = Session()
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    s.broker.faults.fail_reads(1)
    with pytest.raises(
        FlattenError, match="not sent blind, the broker's position is unknown"
    ) as info:
        s.desk.flatten()
    assert info.value.placed == []


def test_opposite_positions_in_one_contract_are_closed_without_a_short_to_margin():
    # Closed in position-id order, the long's SELL went first: at a broker holding none it was
    # a naked short, refused for margin, and the short's BUY then opened a long there.
    from tradelab.broker import PaperBroker, PaperBrokerConfig
    from tradelab.trading.execution import ExecutionDesk

    s = Session()
    s.broker = PaperBroker(PaperBrokerConfig(capital=150_000.0), clock=s.clock)
    s.broker.set_quote(SYM, 100.0, 101.0, size=10_000)
    s.desk = ExecutionDesk(s.broker, s.kernel.submit, risk=s.gate)
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    s.desk.place_order(SYM, "SELL", 75, strategy="b")  # the broker nets them to nothing
    assert s.broker.positions().get(SYM, 0) == 0
    assert len(s.desk.flatten()) == 2
    assert s.broker.positions().get(SYM, 0) == 0
    assert not s.kernel.store.get("trading.open_positions", None)


def test_two_flattens_at_once_close_no_more_than_the_broker_holds():
    # Each read the broker's 75 before the other's SELL filled and sent its own: the broker
    # went short 75 while the book showed flat.
    import contextlib
    import threading

    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.broker.faults.hold_outside_position(SYM, -75, 100.0)  # the book holds 75 more
    both_read = threading.Barrier(2, timeout=2.0)
    read_positions = s.broker.positions

    def positions_then_wait_for_the_other():
        held = read_positions()
        # The race, made certain: both read before either sends (one at a time, the other
        # never comes and the wait times out).
        with contextlib.suppress(threading.BrokenBarrierError):
            both_read.wait()
        return held

    s.broker.positions = positions_then_wait_for_the_other
    results = []

    def flatten():
        try:
            results.append(s.desk.flatten())
        except FlattenError as exc:
            results.append(exc)

    threads = [threading.Thread(target=flatten) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2
    assert read_positions().get(SYM, 0) == 0  # closed once, not past zero


@pytest.mark.parametrize(
    ("capital", "latency_ms", "closed"),
    [
        (600.0, 0, True),  # the BUY is refused for cash: the SELL goes first, the BUY follows
        (800.0, 200, False),  # neither fills at once: each is cancelled, both named
    ],
)
def test_opposite_positions_with_little_cash_never_leave_the_broker_holding_one(
    tmp_path, capital, latency_ms, closed
):
    # Each close is checked and filled alone: the first sent was a position at the broker,
    # refused or filled while the other was refused, and the broker ended long or short 5.
    from tests.test_runner_scripted import at
    from tradelab.broker import PaperBroker, PaperBrokerConfig
    from tradelab.engine import Engine
    from tradelab.market.clock import SimulatedClock
    from tradelab.market.ticks import Tick
    from tradelab.runner import InstrumentUniverse, PlainInstrument
    from tradelab.trading.execution import ExecutionDesk

    universe = InstrumentUniverse({"ABC": PlainInstrument("ABC", 1, 1000.0)})
    clock = SimulatedClock(at("10:00"))
    config = PaperBrokerConfig(
        latency_ms=latency_ms, brokerage_per_fill=0.0, enforce_market_hours=False, capital=capital
    )
    broker = PaperBroker(config, universe=universe, clock=clock)
    engine = Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False).start()
    desk = ExecutionDesk(broker, engine.submit, universe=universe)

    def quote(hhmm, price, seconds=0):
        clock.set(at(hhmm) + seconds * 10**9)
        broker.on_quote(Tick("ABC", clock.now_ns(), price, price, price, 10**6, 10**6))
        engine.flush()

    try:
        quote("10:00", 100.0)
        desk.place_order("ABC", "BUY", 5, strategy="A")
        quote("10:00", 100.0, 1)
        desk.place_order("ABC", "SELL", 5, strategy="B")
        quote("10:00", 100.0, 2)
        quote("10:01", 150.0)
        assert broker.positions().get("ABC", 0) == 0
        if closed:
            desk.flatten()
        else:
            with pytest.raises(FlattenError, match="sent first to net the positions held both"):
                desk.flatten()
        quote("10:01", 150.0, 5)  # whatever is still working fills now
        quote("10:01", 150.0, 10)
        assert broker.positions().get("ABC", 0) == 0
        book = {
            p["strategy"]: p["net_quantity"] for p in engine.store.get("trading.positions").values()
        }
        assert book == ({"A": 0, "B": 0} if closed else {"A": 5, "B": -5})
    finally:
        engine.stop()


def test_a_flatten_counts_another_callers_exit_working_at_the_broker():
    # The book holds 150, the broker 75; a strategy's exit of 75 reaches the broker (working:
    # latency) between the flatten's cancels and its read: the flatten read 75 and sold 75 more,
    # and the broker ended short 75 while the book showed flat.
    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.broker.faults.hold_outside_position(SYM, -75, 100.0)
    s.broker.config.latency_ms = 60_000
    read_positions, sent = s.broker.positions, []

    def positions_after_an_exit_went_out():
        if not sent:
            sent.append(s.desk.place_exit(SYM, "SELL", 75, "a"))
        return read_positions()

    s.broker.positions = positions_after_an_exit_went_out
    with pytest.raises(FlattenError, match="the broker holds 0 of"):
        s.desk.flatten()
    s.broker.positions = read_positions
    s.clock.advance(120 * 10**9)
    s.broker.set_quote(SYM, 100.0, 101.0, size=10_000)  # the exit fills now
    assert s.broker.positions().get(SYM, 0) == 0


def test_every_pair_held_both_ways_is_netted_and_a_refused_leg_keeps_the_brokers_reason():
    # Each side could go first only once a flatten: a third pair was left open, said to have
    # "not filled at once" though every close had; a refusal's own reason was replaced too.
    s = Session()
    for pair in "ab", "cd", "ef":
        s.desk.place_order(SYM, "BUY", 75, strategy=pair[0])
        s.desk.place_order(SYM, "SELL", 75, strategy=pair[1])
    assert s.broker.positions().get(SYM, 0) == 0
    assert len(s.desk.flatten()) == 6
    assert s.broker.positions().get(SYM, 0) == 0
    assert not s.kernel.store.get("trading.open_positions", None)

    s.desk.place_order(PUT, "BUY", 75, strategy="a")
    s.desk.place_order(PUT, "SELL", 75, strategy="b")
    s.broker.faults.reject_orders_for(60.0)
    with pytest.raises(FlattenError, match="rejects every order") as info:
        s.desk.flatten()
    assert all("rejects every order" in why for why in info.value.not_closed.values())
    assert s.broker.positions().get(PUT, 0) == 0
