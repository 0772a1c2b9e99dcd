"""The execution desk: one source of truth (the store), reused order ids, margin with working
orders, and order records that end the same whichever order the broker's reports arrive in."""

from datetime import datetime

import pytest

from tests.contracts.local_kernel import LocalKernel
from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.engine import Engine
from tradelab.errors import DuplicateOrderIdError, InvalidInputError, OrderRejectedError
from tradelab.events import TopicRegistry
from tradelab.market.clock import SimulatedClock
from tradelab.market.instruments import IST
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.orders import OrderRequest, OrderType, Side

SYM = "NIFTY25NOV24000CE"
OPEN_NS = int(datetime(2025, 11, 12, 10, tzinfo=IST).timestamp()) * 10**9


def paper(**config) -> PaperBroker:
    broker = PaperBroker(
        PaperBrokerConfig(**{"brokerage_per_fill": 20.0, **config}), clock=SimulatedClock(OPEN_NS)
    )
    broker.set_quote(SYM, 100.0, 101.0, size=10_000)
    return broker


def test_desk_without_a_store_is_refused_naming_what_to_pass():
    with pytest.raises(InvalidInputError, match="store="):
        ExecutionDesk(paper(), lambda *a, **k: None)


def test_reused_order_id_is_refused_and_the_filled_order_stays_filled():
    kernel = LocalKernel()
    broker = paper()
    desk = ExecutionDesk(broker, kernel.submit)
    desk.place_order(SYM, "BUY", 75, order_id="dup-1")
    before = kernel.store.get("trading.orders.dup-1")
    events = len(kernel.events)
    with pytest.raises(DuplicateOrderIdError, match="'dup-1' is already used"):
        desk.place_order(SYM, "SELL", 150, order_id="dup-1")
    assert before["status"] == "filled"
    assert kernel.store.get("trading.orders.dup-1") == before
    assert len(kernel.events) == events  # nothing journaled for the refused call
    assert broker.positions() == {SYM: 75}  # and nothing sent


def test_an_id_the_book_trimmed_but_the_broker_knows_is_refused_with_nothing_journaled():
    # The book trims old sessions' orders: the desk journaled the reused id's submission, the
    # broker refused it, and a working order the broker never had stayed in the book (until a
    # reconciler copied the old order's fill onto it).
    kernel = LocalKernel()
    broker = paper()
    desk = ExecutionDesk(broker, kernel.submit)
    desk.place_order(SYM, "BUY", 75, order_id="MY-ORDER-1")
    kernel.submit("trading.history_trimmed", {"keep_sessions": 1}, key="trading")  # a new day
    assert kernel.store.get("trading.orders.MY-ORDER-1", None) is None  # trimmed
    events = len(kernel.events)
    with pytest.raises(DuplicateOrderIdError, match="'MY-ORDER-1' is already used"):
        desk.place_order(SYM, "BUY", 75, order_id="MY-ORDER-1")
    assert len(kernel.events) == events and not kernel.store.get("trading.working", None)


def test_the_desks_own_ids_follow_the_journal_so_a_replay_places_the_same_ones(monkeypatch):
    # They were random (O-<uuid>): a replay whose loss limit flattened journaled other ids, so
    # other content, each run.
    def run() -> list[str]:
        kernel = LocalKernel()
        desk = ExecutionDesk(paper(), kernel.submit)
        return [desk.place_order(SYM, "BUY", 75), desk.place_exit(SYM, "SELL", 75, "manual")]

    first = run()
    assert first == run() and first[0] != first[1]
    assert all(order_id.startswith("O-") for order_id in first)
    # Ids made while the store stays at one seq (reserved, not yet journaled) differ, and one
    # the broker holds (a crash took its submission from the journal) is passed over.
    kernel = LocalKernel()
    broker = paper()
    desk = ExecutionDesk(broker, kernel.submit)
    seq = kernel.store.version
    held = f"O-{seq}-2"
    real = broker.order
    monkeypatch.setattr(
        broker, "order", lambda oid: {"order_id": oid} if oid == held else real(oid)
    )
    assert [desk._claim_new_id(), desk._claim_new_id()] == [f"O-{seq}-1", f"O-{seq}-3"]


def test_reused_order_id_after_a_restart_is_refused_not_merged_into_the_old_order(tmp_path):
    journal = str(tmp_path / "j.duckdb")
    engine = Engine(journal_path=journal).start()
    try:
        ExecutionDesk(paper(), engine.submit).place_order(SYM, "BUY", 75, order_id="keep-1")
        before = engine.store.get("trading.orders.keep-1")
    finally:
        engine.stop()
    # A new process: a new broker that never saw keep-1, the store recovered from the journal.
    engine = Engine(journal_path=journal).start()
    try:
        broker = paper()
        desk = ExecutionDesk(broker, engine.submit)
        with pytest.raises(DuplicateOrderIdError):
            desk.place_order(SYM, "BUY", 150, order_id="keep-1")
        engine.flush()
        assert engine.store.get("trading.orders.keep-1") == before
        assert broker.positions() == {}
    finally:
        engine.stop()


def test_closing_fill_after_a_restart_journals_position_closed_from_the_recovered_store(
    tmp_path,
):
    # The desk keeps no book of its own: a position opened before the restart is closed after
    # it, and the desk learns that it went flat from the store, not from a seeded copy.
    journal = str(tmp_path / "j.duckdb")
    engine = Engine(journal_path=journal).start()
    try:
        ExecutionDesk(paper(), engine.submit).place_order(SYM, "BUY", 75, strategy="s1")
    finally:
        engine.stop()
    engine = Engine(journal_path=journal).start()
    try:
        broker = paper()
        broker.set_quote(SYM, 110.0, 111.0)
        ExecutionDesk(broker, engine.submit).place_order(SYM, "SELL", 75, strategy="s1")
        position = engine.store.get(f"trading.positions.s1:{SYM}")
        assert position["net_quantity"] == 0 and position["status"] == "closed"
        assert position["realized_pnl"] == pytest.approx(75 * (110.0 - 101.0))
    finally:
        engine.stop()


def test_several_working_orders_cannot_overdraw_the_cash():
    # 20,000 of cash; each working buy of 150 @ 100 needs 15,000. The second must be refused
    # at once: both filling would leave the cash at -10,000.
    broker = paper(capital=20_000.0, brokerage_per_fill=0.0)
    kernel = LocalKernel()
    desk = ExecutionDesk(broker, kernel.submit)
    desk.place_order(SYM, "BUY", 150, order_type="LIMIT", limit_price=100.0)
    with pytest.raises(OrderRejectedError, match="insufficient margin"):
        desk.place_order(SYM, "BUY", 150, order_type="LIMIT", limit_price=100.0)
    broker.set_quote(SYM, 98.0, 99.0)
    assert broker.cash >= 0.0
    assert broker.positions() == {SYM: 150}


def test_working_short_sells_reserve_margin_too():
    broker = paper(capital=300_000.0, short_margin_rate=0.1)  # 75 short = 180,000 blocked
    broker.submit_order(OrderRequest("s1", SYM, Side.SELL, 75, OrderType.LIMIT, 150.0))
    with pytest.raises(OrderRejectedError, match="insufficient margin"):
        broker.submit_order(OrderRequest("s2", SYM, Side.SELL, 75, OrderType.LIMIT, 150.0))


def order_events(*topics_and_payloads):
    registry = TopicRegistry()
    return [
        registry.make_event(topic, payload, key="o1", seq=i + 1)
        for i, (topic, payload) in enumerate(topics_and_payloads)
    ]


REQUEST = {
    "order_id": "o1",
    "symbol": SYM,
    "side": "BUY",
    "quantity": 150,
    "order_type": "LIMIT",
    "limit_price": 99.0,
    "strategy": "s",
}
ACCEPTED = {**REQUEST, "broker_order_id": "B1", "filled_quantity": 0, "remaining_quantity": 150}
PARTIAL = {**ACCEPTED, "filled_quantity": 75, "remaining_quantity": 75, "average_price": 99.0}
FILLED = {**ACCEPTED, "filled_quantity": 150, "remaining_quantity": 0, "average_price": 99.0}
for body in (ACCEPTED, PARTIAL, FILLED):
    del body["order_type"], body["limit_price"]


@pytest.mark.parametrize(
    "sequence",
    [
        ["order.submitted", "order.accepted", "order.partially_filled", "order.filled"],
        ["order.filled", "order.partially_filled", "order.accepted", "order.submitted"],
        ["order.accepted", "order.filled", "order.submitted", "order.partially_filled"],
    ],
)
def test_order_record_ends_the_same_whichever_order_the_reports_are_folded_in(sequence):
    bodies = {
        "order.submitted": REQUEST,
        "order.accepted": ACCEPTED,
        "order.partially_filled": PARTIAL,
        "order.filled": FILLED,
    }
    kernel = LocalKernel()
    for event in order_events(*[(topic, bodies[topic]) for topic in sequence]):
        kernel.store.apply(event)
    record = kernel.store.get("trading.orders.o1")
    assert record["status"] == "filled" and record["filled_quantity"] == 150
    assert (record["order_type"], record["limit_price"]) == ("LIMIT", 99.0)
    assert kernel.store.get("trading.working.o1", None) is None


def test_a_finished_order_is_not_changed_by_a_later_rejection():
    kernel = LocalKernel()
    for event in order_events(
        ("order.submitted", REQUEST),
        ("order.filled", FILLED),
        ("order.rejected", {**REQUEST, "reason": "order id 'o1' was already used"}),
    ):
        kernel.store.apply(event)
    assert kernel.store.get("trading.orders.o1")["status"] == "filled"
    assert kernel.store.get("trading.orders.o1")["reason"] == ""


def test_working_index_holds_unfinished_orders_only():
    kernel = LocalKernel()
    for event in order_events(("order.submitted", REQUEST), ("order.partially_filled", PARTIAL)):
        kernel.store.apply(event)
    assert kernel.store.get("trading.working.o1")["remaining_quantity"] == 75
    kernel.store.apply(order_events(("order.cancelled", {**PARTIAL, "reason": "x"}))[0].with_seq(3))
    assert kernel.store.get("trading.working.o1", None) is None


def test_the_order_errors_import_from_tradelab_errors_and_from_where_they_lived_before():
    # Moved to tradelab.errors, where the README sends a user; code that imported them from
    # the risk module before must still run.
    from tradelab import errors
    from tradelab.trading import risk

    assert risk.OrderDeniedError is errors.OrderDeniedError
    assert risk.DuplicateOrderIdError is errors.DuplicateOrderIdError
    assert issubclass(errors.OrderDeniedError, errors.OrderRejectedError)
