"""Reconciliation scenarios for every kind and every policy, driven by the paper broker's faults.

A real PaperBroker, a real ExecutionDesk and a real StateStore folded with the default reducers
(through LocalKernel's synchronous submit); the Reconciler runs with no settle pause."""

from __future__ import annotations

from datetime import datetime

import pytest
from contracts.local_kernel import LocalKernel

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.broker.reconcile import (
    KINDS,
    POLICIES,
    BrokerView,
    Mismatch,
    Reconciler,
    ReconcilerConfig,
)
from tradelab.broker.reconcile.fixes import adjusting_trades
from tradelab.engine.store import build_store
from tradelab.market.clock import SimulatedClock
from tradelab.market.instruments import IST
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.orders import OrderRequest, OrderType, Side

SYM = "NIFTY25NOV24000CE"
OPEN_NS = int(datetime(2025, 11, 12, 10, tzinfo=IST).timestamp()) * 10**9


class Session:
    """A broker, a desk and a store; `reconciler(**policies)` builds a reconciler on them."""

    def __init__(self, account_path=None, kernel=None, broker=None):
        self.clock = SimulatedClock(OPEN_NS)
        self.broker = broker or PaperBroker(
            PaperBrokerConfig(brokerage_per_fill=20.0),
            clock=self.clock,
            account_path=account_path,
        )
        self.kernel = kernel or LocalKernel(store_factory=build_store)
        self.desk = ExecutionDesk(self.broker, self.kernel.submit)
        self.broker.set_quote(SYM, 100.0, 100.5, size=10_000)
        self.sleeps: list[float] = []

    @property
    def store(self):
        return self.kernel.store

    def reconciler(self, **config) -> Reconciler:
        config.setdefault("settle_s", 0.0)
        return Reconciler(
            self.broker,
            self.kernel.submit,
            config=ReconcilerConfig(**config),
            sleep=self.sleeps.append,
        )

    def book_quantity(self) -> int:
        positions = self.store.get("trading.positions", None) or {}
        return sum(p["net_quantity"] for p in positions.values() if p["symbol"] == SYM)

    def events(self, topic):
        return [e for e in self.kernel.events if e.topic == topic]


# -- one scenario per kind: the fault that makes the book and the broker disagree ------------
def missed_fill(s: Session) -> None:
    s.broker.faults.drop_fill_reports(1)
    s.desk.place_order(SYM, "BUY", 75)


def order_state_mismatch(s: Session) -> None:
    s.broker.faults.fill_after_cancel(1)
    oid = s.desk.place_order(SYM, "BUY", 75, order_type="LIMIT", limit_price=95.0)
    s.desk.cancel_order(oid)
    s.broker.set_quote(SYM, 94.0, 94.5)  # the "cancelled" order fills; the fill is reported


def unknown_open_order(s: Session) -> None:
    request = OrderRequest("ext-1", SYM, Side.BUY, 75, OrderType.LIMIT, 90.0, "manual")
    s.broker.faults.place_outside_order(request)


def unknown_position(s: Session) -> None:
    s.broker.faults.hold_outside_position(SYM, 150, 100.0)


def missing_position(s: Session) -> None:
    s.desk.place_order(SYM, "BUY", 75)
    s.broker.faults.hold_outside_position(SYM, -75, 100.0)  # closed from another terminal


def quantity_mismatch(s: Session) -> None:
    s.desk.place_order(SYM, "BUY", 150)
    s.broker.faults.hold_outside_position(SYM, -75, 100.0)


SCENARIOS = {
    "missed_fill": missed_fill,
    "order_state_mismatch": order_state_mismatch,
    "unknown_open_order": unknown_open_order,
    "unknown_position": unknown_position,
    "missing_position": missing_position,
    "quantity_mismatch": quantity_mismatch,
}


def only(kind: str, policy: str) -> dict[str, str]:
    """`policy` for `kind`, flag for every other kind (so one policy is tested at a time)."""
    return {k: (policy if k == kind else "flag") for k in KINDS}


def test_every_kind_has_a_scenario():
    assert set(SCENARIOS) == set(KINDS)


def test_agreeing_book_and_broker_report_nothing_and_advance_the_fill_point():
    s = Session()
    s.desk.place_order(SYM, "BUY", 75)
    report = s.reconciler().run_once()
    assert report.ok and report.mismatches == [] and report.fill_point == 1
    assert s.store.get("reconciliation.last_run.ok") is True
    assert s.events("reconciliation.mismatch") == []


@pytest.mark.parametrize("kind", KINDS)
def test_each_fault_is_found_as_its_kind_with_book_and_broker_views(kind):
    s = Session()
    SCENARIOS[kind](s)
    report = s.reconciler(**only(kind, "flag")).run_once()
    assert kind in report.kinds
    mismatch = next(m for m in report.mismatches if m.kind == kind)
    event = next(e for e in s.events("reconciliation.mismatch") if e.key == mismatch.item)
    assert event.payload["kind"] == kind
    assert event.payload["expected"] == mismatch.expected
    assert event.payload["actual"] == mismatch.actual
    assert s.store.get(f"reconciliation.mismatches.{mismatch.item}")["kind"] == kind


def test_dropped_fill_report_is_one_missed_fill_not_also_a_position_difference():
    s = Session()
    missed_fill(s)
    report = s.reconciler(**only("missed_fill", "flag")).run_once()
    assert sorted(report.kinds) == ["missed_fill", "order_state_mismatch"]
    fill = s.broker.fills_since(0)[0]
    assert report.mismatches[0].item == f"missed_fill:{fill.trade_id}"


@pytest.mark.parametrize("kind", KINDS)
def test_adopt_policy_fixes_the_book_to_the_broker_with_a_critical_fixed_event(kind):
    s = Session()
    SCENARIOS[kind](s)
    first = s.reconciler(**only(kind, "adopt")).run_once()
    item = next(m.item for m in first.mismatches if m.kind == kind)
    assert item in first.fixed
    fixed = [e for e in s.events("reconciliation.fixed") if e.key == item]
    assert fixed and all(e.critical for e in fixed)
    second = s.reconciler(**only(kind, "adopt")).run_once()
    assert kind not in second.kinds
    if kind in ("missed_fill", "unknown_position", "missing_position", "quantity_mismatch"):
        assert s.book_quantity() == s.broker.positions().get(SYM, 0)
    assert s.store.get("risk.control", None) is None  # adopting never halts


def test_adopted_unknown_position_is_booked_at_the_brokers_cost_so_the_pnl_agrees():
    # Bought elsewhere at 10 and 12 while the market is near 100: booked at the mark, the book
    # would miss the ~89 a unit the broker's cash says the sale made.
    s = Session()
    s.kernel.submit("mark.updated", {"symbol": SYM, "price": 100.25}, key=SYM)
    s.broker.faults.hold_outside_position(SYM, 75, 10.0)
    s.broker.faults.hold_outside_position(SYM, 75, 12.0)
    assert s.broker.average_prices() == {SYM: 11.0}
    s.reconciler(**only("unknown_position", "adopt")).run_once()
    [fix] = s.events("reconciliation.fixed")
    assert fix.payload["trade"]["price"] == 11.0
    assert s.store.get(f"trading.positions.reconciler:{SYM}.average_price") == 11.0
    # Valued at the mark at once: what the broker paid, and what that is worth now.
    worth = 150 * 100.25 + s.broker.cash - PaperBrokerConfig().capital
    assert s.store.get("pnl.unrealized") == pytest.approx(worth)
    cash_before_sale = s.broker.cash
    s.desk.place_order(SYM, "SELL", 150, strategy="reconciler")  # at the bid, 100.0
    assert s.store.get("pnl.realized") == 150 * (100.0 - 11.0)
    made_at_the_broker = s.broker.cash - PaperBrokerConfig().capital
    assert s.store.get("pnl.net") == pytest.approx(made_at_the_broker)
    assert s.broker.cash - cash_before_sale == 150 * 100.0 - 20.0


def test_a_position_whose_cost_the_broker_does_not_report_is_adopted_at_the_mark():
    s = Session()
    s.kernel.submit("mark.updated", {"symbol": SYM, "price": 100.25}, key=SYM)
    mismatch = Mismatch("unknown_position", f"unknown_position:{SYM}", 0, 75, {"symbol": SYM})
    view = BrokerView("acct", {SYM: 75}, [], [], {}, 0, average_prices={})
    [trade] = adjusting_trades(mismatch, view, s.store, 1_700_000_000 * 10**9)
    assert (trade["strategy"], trade["side"], trade["price"]) == ("reconciler", "BUY", 100.25)
    assert trade["ts"] == 1_700_000_000 * 10**9  # the session's time: the broker gives none


def test_adopted_quantity_difference_is_the_reconcilers_position_not_a_strategys():
    # Strategies a and b each bought 75; 225 were sold from another terminal (the broker holds
    # -75). Neither strategy did that: each keeps the position it traded, with no P&L it never
    # made, and the reconciler's own position holds the difference the book now agrees on.
    s = Session()
    s.desk.place_order(SYM, "BUY", 75, strategy="a")
    s.desk.place_order(SYM, "BUY", 75, strategy="b")
    before = {pid: dict(p) for pid, p in s.store.get("trading.positions").items()}
    s.broker.faults.hold_outside_position(SYM, -225, 100.0)
    s.reconciler(**only("quantity_mismatch", "adopt")).run_once()
    positions = s.store.get("trading.positions")
    for strategy in ("a", "b"):
        pid = f"{strategy}:{SYM}"
        kept = ("net_quantity", "average_price", "realized_pnl")
        assert {k: positions[pid][k] for k in kept} == {k: before[pid][k] for k in kept}
        assert s.store.get(f"pnl.by_strategy.{strategy}.realized") == 0.0
    assert positions[f"reconciler:{SYM}"]["net_quantity"] == -225
    assert positions[f"reconciler:{SYM}"]["lot_size"] == 75
    assert s.book_quantity() == s.broker.positions()[SYM] == -75
    assert s.reconciler(**only("quantity_mismatch", "adopt")).run_once().ok


def test_adopted_missed_fill_is_the_brokers_trade_under_its_own_id():
    s = Session()
    missed_fill(s)
    s.reconciler(missed_fill="adopt", order_state_mismatch="adopt").run_once()
    fill = s.broker.fills_since(0)[0]
    trade = s.store.get(f"trading.trades.{fill.trade_id}")
    assert (trade["quantity"], trade["price"], trade["fee"]) == (75, fill.price, fill.fee)
    order = s.store.get(f"trading.orders.{fill.order_id}")
    assert (order["status"], order["filled_quantity"]) == ("filled", 75)
    assert s.store.get(f"trading.working.{fill.order_id}", None) is None


def test_adopted_order_state_turns_a_cancelled_order_that_filled_into_filled():
    s = Session()
    order_state_mismatch(s)
    oid = next(iter(s.store.get("trading.orders")))
    assert s.store.get(f"trading.orders.{oid}.status") == "cancelled"
    s.reconciler(order_state_mismatch="adopt").run_once()
    assert s.store.get(f"trading.orders.{oid}.status") == "filled"
    assert s.store.get(f"trading.orders.{oid}.filled_quantity") == 75


def test_adopted_unknown_open_order_becomes_a_working_order_of_the_book():
    s = Session()
    unknown_open_order(s)
    s.reconciler(unknown_open_order="adopt").run_once()
    assert s.store.get("trading.orders.ext-1.status") == "accepted"
    assert s.store.get("trading.working.ext-1.remaining_quantity") == 75


def test_an_adopted_limit_order_keeps_its_type_and_limit_price(tmp_path):
    # Booked as a market order, the risk gate valued it at the mark, not its limit.
    s = Session(account_path=tmp_path / "acct.sqlite")
    request = OrderRequest("ext-9", SYM, Side.BUY, 75, OrderType.LIMIT, 1.0, "ext")
    s.broker.faults.place_outside_order(request)
    s.broker.close()  # the broker remembers the order across its restart, as a real one
    s = Session(account_path=tmp_path / "acct.sqlite", kernel=s.kernel)
    s.reconciler(unknown_open_order="adopt").run_once()
    order = s.store.get("trading.orders.ext-9")
    assert (order["order_type"], order["limit_price"]) == ("LIMIT", 1.0)
    assert s.store.get("trading.working.ext-9.limit_price") == 1.0


def test_an_adopted_unknown_position_gets_the_contracts_lot_size():
    s = Session()
    s.broker.faults.hold_outside_position(SYM, 150, 50.0)  # two lots of 75
    s.reconciler(**only("unknown_position", "adopt")).run_once()
    position = s.store.get(f"trading.positions.reconciler:{SYM}")
    assert (position["lot_size"], position["lots"]) == (75, 2.0)


@pytest.mark.parametrize("kind", KINDS)
def test_flag_policy_records_the_difference_changes_nothing_and_reports_it_again(kind):
    s = Session()
    SCENARIOS[kind](s)
    trades_before = dict(s.store.get("trading.trades", None) or {})
    first = s.reconciler(**only(kind, "flag")).run_once()
    assert kind in first.kinds and first.fixed == []
    assert s.events("reconciliation.fixed") == []
    assert (s.store.get("trading.trades", None) or {}) == trades_before
    second = s.reconciler(**only(kind, "flag")).run_once()
    assert kind in second.kinds  # the fill point did not move past an unresolved fill
    assert s.store.get("risk.control", None) is None


@pytest.mark.parametrize("kind", KINDS)
def test_halt_policy_halts_trading_through_the_risk_gate(kind):
    s = Session()
    SCENARIOS[kind](s)
    report = s.reconciler(**only(kind, "halt")).run_once()
    assert report.halted and report.fixed == []
    control = s.store.get("risk.control")
    assert (control["state"], control["by"]) == ("halted", "reconciler")
    assert kind in control["reason"]
    assert len(s.events("risk.halted")) == 1
    s.reconciler(**only(kind, "halt")).run_once()
    assert len(s.events("risk.halted")) == 1  # already halted: not halted again


def test_halt_policy_escalates_an_operators_reducing_to_halted_naming_the_difference():
    s = Session()
    missing_position(s)
    reconciler = s.reconciler(**only("missing_position", "halt"))  # halt_mode: halted
    reconciler.risk.halt("ops", "news at 11", mode="reducing")
    report = reconciler.run_once()
    assert report.halted
    control = s.store.get("risk.control")
    assert (control["state"], control["by"]) == ("halted", "reconciler")
    assert f"missing_position:{SYM}" in control["reason"]
    assert "reducing by ops: news at 11" in control["reason"]  # what it escalated from
    escalation = s.events("risk.halted")[-1]
    assert escalation.payload["mode"] == "halted"
    [mismatch] = s.events("reconciliation.mismatch")
    assert mismatch.payload["action"] == "halt" and mismatch.seq < escalation.seq


@pytest.mark.parametrize("state", ["halted", "reducing"])
def test_a_difference_found_when_already_halted_records_who_halted_not_a_new_halt(state):
    s = Session()
    missing_position(s)
    reconciler = s.reconciler(**only("missing_position", "halt"), halt_mode=state)
    reconciler.risk.halt("ops", "news at 11", mode=state)
    report = reconciler.run_once()
    assert not report.halted and report.flagged == [f"missing_position:{SYM}"]
    assert len(s.events("risk.halted")) == 1  # the operator's only
    control = s.store.get("risk.control")
    assert (control["state"], control["by"], control["reason"]) == (state, "ops", "news at 11")
    [mismatch] = s.events("reconciliation.mismatch")
    assert mismatch.payload["action"] == f"none (already {state} by ops: news at 11)"


def test_halt_mode_reducing_allows_exits_only():
    s = Session()
    unknown_position(s)
    s.reconciler(unknown_position="halt", halt_mode="reducing").run_once()
    assert s.store.get("risk.control.state") == "reducing"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("policy", POLICIES)
def test_dry_run_reports_under_any_policy_and_fixes_or_halts_nothing(kind, policy):
    s = Session()
    SCENARIOS[kind](s)
    report = s.reconciler(dry_run=True, **only(kind, policy)).run_once()
    assert kind in report.kinds and report.fixed == [] and not report.halted
    events = [e for e in s.events("reconciliation.mismatch") if e.payload["kind"] == kind]
    assert events[0].payload["dry_run"] is True
    assert events[0].payload["policy"] == policy
    assert s.events("reconciliation.fixed") == [] and s.events("risk.halted") == []


@pytest.mark.parametrize(
    "kind", ["missed_fill", "unknown_position", "missing_position", "quantity_mismatch"]
)
def test_restart_mid_reconciliation_duplicates_nothing(kind):
    """The journal ends after the mismatch, before its fix: the rerun makes the same ids; and a
    fix journaled twice (the restart came after it) changes the book once."""
    s = Session()
    SCENARIOS[kind](s)
    s.reconciler(**only(kind, "adopt")).run_once()
    fixes = [e for e in s.events("reconciliation.fixed") if e.payload["kind"] == kind]
    cut = s.kernel.events.index(fixes[0])
    restarted = LocalKernel(store_factory=build_store)
    for event in s.kernel.events[:cut]:
        restarted.submit(event.topic, event.payload, key=event.key, critical=event.critical)
    again = Session(kernel=restarted, broker=s.broker)
    again.reconciler(**only(kind, "adopt")).run_once()
    refixes = [e for e in again.events("reconciliation.fixed") if e.payload["kind"] == kind]
    assert [e.payload["trade"]["trade_id"] for e in refixes] == [
        e.payload["trade"]["trade_id"] for e in fixes
    ]
    for event in refixes:  # the same fix applied once more: the book does not move
        restarted.submit(event.topic, event.payload, key=event.key, critical=True)
    assert again.book_quantity() == s.broker.positions().get(SYM, 0)


def test_a_difference_that_comes_back_is_adopted_again_and_moves_the_book():
    # The broker holds 75, then nothing, then 75 again, all without a fill: the third adoption
    # is the same difference at the same fill point as the first, and must still move the book.
    s = Session()
    reconciler = s.reconciler(**{**only("unknown_position", "adopt"), "missing_position": "adopt"})
    for signed in (75, -75, 75):
        s.broker.faults.hold_outside_position(SYM, signed, 100.0)
        report = reconciler.run_once()
        assert report.fixed == [m.item for m in report.mismatches]
        assert s.book_quantity() == s.broker.positions().get(SYM, 0)
    trade_ids = {e.payload["trade"]["trade_id"] for e in s.events("reconciliation.fixed")}
    assert len(trade_ids) == 3 and trade_ids <= set(s.store.get("trading.trades"))
    assert reconciler.run_once().ok


def test_a_fix_whose_trade_the_book_already_has_is_flagged_not_reported_fixed():
    # A fix names its trade, and the book skips a trade id it already has. Should a fix ever
    # name one (here: another symbol's trade journaled under that id), the run must not report
    # a fix that changed nothing.
    s = Session()
    unknown_position(s)
    probe = Session(kernel=LocalKernel(store_factory=build_store), broker=s.broker)
    probe.reconciler(**only("unknown_position", "adopt")).run_once()
    [fix] = probe.events("reconciliation.fixed")
    other = "NIFTY25NOV24100CE"
    taken = {**fix.payload["trade"], "symbol": other, "position_id": f"manual:{other}"}
    s.kernel.submit("trade.executed", {**taken, "strategy": "manual"}, key=other, critical=True)
    report = s.reconciler(**only("unknown_position", "adopt")).run_once()
    item = f"unknown_position:{SYM}"
    assert report.fixed == [] and item in report.flagged
    assert s.events("reconciliation.fixed") == []
    [mismatch] = [e for e in s.events("reconciliation.mismatch") if e.key == item]
    assert "already in the book" in mismatch.payload["action"]
    assert fix.payload["trade"]["trade_id"] in mismatch.payload["action"]
    assert s.store.get("reconciliation.last_run.fixed") == 0


def test_rejected_orders_during_a_reject_fault_leave_nothing_to_reconcile():
    from tradelab.errors import OrderRejectedError

    s = Session()
    s.broker.faults.reject_orders_for(60)
    with pytest.raises(OrderRejectedError, match="rejects every order"):
        s.desk.place_order(SYM, "BUY", 75)
    s.clock.advance(61 * 10**9)
    s.desk.place_order(SYM, "BUY", 75)
    assert s.reconciler().run_once().ok


def test_an_adjusting_trade_that_closes_a_position_journals_position_closed():
    # The book holds 75 the broker no longer has: adopting closes the position, and the
    # journal says so as a fill that closed it would (the trade log and the console read it).
    s = Session()
    missing_position(s)
    [position] = [p for p in s.store.get("trading.positions").values() if p["net_quantity"]]
    assert s.events("position.closed") == []
    s.reconciler(**only("missing_position", "adopt")).run_once()
    [closed] = s.events("position.closed")
    [fix] = s.events("reconciliation.fixed")
    assert closed.payload["position_id"] == position["position_id"]
    assert closed.payload["trade_id"] == fix.payload["trade"]["trade_id"]
    assert closed.seq > fix.seq and closed.critical
    # A difference that leaves the position open (150 -> 75) closes nothing.
    t = Session()
    quantity_mismatch(t)
    t.reconciler(**only("quantity_mismatch", "adopt")).run_once()
    assert t.events("position.closed") == []


def test_an_adopted_position_is_timed_on_the_sessions_clock_not_1970():
    from tradelab.trading.risk import RiskGate

    s = Session()
    unknown_position(s)
    gate = RiskGate(None, s.store, s.kernel.submit, clock=s.clock)
    Reconciler(
        s.broker,
        s.kernel.submit,
        risk=gate,
        config=ReconcilerConfig(settle_s=0.0, **only("unknown_position", "adopt")),
        sleep=s.sleeps.append,
    ).run_once()
    position = s.store.get(f"trading.positions.reconciler:{SYM}")
    assert position["net_quantity"] == 150 and position["opened_ts"] == s.clock.now_ns()


def test_the_brokers_health_follows_its_connection_at_once_not_at_the_next_run():
    s = Session()
    name = s.broker.name
    s.broker.disconnect()
    health = s.store.get(f"broker.health.{name}")
    assert health["state"] == "degraded" and "disconnected" in health["reason"]
    s.reconciler().run_once()  # fails to read the broker: still degraded, journaled once
    assert len(s.events("broker.degraded")) == 0
    s.broker.connect()
    assert s.store.get(f"broker.health.{name}")["state"] == "ok"
    s.reconciler().run_once()
    assert s.events("broker.recovered") == []


def test_a_start_after_a_session_that_ended_in_a_broker_outage_journals_the_connection():
    s = Session()
    s.broker.disconnect()
    assert s.store.get(f"broker.health.{s.broker.name}")["state"] == "degraded"
    s.broker.connect()
    s.broker._connection_listeners.clear()  # the old session is gone: nobody heard it
    s.broker._order_listeners.clear()
    restarted = s.reconciler()
    restarted.journal_connection()
    assert s.store.get(f"broker.health.{s.broker.name}")["state"] == "ok"
    restarted.journal_connection()  # nothing more to say
    assert len(s.events("broker.reconnected")) == 1


def test_a_missed_fill_of_an_order_the_book_never_saw_adopts_the_order_too():
    # An expiry's settlement (or an order from another terminal) whose report a crash lost:
    # the trade was adopted, and the orders table had no row for it.
    s = Session()
    request = OrderRequest("ext-2", SYM, Side.BUY, 75, OrderType.MARKET, None, "manual")
    s.broker.faults.place_outside_order(request)
    report = s.reconciler(missed_fill="adopt", unknown_position="adopt").run_once()
    assert "missed_fill" in report.kinds
    order = s.store.get("trading.orders.ext-2")
    assert (order["status"], order["filled_quantity"], order["strategy"]) == (
        "filled",
        75,
        "manual",
    )
    assert s.store.get("trading.working.ext-2", None) is None
    assert s.book_quantity() == 75
    assert s.reconciler(missed_fill="adopt").run_once().ok


def test_a_missed_fill_of_an_unknown_order_still_working_leaves_the_order_to_its_own_policy():
    # Adopted with its fill, another terminal's working order became the book's, and the
    # close's day-order expiry cancelled it at the broker, though its policy said flag.
    s = Session()
    s.broker.set_quote(SYM, 100.0, 100.5, size=75)
    request = OrderRequest("ext-p", SYM, Side.BUY, 150, OrderType.LIMIT, 101.0, "manual")
    s.broker.faults.place_outside_order(request)  # 75 fill at once, 75 keep working
    report = s.reconciler(missed_fill="adopt", unknown_open_order="flag").run_once()
    assert "unknown_open_order" in report.kinds and "missed_fill" in report.kinds
    assert s.store.get("trading.orders.ext-p", None) is None
    assert s.store.get("trading.working", None) in (None, {})


class CountsOrderReads:
    """A broker whose `order` reads are counted (everything else is the paper broker's)."""

    def __init__(self, broker):
        self._broker, self.order_reads = broker, 0

    def order(self, order_id):
        self.order_reads += 1
        return self._broker.order(order_id)

    def __getattr__(self, name):
        return getattr(self._broker, name)


@pytest.mark.parametrize("setting", [{"missed_fill": "flag"}, {"dry_run": True}])
def test_an_unknown_orders_state_is_read_only_when_its_missed_fill_is_adopted(setting):
    s = Session()
    s.broker.faults.place_outside_order(OrderRequest("ext-3", SYM, Side.BUY, 75))
    counting = CountsOrderReads(s.broker)
    reconciler = Reconciler(
        counting, s.kernel.submit, config=ReconcilerConfig(settle_s=0.0, **setting)
    )
    for _ in range(3):
        assert "missed_fill" in reconciler.run_once().kinds
    assert counting.order_reads == 0


def test_an_order_on_its_way_to_the_broker_is_not_a_difference_until_it_stays_unknown():
    """The desk journals `order.submitted` before it calls the broker: a run between the two
    took the order for one the broker never had and adopted it as cancelled, losing a live
    order from the book (and from the limits and the halt's cancels)."""
    s = Session()
    submitted = {"order_id": "O-1", "symbol": SYM, "side": "BUY", "quantity": 75}
    s.kernel.submit("order.submitted", {**submitted, "order_type": "MARKET"}, key="O-1")
    reconciler = s.reconciler()
    assert reconciler.run_once().kinds == []  # in flight
    assert s.store.get("trading.orders.O-1.status") == "submitted"
    report = reconciler.run_once()  # still unknown a run later: it never reached the broker
    assert report.kinds == ["order_state_mismatch"]
    assert s.store.get("trading.orders.O-1.status") == "cancelled"


def test_a_stop_cuts_the_reconcilers_backoff_short():
    """Its retries slept with time.sleep: a session stopped while the broker was down waited
    out the whole stop timeout, then left the reconciler thread running under a stopped
    engine."""
    import time

    s = Session()
    s.broker.faults.fail_reads(10_000)
    reconciler = Reconciler(
        s.broker,
        s.kernel.submit,
        config=ReconcilerConfig(retry_attempts=10, retry_base_s=5.0, retry_max_s=30.0),
    ).start()
    time.sleep(0.3)  # in its first backoff
    started = time.monotonic()
    reconciler.stop(timeout=20)
    assert time.monotonic() - started < 5  # generous: the stop is immediate
    assert reconciler._thread is None or not reconciler._thread.is_alive()


def test_an_order_finished_in_the_book_but_working_at_the_broker_is_a_difference():
    """Only the book's working orders were compared: one the book had as rejected (a refusal
    reported against it) or cancelled, still working at the broker, was never found, though it
    could fill at any time, a halt included."""
    s = Session()
    oid = s.desk.place_order(SYM, "BUY", 75, order_type="LIMIT", limit_price=90.0)
    rejected = {"order_id": oid, "symbol": SYM, "side": "BUY", "quantity": 75}
    s.kernel.submit("order.rejected", {**rejected, "reason": "order id was already used"}, key=oid)
    assert s.store.get(f"trading.working.{oid}", None) is None
    report = s.reconciler(order_state_mismatch="adopt").run_once()
    assert report.kinds == ["order_state_mismatch"]
    assert report.mismatches[0].expected["status"] == "rejected"
    assert report.mismatches[0].actual["status"] == "accepted"
    assert s.store.get(f"trading.orders.{oid}.status") == "accepted"
    assert s.store.get(f"trading.working.{oid}", None) is not None
