"""The daily loss limit halts or reduces by itself, across crashes; only an operator resumes."""

import pytest

from tests.risk_session import PUT, SYM, Session
from tradelab.errors import InvalidInputError
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.flatten import FlattenError
from tradelab.trading.risk import RiskGate
from tradelab.trading.risk_monitor import DailyLossMonitor


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


def test_a_halt_spares_the_flattens_closes_that_did_not_fill_at_once():
    # The risk monitor's next check cancelled every working order of a halt, the flatten's own
    # closes too: with a broker that fills a moment later, an operator's Flatten after a halt
    # closed nothing and said it had sent its close.
    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.broker.config.latency_ms = 200
    s.gate.halt("ops", "news")
    [close] = s.desk.flatten()
    assert s.kernel.store.get(f"trading.working.{close}")["exit_only"] is True
    s.monitor.check()  # the monitor wakes (a mark, a timer) before the close fills
    assert s.kernel.store.get(f"trading.orders.{close}")["status"] != "cancelled"
    s.clock.advance(10**9)
    s.broker.set_quote(SYM, 100.0, 101.0, size=10_000)
    assert s.broker.positions() in ({}, {SYM: 0})
    assert not s.kernel.store.get("trading.open_positions", None)


def test_a_breach_flatten_in_a_halt_closes_with_a_broker_that_fills_later():
    # Each check cancelled the breach flatten's close, and the flatten sent it again a second
    # later, for ever, never counted as a failure.
    s = Session(daily_loss_limit=500.0, flatten_on_breach=True)
    s.desk.reset_daily_pnl("2025-11-12")
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    entry = s.desk.place_order(PUT, "BUY", 75, strategy="b", order_type="LIMIT", limit_price=80.0)
    s.broker.config.latency_ms = 200
    s.mark(SYM, 96.0)
    assert s.monitor.check() and s.gate.state == "halted"
    s.monitor.check()
    assert s.kernel.store.get(f"trading.orders.{entry}")["status"] == "cancelled"  # still
    assert [o["side"] for o in s.kernel.store.get("trading.working").values()] == ["SELL"]
    s.clock.advance(10**9)
    s.broker.set_quote(SYM, 100.0, 101.0, size=10_000)
    assert s.broker.positions() in ({}, {SYM: 0})
    assert not s.kernel.store.get("trading.open_positions", None)
    assert "order.cancelled" not in [
        e.topic for e in s.kernel.events if e.payload.get("side") == "SELL"
    ]


def test_a_breach_flattens_next_try_leaves_its_working_close_to_fill():
    # Each try (a second apart) cancelled the close the one before had sent and sent another:
    # with a broker slower than a second none lived to fill, and no try counted as failed.
    s = Session(daily_loss_limit=500.0, flatten_on_breach=True)
    s.desk.reset_daily_pnl("2025-11-12")
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.broker.config.latency_ms = 2000
    s.mark(SYM, 96.0)
    assert s.monitor.check() and s.gate.state == "halted"
    for _ in range(3):  # tries a second apart, the close not filled yet
        s.clock.advance(10**9 // 2)
        s.broker.set_quote(SYM, 96.0, 97.0, size=10_000)
        s.monitor._flatten_next_try = 0.0
        s.monitor.check()
    s.clock.advance(10**9)
    s.broker.set_quote(SYM, 96.0, 97.0, size=10_000)
    sells = [o for o in s.kernel.store.get("trading.orders").values() if o["side"] == "SELL"]
    assert [(o["status"], o["filled_quantity"]) for o in sells] == [("filled", 150)]
    assert s.broker.positions() in ({}, {SYM: 0})


def test_a_second_flatten_keeps_an_earlier_close_only_while_it_still_fits_the_position():
    # Kept whatever it was, the first flatten's SELL 150 outlived the strategy's own sale of
    # 75: the second flatten sent nothing, said "no open position", and the broker went short.
    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.broker.config.latency_ms = 2000
    [first] = s.desk.flatten()
    kept: list[str] = []
    assert s.desk.flatten(kept=kept) == [] and kept == [first]  # pressed again: left to fill
    s.broker.config.latency_ms = 0
    s.desk.place_order(SYM, "SELL", 75, strategy="a")  # the strategy sells 75 meanwhile
    cancelled: list[str] = []
    second = s.desk.flatten(cancelled=cancelled)
    assert cancelled == [first] and len(second) == 1  # replaced by a close of the 75 held
    s.clock.advance(3 * 10**9)
    s.broker.set_quote(SYM, 100.0, 101.0, size=10_000)
    assert s.broker.positions() in ({}, {SYM: 0})
    assert not s.kernel.store.get("trading.open_positions", None)


def test_an_earlier_flatten_close_is_kept_only_while_it_fits_the_broker_and_the_halt_too():
    # Kept on the book's word alone, a close outlived a position closed at another terminal
    # and took the broker from 0 to -150; a halt spared a close the strategy's own sale had
    # made too large; in `reducing` a strategy's exit beside the flatten's close was spared too.
    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.broker.config.latency_ms = 2000
    [first] = s.desk.flatten()
    s.broker.faults.hold_outside_position(SYM, -150, 101.0)  # closed elsewhere meanwhile
    cancelled: list[str] = []
    with pytest.raises(FlattenError, match="the broker holds 0"):
        s.desk.flatten(cancelled=cancelled)
    assert cancelled == [first] and s.broker.open_orders() == []

    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.broker.config.latency_ms = 2000
    [close] = s.desk.flatten()
    s.broker.config.latency_ms = 0
    s.desk.place_order(SYM, "SELL", 75, strategy="a")  # the strategy's own sale: 75 left
    s.gate.halt("ops", "news")
    s.monitor.check()
    assert s.kernel.store.get(f"trading.orders.{close}")["status"] == "cancelled"

    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.broker.config.latency_ms = 2000
    [close] = s.desk.flatten()
    exit_ = s.desk.place_order(SYM, "SELL", 150, strategy="a")  # the strategy's exit beside it
    s.gate.halt("ops", "exits only", mode="reducing")
    s.monitor.check()
    status = {o: s.kernel.store.get(f"trading.orders.{o}")["status"] for o in (close, exit_)}
    assert status[exit_] == "cancelled" and status[close] != "cancelled"
    s.clock.advance(3 * 10**9)
    s.broker.set_quote(SYM, 100.0, 101.0, size=10_000)
    assert s.broker.positions() in ({}, {SYM: 0})


def test_a_halt_cancels_a_flatten_close_the_brokers_position_no_longer_takes():
    # The halt kept the close on the book's word alone: the position had been closed at
    # another terminal, and the close took the broker from 0 to -150 during the halt.
    s = Session()
    s.desk.place_order(SYM, "BUY", 150, strategy="a")
    s.broker.config.latency_ms = 2000
    [close] = s.desk.flatten()
    s.broker.faults.hold_outside_position(SYM, -150, 101.0)
    s.gate.halt("ops", "news")
    s.monitor.check()
    assert s.kernel.store.get(f"trading.orders.{close}")["status"] == "cancelled"
    s.clock.advance(3 * 10**9)
    s.broker.set_quote(SYM, 100.0, 101.0, size=10_000)
    assert s.broker.positions() in ({}, {SYM: 0})
