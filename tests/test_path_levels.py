"""Ids that become state path levels are checked where they enter, and again in the reducers.

A symbol, order id, trade id or strategy name with a '.' would create a nested path; one with a
lone surrogate could not be encoded. Each entry point refuses it before anything is submitted or
sent, and a reducer meeting one in an event refuses the event (StateError, store unchanged).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import pytest
from contracts.local_kernel import LocalKernel

from tradelab.broker import PaperBroker, PaperBrokerConfig
from tradelab.errors import InvalidInputError, OrderRejectedError, StateError
from tradelab.events import Event
from tradelab.market.clock import SimulatedClock
from tradelab.market.instruments import IST
from tradelab.market.reducers import reducers as market_reducers
from tradelab.market.router import MarketDataRouter
from tradelab.market.ticks import Tick
from tradelab.state import StateStore, check_path_level
from tradelab.trading.execution import ExecutionDesk
from tradelab.trading.orders import OrderRequest, Side

SYM = "NIFTY25NOV24000CE"
BAD_IDS = ["NIFTY.X", "NIFTY\ud800", "", "two words", "x" * 129, "NIFTY*", 42, None]


def encodable(payload: dict) -> bool:
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.parametrize("value", ["NIFTY25NOV24000CE", "s1:NIFTY", "O-1a2b", "PB1-F000001"])
def test_check_path_level_accepts_plain_ids(value):
    assert check_path_level(value, "id") == value


@pytest.mark.parametrize("value", BAD_IDS)
def test_check_path_level_refuses_a_bad_id_naming_it_and_the_allowed_characters(value):
    with pytest.raises(InvalidInputError) as info:
        check_path_level(value, "symbol")
    assert f"symbol {value!r}" in str(info.value)
    assert "ASCII letters, digits, '_', '-' or ':'" in str(info.value)


@pytest.fixture
def desk():
    clock = SimulatedClock(int(datetime(2025, 11, 12, 10, tzinfo=IST).timestamp()) * 10**9)
    broker = PaperBroker(PaperBrokerConfig(brokerage_per_fill=20.0), clock=clock)
    broker.set_quote(SYM, 100.0, 101.0, size=150)
    kernel = LocalKernel()
    return ExecutionDesk(broker, kernel.submit), broker, kernel


@pytest.mark.parametrize("symbol", ["NIFTY.X", "NIFTY25NOV24000CE.X", "NIFTY\ud800", "", 7])
def test_place_order_refuses_a_bad_symbol_before_anything_is_submitted_or_sent(desk, symbol):
    desk, broker, kernel = desk
    with pytest.raises(InvalidInputError, match="symbol"):
        desk.place_order(symbol, "BUY", 75)
    assert kernel.events == [] and broker.open_orders() == [] and broker.positions() == {}
    assert kernel.store.get("trading") is None


@pytest.mark.parametrize("order_id", ["a.b", "O\ud800", "O 1"])
def test_place_order_refuses_a_bad_client_order_id_before_anything_is_submitted(desk, order_id):
    desk, broker, kernel = desk
    with pytest.raises(InvalidInputError, match="order id"):
        desk.place_order(SYM, "BUY", 75, order_id=order_id)
    assert kernel.events == [] and broker.open_orders() == []


def test_order_rejected_for_other_reasons_carries_only_encodable_text(desk):
    desk, broker, kernel = desk
    with pytest.raises(OrderRejectedError):
        desk.place_order(SYM, "BUY\ud800", 75, strategy="s\ud800")
    with pytest.raises(OrderRejectedError):
        desk.place_order(SYM, "BUY", 75, strategy="trend.fast")
    assert kernel.topics() == ["order.rejected", "order.rejected"]
    for event in kernel.events:
        assert encodable(event.payload)
        assert event.payload["strategy"] == "manual"
    assert broker.open_orders() == []


def test_a_numpy_text_symbol_is_taken_as_the_plain_text_it_reads_as(desk):
    # It was refused as "not a valid id" while it showed a valid one (np.str_('NIFTY...')).
    import numpy as np

    desk, broker, kernel = desk
    desk.place_order(np.str_(SYM), "BUY", 75, strategy=np.str_("s1"), order_id=np.str_("O-np"))
    assert kernel.topics()[0] == "order.submitted"
    submitted = kernel.events[0]
    assert type(submitted.payload["symbol"]) is str and submitted.payload["symbol"] == SYM
    assert type(submitted.key) is str and submitted.key == "O-np"
    assert type(submitted.payload["strategy"]) is str and submitted.payload["strategy"] == "s1"


@pytest.mark.parametrize("quantity", [10**30, 2**63 * 75, -(10**30)])
def test_a_quantity_past_64_bits_is_rejected_naming_it_and_the_rejection_is_journaled(
    desk, quantity
):
    # The rejection itself could not be encoded: no order.rejected, and an error about it.
    desk, broker, kernel = desk
    with pytest.raises(OrderRejectedError, match=f"quantity {quantity}"):
        desk.place_order(SYM, "BUY", quantity, strategy="s1")
    assert kernel.topics() == ["order.rejected"]
    [event] = kernel.events
    assert encodable(event.payload) and event.payload["quantity"] is None
    assert broker.open_orders() == []


def test_a_broker_update_with_a_bad_trade_id_is_refused_before_anything_is_queued(desk):
    desk, broker, kernel = desk
    update = broker.submit_order(OrderRequest("O1", SYM, Side.BUY, 75))
    before = list(kernel.events)
    assert update.fill is not None
    bad = replace(update, fill=replace(update.fill, trade_id="F.1"))
    with pytest.raises(InvalidInputError, match="trade id 'F.1'"):
        desk.on_order_update(bad)
    assert kernel.events == before


@pytest.mark.parametrize(
    ("field", "value", "label"),
    [
        ("order_id", "O.1", "order id"),
        ("symbol", "NIFTY.X", "symbol"),
        ("strategy", "s\ud800", "strategy name"),
    ],
)
def test_an_order_request_with_a_bad_id_never_reaches_a_broker(field, value, label):
    ids = {"order_id": "O1", "symbol": SYM, "strategy": "manual", field: value}
    with pytest.raises(InvalidInputError, match=label):
        OrderRequest(ids["order_id"], ids["symbol"], Side.BUY, 75, strategy=ids["strategy"])


def test_router_refuses_a_tick_with_a_bad_symbol_before_submitting_anything():
    submitted: list = []
    router = MarketDataRouter(lambda *a, **k: submitted.append((a, k)))
    with pytest.raises(InvalidInputError, match="tick symbol 'NIFTY.X'"):
        router.on_tick(Tick("NIFTY.X", 1, 100.0, 101.0, 100.5))
    assert submitted == [] and router.ticks_routed == 0


def test_lab_place_order_refuses_a_bad_symbol(tmp_path):
    from tradelab.lab import Lab

    lab = Lab(journal_path=str(tmp_path / "lab.duckdb"), ticks_per_second=1_000, speed=1.0)
    with lab:
        with pytest.raises(InvalidInputError, match="symbol 'NIFTY.X'"):
            lab.place_order("NIFTY.X", "BUY", 75)
        lab.engine.flush()
        assert lab.store.get("trading.orders") is None


# -- reducers: the last line of defence ---------------------------------------------------------


def book_store() -> StateStore:
    return LocalKernel().store


def event(topic: str, payload: dict) -> Event:
    return Event(1, 1, topic, "", payload)


@pytest.mark.parametrize(
    ("topic", "payload", "what"),
    [
        ("order.rejected", {"order_id": "O.1", "symbol": SYM}, "order id"),
        ("order.rejected", {"order_id": "O\ud800", "symbol": SYM}, "order id"),
        ("position.closed", {"position_id": "s1:NIFTY.X"}, "position id"),
        (
            "trade.executed",
            {
                "trade_id": "T.1",
                "position_id": f"s1:{SYM}",
                "strategy": "s1",
                "symbol": SYM,
                "lot_size": 75,
                "quantity": 75,
                "side": "BUY",
                "price": 100.0,
                "fee": 0.0,
            },
            "trade id",
        ),
        (
            "trade.executed",
            {
                "trade_id": "T1",
                "position_id": "s1:NIFTY",
                "strategy": "s1",
                "symbol": "NIFTY.X",
                "lot_size": 75,
                "quantity": 75,
                "side": "BUY",
                "price": 100.0,
                "fee": 0.0,
            },
            "symbol",
        ),
    ],
)
def test_book_reducers_refuse_a_bad_path_level_in_an_event(topic, payload, what):
    store = book_store()
    with pytest.raises(StateError, match=what):
        store.apply(event(topic, payload))
    assert store.version == 0 and store.snapshot().state == {}


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("mark.updated", {"symbol": "NIFTY.X", "price": 1.0}),
        (
            "market.bar",
            {"symbol": SYM, "interval": "1.5m"}
            | dict.fromkeys(("start", "end", "open", "high", "low", "close", "volume", "ticks"), 1),
        ),
    ],
)
def test_market_reducers_refuse_a_bad_path_level_in_an_event(topic, payload):
    store = StateStore()
    store.register_reducers(market_reducers())
    with pytest.raises(StateError, match="cannot name a state path level"):
        store.apply(event(topic, payload))
    assert store.version == 0 and store.snapshot().state == {}
