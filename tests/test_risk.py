"""Risk: each pre-trade check denies with its reason and never reaches the broker; the daily loss
limit halts (or reduces) by itself; only an operator's journaled command resumes."""

import threading
from datetime import datetime

import pytest

from tests.contracts.local_kernel import LocalKernel
from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.errors import InvalidInputError
from tradelab.market.clock import SimulatedClock
from tradelab.market.instruments import IST
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.flatten import FlattenError
from tradelab.trading.orders import OrderRequest, OrderType, Side
from tradelab.trading.risk import OrderDeniedError, RiskConfig, RiskGate
from tradelab.trading.risk_monitor import DailyLossMonitor

SYM = "NIFTY25NOV24000CE"
PUT = "NIFTY25NOV24000PE"
OPEN_NS = int(datetime(2025, 11, 12, 10, tzinfo=IST).timestamp()) * 10**9


class Session:
    def __init__(self, **limits) -> None:
        self.kernel = LocalKernel()
        self.clock = SimulatedClock(OPEN_NS)  # the market's: the broker's and the gate's
        self.broker = PaperBroker(PaperBrokerConfig(), clock=self.clock)
        for symbol in (SYM, PUT):
            self.broker.set_quote(symbol, 100.0, 101.0, size=10_000)
            self.mark(symbol, 100.5)
        self.config = RiskConfig(**limits)
        self.gate = RiskGate(self.config, self.kernel.store, self.kernel.submit, clock=self.clock)
        self.desk = ExecutionDesk(self.broker, self.kernel.submit, risk=self.gate)
        self.monitor = DailyLossMonitor(
            self.config, self.kernel.store, self.kernel.submit, desk=self.desk
        )

    def mark(self, symbol: str, price: float) -> None:
        self.kernel.submit("mark.updated", {"symbol": symbol, "price": price}, key=symbol)

    def denied(self, *args, **kwargs) -> OrderDeniedError:
        sent = len(self.broker.fills_since(0)), self.broker.open_orders()
        with pytest.raises(OrderDeniedError) as info:
            self.desk.place_order(*args, **kwargs)
        assert (len(self.broker.fills_since(0)), self.broker.open_orders()) == sent
        event = self.kernel.events[-1]
        assert event.topic == "order.denied"
        assert event.payload["reason"] == str(info.value)
        assert event.payload["check"] == info.value.check
        assert self.kernel.store.get(f"trading.orders.{event.payload['order_id']}")["status"] == (
            "denied"
        )
        return info.value


def losing(*, with_put: bool = False, **limits) -> Session:
    """A session whose day is a loss past a limit of 500: 150 bought at 101, marked at 96
    (and, `with_put`, 75 of PUT sold by strategy b); nothing checked yet."""
    s = Session(daily_loss_limit=500.0, **limits)
    s.desk.reset_daily_pnl("2025-11-12")
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    if with_put:
        s.desk.place_order(PUT, "SELL", 75, strategy="b")
    s.mark(SYM, 96.0)
    return s


def test_max_order_quantity_denies_a_larger_order():
    s = Session(max_order_quantity=150)
    s.desk.place_order(SYM, "BUY", 150)
    err = s.denied(SYM, "BUY", 225)
    assert err.check == "max_order_quantity" and "quantity 225" in str(err)


def test_max_open_positions_denies_a_new_position_but_not_adding_to_one():
    s = Session(max_open_positions=1)
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    s.desk.place_order(SYM, "BUY", 75, strategy="a")  # adds to the open one
    err = s.denied(PUT, "BUY", 75, strategy="a")
    assert err.check == "max_open_positions" and "1 positions are open" in str(err)


@pytest.mark.parametrize(
    ("limits", "check"),
    [
        ({"max_open_positions": 1}, "max_open_positions"),
        ({"max_total_notional": 10_000.0}, "max_total_notional"),
    ],
)
def test_book_wide_limits_count_an_order_checked_on_another_thread_before_it_is_applied(
    limits, check
):
    # Two orders on different strategies and symbols take different check locks: the second
    # is checked while the first has passed but its submission is not in the store yet.
    s = Session(**limits)
    results = {}
    hand_over = s.desk._hand_over
    inside, go_on = threading.Event(), threading.Event()

    def slow_hand_over():
        if threading.current_thread().name == "first":
            inside.set()
            go_on.wait(10)
        hand_over()

    s.desk._hand_over = slow_hand_over

    def place(symbol, strategy):
        try:
            s.desk.place_order(symbol, "BUY", 75, strategy=strategy)
            results[strategy] = "ok"
        except OrderDeniedError as exc:
            results[strategy] = exc.check

    first = threading.Thread(target=place, args=(SYM, "a"), name="first")
    first.start()
    assert inside.wait(10)
    place(PUT, "b")  # checked while a's order is in flight
    go_on.set()
    first.join(10)
    assert results == {"a": "ok", "b": check}
    assert len(s.kernel.store.get("trading.open_positions")) == 1
    assert s.gate._in_flight == {}


def test_max_order_notional_values_a_market_order_at_the_mark():
    s = Session(max_order_notional=10_000.0)
    s.desk.place_order(SYM, "BUY", 75)  # 75 x 100.5 = 7,537.50
    err = s.denied(SYM, "BUY", 150)
    assert err.check == "max_order_notional" and "15,075.00" in str(err)


def test_max_total_notional_counts_positions_and_working_orders():
    s = Session(max_total_notional=20_000.0)
    s.desk.place_order(SYM, "BUY", 75)  # position 75 at the symbol's mark, 100.5: 7,537.50
    s.desk.place_order(PUT, "BUY", 75, order_type="LIMIT", limit_price=90.0)  # working 6,750
    err = s.denied(PUT, "BUY", 75, order_type="LIMIT", limit_price=90.0)  # + 6,750
    assert err.check == "max_total_notional" and "21,037.50" in str(err)


def test_a_new_position_is_valued_at_its_symbols_mark_from_the_fill_on():
    """At its own fill price (the ask), the spread paid was invisible to the daily loss limit
    until the symbol's next mark."""
    s = Session()
    s.desk.place_order(SYM, "BUY", 75)  # filled at the ask, 101.0; the mark is 100.5
    position = s.kernel.store.get(f"trading.positions.manual:{SYM}")
    assert position["mark"] == 100.5
    assert position["unrealized_pnl"] == -37.5


def test_max_orders_per_minute_denies_the_next_order_until_the_minute_passes():
    s = Session(max_orders_per_minute=2)
    s.desk.place_order(SYM, "BUY", 75)
    s.clock.advance(30 * 10**9)
    s.desk.place_order(SYM, "BUY", 75)
    err = s.denied(SYM, "BUY", 75)
    assert err.check == "max_orders_per_minute"
    s.clock.advance(31 * 10**9)  # the first order left the window
    s.desk.place_order(SYM, "BUY", 75)


def test_max_orders_per_minute_counts_the_orders_sent_before_a_restart():
    s = Session(max_orders_per_minute=2)
    s.desk.place_order(SYM, "BUY", 75)
    s.clock.advance(30 * 10**9)
    s.desk.place_order(SYM, "BUY", 75)
    # The restarted session: a new gate and desk over the same store, the same market minute.
    s.broker._order_listeners.clear()
    s.broker._connection_listeners.clear()
    s.gate = RiskGate(s.config, s.kernel.store, s.kernel.submit, clock=s.clock)
    s.desk = ExecutionDesk(s.broker, s.kernel.submit, risk=s.gate)
    assert s.denied(SYM, "BUY", 75).check == "max_orders_per_minute"
    s.clock.advance(31 * 10**9)  # the first order left the window
    s.desk.place_order(SYM, "BUY", 75)


def test_order_without_a_price_is_denied_when_notional_is_limited():
    s = Session(max_order_notional=1e9)
    s.broker.set_quote("NIFTY25NOV24100CE", 50.0, 51.0)
    err = s.denied("NIFTY25NOV24100CE", "BUY", 75)
    assert err.check == "no_price"


def test_daily_loss_breach_halts_and_only_an_operator_resumes():
    s = Session(daily_loss_limit=1_000.0)
    s.desk.reset_daily_pnl("2025-11-12")
    s.desk.place_order(SYM, "BUY", 150)  # 150 @ 101, one fill: fee 20
    assert s.monitor.check() is False
    s.mark(SYM, 95.0)  # unrealized -900, fee 20: daily -920
    assert s.monitor.check() is False
    s.mark(SYM, 94.0)  # -1,050 - 20 = -1,070
    assert s.monitor.check() is True
    topics = s.kernel.topics("risk.")
    assert topics == ["risk.daily_loss_breached", "risk.halted"]
    breach = s.kernel.events[-2]
    assert breach.critical and breach.payload["daily_pnl"] == pytest.approx(-1_070.0)
    assert s.gate.state == "halted"
    err = s.denied(SYM, "SELL", 75)  # halted: not even an exit
    assert err.check == "risk_state" and "crossed the daily loss limit" in str(err)
    assert s.monitor.check() is False  # one breach a day
    with pytest.raises(InvalidInputError, match="'by'"):
        s.gate.resume("", "looked at it")
    s.gate.resume("ops-anna", "loss understood, resuming")
    control = s.kernel.store.get("risk.control")
    assert (control["state"], control["by"]) == ("active", "ops-anna")
    s.desk.place_order(SYM, "SELL", 75)


def test_reducing_mode_allows_exits_only_and_flatten_closes_the_book():
    s = Session(daily_loss_limit=500.0, on_breach="reducing", flatten_on_breach=False)
    s.desk.reset_daily_pnl("2025-11-12")
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.mark(SYM, 96.0)
    assert s.monitor.check() is True and s.gate.state == "reducing"
    s.desk.place_order(SYM, "SELL", 75, strategy="a")  # reduces: allowed
    assert s.denied(SYM, "BUY", 75, strategy="a").check == "risk_state"
    assert s.denied(SYM, "SELL", 150, strategy="a").check == "risk_state"  # would reverse
    assert s.denied(PUT, "BUY", 75, strategy="a").check == "risk_state"


def test_breach_with_flatten_closes_every_open_position_while_halted():
    s = losing(with_put=True, flatten_on_breach=True)
    assert s.monitor.check() is True
    assert s.gate.state == "halted"
    assert s.kernel.store.get("trading.open_positions") == {}
    assert s.broker.positions() == {}
    assert s.kernel.topics("position.closed") == ["position.closed"] * 2


class Crash(BaseException):
    """A kill -9 at a chosen submit: what came before it is journaled, nothing after."""


def crash_at(kernel, topic):
    submit = kernel.submit

    def submitting(t, payload, **kwargs):
        if t == topic:
            raise Crash(t)
        return submit(t, payload, **kwargs)

    return submitting


def test_a_crash_between_the_breach_and_its_halt_event_still_leaves_trading_halted():
    s = losing()
    dying = DailyLossMonitor(s.config, s.kernel.store, crash_at(s.kernel, "risk.halted"))
    with pytest.raises(Crash):
        dying.check()
    assert s.kernel.topics("risk.") == ["risk.daily_loss_breached"]
    # The restarted session: a new gate and monitor over the same store.
    gate = RiskGate(s.config, s.kernel.store, s.kernel.submit, clock=s.clock)
    assert gate.state == "halted"
    assert "crossed the daily loss limit" in s.kernel.store.get("risk.control")["reason"]
    assert DailyLossMonitor(s.config, s.kernel.store, s.kernel.submit).check() is False
    assert s.denied(PUT, "BUY", 75, strategy="a").check == "risk_state"


def test_a_restart_journals_the_position_closed_a_crash_kept_from_following_its_fill():
    s = Session()
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    s.broker._order_listeners.clear()  # the session's desk is gone with the crash
    s.broker._connection_listeners.clear()
    dying = ExecutionDesk(s.broker, crash_at(s.kernel, "position.closed"), store=s.kernel.store)
    with pytest.raises(Crash):
        dying.place_order(SYM, "SELL", 75, strategy="a")
    assert s.kernel.store.get("trading.positions.a:" + SYM)["status"] == "flat"
    s.broker._order_listeners.clear()
    s.broker._connection_listeners.clear()
    restarted = ExecutionDesk(s.broker, s.kernel.submit)
    assert restarted.journal_missed_closes() == ["a:" + SYM]
    position = s.kernel.store.get("trading.positions.a:" + SYM)
    assert position["status"] == "closed" and position["closed_by_trade_id"]
    assert s.kernel.topics("position.closed") == ["position.closed"]
    assert restarted.journal_missed_closes() == []


def test_a_restart_does_the_breach_flatten_a_crash_cut_short_after_reconciling():
    s = losing(with_put=True, flatten_on_breach=True)
    # Died right after the halt: no cancel, no flatten.
    assert DailyLossMonitor(s.config, s.kernel.store, s.kernel.submit).check() is True
    assert len(s.kernel.store.get("trading.open_positions")) == 2
    steps = []
    flatten = s.desk.flatten
    s.desk.flatten = lambda: (steps.append("flatten"), flatten())[1]
    s.monitor.finish_after_restart(lambda: steps.append("reconcile"))
    assert steps == ["reconcile"]  # the broker may have no quotes yet: on the next check
    s.monitor.check()
    assert steps == ["reconcile", "flatten"]
    assert s.kernel.store.get("trading.open_positions") == {}
    assert s.broker.positions() == {}
    s.monitor.finish_after_restart(lambda: steps.append("reconcile"))  # nothing left to do
    s.monitor.check()
    assert steps == ["reconcile", "flatten"]


def _restarted_with_a_flatten_due():
    s = losing(flatten_on_breach=True)
    assert DailyLossMonitor(s.config, s.kernel.store, s.kernel.submit).check() is True
    s.monitor.finish_after_restart(None)
    return s


def test_a_restart_flatten_still_pending_is_dropped_once_an_operator_resumes():
    s = _restarted_with_a_flatten_due()
    s.gate.resume("ops-anna", "keeping the position")  # before the first try
    s.monitor.check()
    s.gate.halt("ops-anna", "news at 14:00", mode="reducing")  # another halt, later
    s.monitor.check()
    assert s.kernel.store.get("trading.positions.a:" + SYM)["net_quantity"] == 150


def test_a_restart_flatten_the_broker_refuses_is_retried_with_waits_not_on_every_check():
    s = _restarted_with_a_flatten_due()
    tries = []

    def refused():
        tries.append(1)
        raise FlattenError([], {"a:" + SYM: "broker rejects every order for now"})

    s.desk.flatten = refused
    for _ in range(5):  # marks arriving at once: one try, then a wait
        s.monitor.check()
    assert len(tries) == 1
    s.monitor._flatten_next_try = 0.0  # the wait is over
    s.monitor.check()
    assert len(tries) == 2


def test_a_restart_flattens_nothing_once_an_operator_resumed_or_without_flatten_on_breach():
    for flatten_on_breach, resumed in ((True, True), (False, False)):
        s = losing(flatten_on_breach=flatten_on_breach)
        assert DailyLossMonitor(s.config, s.kernel.store, s.kernel.submit).check() is True
        if resumed:
            s.gate.resume("ops-anna", "keeping the position")
        s.monitor.finish_after_restart(None)
        s.monitor.check()
        assert s.kernel.store.get("trading.positions.a:" + SYM)["net_quantity"] == 150


def test_halt_command_needs_who_and_why_and_a_known_mode():
    s = Session()
    with pytest.raises(InvalidInputError, match="'reason'"):
        s.gate.halt("ops", " ")
    with pytest.raises(InvalidInputError, match="mode 'paused'"):
        s.gate.halt("ops", "news", mode="paused")
    s.gate.halt("ops", "news at 14:00")
    assert s.kernel.store.get("risk.control")["by"] == "ops"
    assert s.denied(SYM, "BUY", 75).check == "risk_state"


def test_one_breach_a_day_also_when_the_pnl_was_never_reset_to_a_session():
    # No reset_daily_pnl (a notebook session): the day has no date, yet once an operator
    # resumes after a breach the monitor must not halt again at once on the same loss.
    s = Session(daily_loss_limit=1_000.0)
    s.desk.place_order(SYM, "BUY", 150)
    s.mark(SYM, 94.0)
    assert s.monitor.check() is True
    assert s.gate.resume("ops-anna", "loss understood, resuming") is True
    assert s.gate.resume("ops-ben", "to be sure") is False  # active: nothing to lift, journaled
    s.mark(SYM, 90.0)
    assert s.monitor.check() is False
    assert s.kernel.topics("risk.") == ["risk.daily_loss_breached", "risk.halted", "risk.resumed"]
    assert s.gate.state == "active"


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


def test_reducing_counts_working_exits_so_two_exits_cannot_take_a_position_through_zero():
    s = Session(daily_loss_limit=500.0, on_breach="reducing")
    s.desk.reset_daily_pnl("2025-11-12")
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.mark(SYM, 96.0)
    assert s.monitor.check() is True and s.gate.state == "reducing"
    s.desk.place_order(SYM, "SELL", 75, strategy="a", order_type="LIMIT", limit_price=120.0)
    s.desk.place_order(SYM, "SELL", 75, strategy="a", order_type="LIMIT", limit_price=120.0)
    err = s.denied(SYM, "SELL", 75, strategy="a", order_type="LIMIT", limit_price=120.0)
    assert err.check == "risk_state"
    s.broker.set_quote(SYM, 125.0, 126.0, size=10_000)
    s.broker.poll()
    assert s.broker.positions() == {}  # flat, not short


def _sell_exit(s, start, outcomes):
    start.wait()
    try:
        s.desk.place_order(SYM, "SELL", 75, strategy="a", order_type="LIMIT", limit_price=200.0)
        outcomes.append("placed")
    except OrderDeniedError:
        outcomes.append("denied")


def test_two_exits_placed_at_once_cannot_both_pass_and_reverse_the_position():
    # An exit is judged against the working orders in the store: the check and the
    # submission it allows are one step, or both threads see no working exit and both pass.
    import sys
    import threading

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows
    try:
        for _ in range(60):
            s = Session()
            s.desk.place_order(SYM, "BUY", 75, strategy="a")
            s.gate.halt(by="ops", reason="news", mode="reducing")
            start, outcomes = threading.Barrier(2), []
            threads = [
                threading.Thread(target=_sell_exit, args=(s, start, outcomes)) for _ in range(2)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(outcomes) == ["denied", "placed"]
    finally:
        sys.setswitchinterval(interval)


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


def test_an_exit_is_exempt_from_the_size_notional_and_rate_limits():
    s = Session(max_order_quantity=75, max_order_notional=8_000.0, max_orders_per_minute=3)
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    s.desk.place_order(PUT, "SELL", 75, strategy="a")
    assert s.denied(PUT, "SELL", 75, strategy="a").check == "max_orders_per_minute"
    s.mark(SYM, 140.0)  # 150 x 140 is over every limit above, and the minute is used up
    s.broker.set_quote(SYM, 139.5, 140.5)
    s.desk.place_order(SYM, "SELL", 150, strategy="a")
    s.desk.place_order(PUT, "BUY", 75, strategy="a")
    assert s.broker.positions() == {}


def test_closing_a_position_whose_mark_rose_passes_max_total_notional():
    s = Session(max_total_notional=20_000.0)
    s.desk.place_order(SYM, "BUY", 150)  # 150 x 101 = 15,150
    s.mark(SYM, 140.0)  # now 21,000: over the limit, so only exits may go
    s.broker.set_quote(SYM, 139.5, 140.5)
    assert s.denied(SYM, "BUY", 75).check == "max_total_notional"
    s.desk.place_order(SYM, "SELL", 75)
    s.desk.flatten()
    assert s.broker.positions() == {}


def test_an_order_that_goes_through_zero_is_not_an_exit_and_meets_the_limits():
    s = Session(max_order_quantity=150)
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    assert s.denied(SYM, "SELL", 225, strategy="a").check == "max_order_quantity"
    # Another strategy's order in the same symbol does not reduce a's position.
    assert s.denied(SYM, "SELL", 225, strategy="b").check == "max_order_quantity"


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


def test_max_open_positions_counts_a_working_opening_order_as_a_position():
    s = Session(max_open_positions=1)
    s.desk.place_order(SYM, "BUY", 75, strategy="a", order_type="LIMIT", limit_price=90.0)
    s.desk.place_order(SYM, "BUY", 75, strategy="a", order_type="LIMIT", limit_price=89.0)
    err = s.denied(PUT, "BUY", 75, strategy="a", order_type="LIMIT", limit_price=90.0)
    assert err.check == "max_open_positions"
    assert "0 positions are open, 1 more would open from working orders" in str(err)


def test_reducing_refusal_says_positions_are_per_strategy_and_names_who_holds_the_symbol():
    s = Session(daily_loss_limit=500.0, on_breach="reducing")
    s.desk.reset_daily_pnl("2025-11-12")
    s.desk.place_order(SYM, "BUY", 150, strategy="short_straddle")
    s.mark(SYM, 96.0)
    assert s.monitor.check() is True
    err = s.denied(SYM, "SELL", 75)  # the default strategy, 'manual', holds nothing
    assert "positions are per strategy and 'manual' holds none" in str(err)
    assert "'short_straddle' holds +150" in str(err)
    assert "place the order as the strategy that holds it, or flatten" in str(err)
    s.desk.place_order(SYM, "SELL", 75, strategy="short_straddle")  # as it says


def test_a_daily_loss_limit_of_zero_breaches_on_any_loss_but_not_on_a_flat_day():
    s = Session(daily_loss_limit=0.0)
    s.desk.reset_daily_pnl("2025-11-12")
    assert s.monitor.check() is False  # P&L 0.00, no trades: nothing lost
    assert s.gate.state == "active"
    s.desk.place_order(SYM, "BUY", 75)  # bought at 101, marked at 101: the fee is the loss
    assert s.monitor.check() is True


def test_a_breach_flatten_the_broker_refuses_is_retried_in_the_running_session():
    """It was tried once: one rejection left the position open (and, halted, unmanageable)
    for the rest of the day; only a restart retried it."""
    s = losing(with_put=True, flatten_on_breach=True)
    flatten, tries = s.desk.flatten, []

    def refused_once():
        tries.append(1)
        if len(tries) == 1:
            raise FlattenError([], {"a:" + SYM: "broker rejects every order for now"})
        return flatten()

    s.desk.flatten = refused_once
    assert s.monitor.check() is True
    assert len(s.kernel.store.get("trading.open_positions")) == 2
    s.monitor.check()  # marks arriving at once: no second try before the wait
    assert len(tries) == 1
    s.monitor._flatten_next_try = 0.0  # the wait is over
    s.monitor.check()
    assert len(tries) == 2
    assert s.kernel.store.get("trading.open_positions") == {}
    assert s.broker.positions() == {}


@pytest.mark.parametrize(
    ("on_breach", "standing", "after"),
    [("halted", "reducing", "halted"), ("reducing", "halted", "halted")],
)
def test_the_loss_limit_holds_while_trading_is_halted_by_someone_else(on_breach, standing, after):
    """An operator's (or the reconciler's) halt used to switch the limit off: no breach, no
    flatten, and the breach came whenever they resumed. It now takes the halt over, in the
    stricter mode."""
    s = losing(on_breach=on_breach, flatten_on_breach=True)
    s.gate.halt("ops-anna", "news at 11", mode=standing)
    assert s.monitor.check() is True
    assert s.gate.state == after
    assert s.kernel.store.get("risk.control")["by"] == "risk"
    assert s.kernel.store.get("risk.breach")["flatten"] is True
    assert s.kernel.store.get("trading.open_positions") == {}
    assert s.monitor.check() is False  # one breach a day


def test_a_loss_limit_of_zero_reads_0_00_not_minus_0_00():
    from tradelab.trading.risk_state import breach_reason

    assert breach_reason(-40.0, 0.0) == "daily P&L -40.00 crossed the daily loss limit 0.00"
    assert breach_reason(-600.0, 500.0).endswith("limit -500.00")


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


def test_a_market_order_is_valued_at_the_touch_it_fills_at_when_the_mark_has_one():
    """At the mid, a buy at the limit filled for half a spread more premium than it allows."""
    s = Session(max_order_notional=75 * 100.5)
    quote = {"symbol": SYM, "price": 100.5, "bid": 100.0, "ask": 101.0}
    s.kernel.submit("mark.updated", quote, key=SYM)
    err = s.denied(SYM, "BUY", 75)  # 75 x 101.00 = 7,575.00 > 7,537.50
    assert err.check == "max_order_notional" and "7,575.00" in str(err)
    s.desk.place_order(SYM, "SELL", 75)  # 75 x 100.00: within it


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


def test_exits_checked_at_once_count_each_other_before_the_store_has_either():
    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    exit_order = OrderRequest(order_id="X1", symbol=SYM, side=Side.SELL, quantity=150, strategy="a")
    assert s.gate.check(exit_order, exit_only=True) is None  # on its way, not in the store
    assert s.gate.exit_room("a", SYM) == 0
    second = OrderRequest(order_id="X2", symbol=SYM, side=Side.SELL, quantity=150, strategy="a")
    denial = s.gate.check(second, exit_only=True)
    assert denial is not None and denial.check == "exit_only"
    s.gate.settled("X1")  # never submitted: the room is back
    assert s.gate.exit_room("a", SYM) == 150


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
