"""Reconciliation finds each kind of difference the paper broker's faults make; adopt fixes it."""

from __future__ import annotations

from datetime import datetime

import pytest
from contracts.local_kernel import LocalKernel

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.broker.reconcile import (
    KINDS,
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
PUT = "NIFTY25NOV24000PE"
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


def test_a_fill_report_lost_during_the_settle_wait_is_adopted_by_the_next_run():
    # The second read kept only the differences the first had seen, yet the run's fill point
    # moved to the second read's last fill: the fill lost during the wait was never compared
    # again, and the book missed its position for good.
    s = Session()
    s.broker.set_quote(PUT, 100.0, 100.5, size=10_000)
    s.broker.faults.hold_outside_position(SYM, 75, 100.0)  # a difference: the run waits

    def lose_a_fill_meanwhile(seconds):
        s.sleeps.append(seconds)
        if len(s.sleeps) == 1:
            s.broker.faults.drop_fill_reports(1)
            s.desk.place_order(PUT, "BUY", 75)  # fills at once; its report is lost

    reconciler = Reconciler(
        s.broker,
        s.kernel.submit,
        config=ReconcilerConfig(settle_s=0.5),
        sleep=lose_a_fill_meanwhile,
    )
    first = reconciler.run_once()
    assert first.kinds == ["unknown_position"] and first.fill_point == 0
    second = reconciler.run_once()
    assert "missed_fill" in second.kinds
    held = s.store.get("trading.positions", None) or {}
    assert [p["net_quantity"] for p in held.values() if p["symbol"] == PUT] == [75]
