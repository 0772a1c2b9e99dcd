"""Nothing outside the store can change it: values it hands out and payloads it took in.

Each test mutates what a reader got (or what a bus subscriber got) and then checks the state hash
is unchanged and a snapshot equals a full replay of the journaled bytes, as `tradelab verify` does.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tradelab.bus import EventBus
from tradelab.events import Event, TopicRegistry
from tradelab.state import StateStore
from tradelab.state.reactive import ReactiveState
from tradelab.trading.reducers import reducers as book_reducers


def store_payload(view, event):
    """Stores the payload itself, as a reducer may (e.g. a position record)."""
    return [(f"records.{event.key}", event.payload)]


class Journaled:
    """A store, a bus and the journal bytes of every applied event (the kernel's data path)."""

    def __init__(self) -> None:
        self.registry = TopicRegistry()
        self.store = self._new_store()
        self.bus = EventBus(registry=self.registry, name="isolation")
        self.journal: list[tuple[str, str, str, int]] = []

    @staticmethod
    def _new_store() -> StateStore:
        store = StateStore()
        store.register_reducers(book_reducers())
        store.register_reducer("position.updated", store_payload)
        return store

    def submit(self, topic: str, payload: dict[str, Any], key: str = "") -> Event:
        encoded = json.dumps(payload)
        event = self.registry.make_event(
            topic, json.loads(encoded), key=key, seq=self.store.version + 1
        )
        self.store.apply(event)
        self.journal.append((topic, key, encoded, event.ts))
        self.bus.publish_events([event])  # the same Event object, after the store applied it
        return event

    def replayed(self) -> StateStore:
        store = self._new_store()
        for seq, (topic, key, encoded, ts) in enumerate(self.journal, start=1):
            payload = json.loads(encoded)
            store.apply(self.registry.make_event(topic, payload, key=key, seq=seq, ts=ts))
        return store

    def assert_state_is_the_fold_of_the_journal(self, hash_before: str) -> None:
        assert self.store.state_hash() == hash_before
        replay = self.replayed()
        assert self.store.snapshot().state == replay.snapshot().state
        assert replay.state_hash() == hash_before


def fill_payload(n: int) -> dict[str, Any]:
    return {
        "fill_seq": n,
        "trade_id": f"T{n}",
        "order_id": f"O{n}",
        "broker_order_id": f"B{n}",
        "symbol": "NIFTY24NOV24000CE",
        "side": "BUY",
        "quantity": 75,
        "price": 100.0 + n,
        "fee": 20.0,
        "ts": n,
        "strategy": "s1",
        "position_id": "s1:NIFTY24NOV24000CE",
        "lot_size": 75,
        "tags": ["entry", {"leg": 1}],
        "context": {"signal": {"name": "breakout", "levels": [1, 2]}},
    }


@pytest.fixture
def lab() -> Journaled:
    lab = Journaled()
    lab.submit(
        "position.updated",
        {"symbol": "NIFTY", "legs": [{"qty": 75, "prices": [1.0, 2.0]}], "meta": {"a": {"b": 1}}},
        key="P1",
    )
    lab.submit("trade.executed", fill_payload(1), key="T1")
    lab.submit("mark.updated", {"symbol": "NIFTY24NOV24000CE", "price": 104.0})
    yield lab
    lab.bus.close()


def vandalise(value: Any) -> None:
    """Change every mutable container reachable from `value`, in place."""
    if isinstance(value, dict):
        for child in list(value.values()):
            vandalise(child)
        value["vandalised"] = True
        value.pop("symbol", None)
    elif isinstance(value, list):
        for child in value:
            vandalise(child)
        value.append("vandalised")


def test_mutating_values_from_get_leaves_the_store_and_its_hash_unchanged(lab):
    before = lab.store.state_hash()
    for path in ("trading", "records.P1", "records.P1.legs", "pnl"):
        vandalise(lab.store.get(path))
    lab.assert_state_is_the_fold_of_the_journal(before)


def test_mutating_values_from_get_many_leaves_the_store_and_its_hash_unchanged(lab):
    before = lab.store.state_hash()
    _version, values = lab.store.get_many(["trading.positions", "trading.trades.T1", "pnl.daily"])
    for value in values.values():
        vandalise(value)
    lab.assert_state_is_the_fold_of_the_journal(before)


def test_mutating_values_from_a_frozen_view_or_a_derived_read_leaves_the_store_unchanged(lab):
    before = lab.store.state_hash()
    _version, view = lab.store.frozen()
    vandalise(view.get("trading.positions"))
    vandalise(lab.store.derived(lambda v: v.get("trading.trades"))())
    lab.assert_state_is_the_fold_of_the_journal(before)


def test_the_store_hands_out_no_shared_node_under_a_public_name(lab):
    # `read_frozen` was public: its shared frozen nodes, mutated in a notebook, changed the state
    # with no event. Only the package's own readers (the reactive face) may take them.
    public = {name for name in dir(lab.store) if not name.startswith("_")}
    assert not {name for name in public if "frozen" in name} - {"frozen"}


def test_mutating_reactive_values_leaves_the_store_unchanged_and_later_refreshes_still_arrive(lab):
    reactive = ReactiveState(lab.store)
    vandalise(reactive.value("records.P1"))
    vandalise(reactive.value("trading.positions"))
    before = lab.store.state_hash()
    lab.assert_state_is_the_fold_of_the_journal(before)

    lab.submit("mark.updated", {"symbol": "NIFTY24NOV24000CE", "price": 110.0})
    assert reactive.refresh_now() == 1  # P1 did not change; the positions map did
    vandalise(reactive.value("trading.positions"))
    lab.assert_state_is_the_fold_of_the_journal(lab.replayed().state_hash())
    assert ReactiveState(lab.store).value("records.P1")["symbol"] == "NIFTY"
    assert "vandalised" not in lab.store.get("trading.positions")


def test_mutating_values_a_watcher_receives_leaves_the_store_unchanged(lab):
    seen: list[str] = []

    def watcher(path: str, new: Any, old: Any, seq: int) -> None:
        seen.append(path)
        vandalise(new)
        vandalise(old)

    lab.store.watch("trading.positions.*", watcher)
    lab.submit("mark.updated", {"symbol": "NIFTY24NOV24000CE", "price": 111.0})
    assert seen == ["trading.positions.s1:NIFTY24NOV24000CE"]
    lab.assert_state_is_the_fold_of_the_journal(lab.replayed().state_hash())


def test_subscriber_mutating_nested_payload_contents_cannot_change_the_store(lab):
    def mutate_payload(event: Event) -> None:
        vandalise(event.payload)

    lab.bus.subscribe("*", mutate_payload)
    before = lab.store.state_hash()
    lab.submit(
        "position.updated",
        {"symbol": "BANKNIFTY", "legs": [{"qty": 30, "prices": [5.0]}], "meta": {"a": {"b": 2}}},
        key="P2",
    )
    lab.submit("trade.executed", fill_payload(2), key="T2")
    assert lab.store.state_hash() != before  # the events did apply...
    stored = lab.store.get("records.P2")
    assert stored == {
        "symbol": "BANKNIFTY",
        "legs": [{"qty": 30, "prices": [5.0]}],
        "meta": {"a": {"b": 2}},
    }
    assert lab.store.get("trading.trades.T2.tags") == ["entry", {"leg": 1}]
    assert lab.store.get("trading.trades.T2.context") == {
        "signal": {"name": "breakout", "levels": [1, 2]}
    }
    # ...and what the subscriber did to them afterwards reached nothing in the store.
    lab.assert_state_is_the_fold_of_the_journal(lab.replayed().state_hash())


def test_reducer_input_mutated_after_apply_cannot_change_the_store():
    lab = Journaled()
    payload = {"symbol": "NIFTY", "legs": [{"qty": 75}]}
    event = lab.registry.make_event("position.updated", payload, key="P1", seq=1)
    lab.store.apply(event)
    lab.journal.append(("position.updated", "P1", json.dumps(payload), event.ts))
    before = lab.store.state_hash()
    vandalise(event.payload)
    vandalise(payload)
    lab.assert_state_is_the_fold_of_the_journal(before)
    lab.bus.close()


def test_a_bounded_history_keeps_its_members_isolated_while_it_rolls():
    # market.bars keeps the last N bars: each bar stores a new tuple of the old members plus
    # one. Members read back, frozen or taken from the payload still cannot change the store.
    from tradelab.market.reducers import BARS_KEPT, bar_reducer

    class WithBars(Journaled):
        @staticmethod
        def _new_store() -> StateStore:
            store = Journaled._new_store()
            store.register_reducer("market.bar", bar_reducer)
            return store

    lab = WithBars()
    seen_payloads, frozen = [], None
    for i in range(BARS_KEPT + 5):
        bar = {"symbol": "NIFTY", "interval": "1m", "start": i, "end": i + 1, "open": 1.0}
        bar |= {"high": 2.0, "low": 0.5, "close": float(i), "volume": i, "ticks": 1}
        event = lab.submit("market.bar", bar, key="NIFTY")
        seen_payloads.append(event.payload)
        if i == 10:
            _, frozen = lab.store.frozen()
    bars = lab.store.get("market.bars.NIFTY.1m")
    assert len(bars) == BARS_KEPT and [b["start"] for b in bars] == list(range(5, BARS_KEPT + 5))
    before = lab.store.state_hash()
    for thing in [*bars, *seen_payloads, *frozen.get("market.bars.NIFTY.1m")]:
        vandalise(thing)
    assert [b["start"] for b in frozen.get("market.bars.NIFTY.1m")] == list(range(11))
    lab.assert_state_is_the_fold_of_the_journal(before)
    lab.bus.close()


def test_a_history_rebuilt_from_copies_is_stored_as_returned_and_shares_nothing_with_them():
    # A reducer may rebuild a sequence from copies of the current members (equal, not the same
    # objects) or change one of them: the store keeps exactly the value returned, and nothing
    # the reducer still holds can reach into it.
    held = []

    def rebuild(view, event):
        current = view.get("h") or ()
        members = [dict(m) for m in current]  # equal copies, not the tree's own
        if event.payload.get("edit") and members:
            members[0]["n"] = -1
        value = (*members, {"n": event.seq})
        held.append(value)
        return [("h", value)]

    store = StateStore()
    store.register_reducer("t.h", rebuild)
    for seq in (1, 2, 3):
        store.apply(Event(seq, seq, "t.h", "", {}))
    assert store.get("h") == ({"n": 1}, {"n": 2}, {"n": 3})
    store.apply(Event(4, 4, "t.h", "", {"edit": True}))
    assert store.get("h") == ({"n": -1}, {"n": 2}, {"n": 3}, {"n": 4})
    for value in held:
        for member in value:
            member["n"] = 99
    assert store.get("h") == ({"n": -1}, {"n": 2}, {"n": 3}, {"n": 4})


def test_a_bar_carrying_the_mark_is_stored_as_built_and_nothing_outside_reaches_it():
    # The bar, mark, position and P&L reducers hand the store values they built (fresh_values:
    # no copy-in); what a subscriber, a watcher or a reader does to what it got still changes
    # nothing, and the state stays the fold of the journal.
    from tradelab.market.reducers import reducers as market_reducers

    class WithMarket(Journaled):
        @staticmethod
        def _new_store() -> StateStore:
            store = Journaled._new_store()
            store.register_reducers(market_reducers())
            return store

    lab = WithMarket()
    lab.bus.subscribe("*", lambda event: vandalise(event.payload))
    lab.store.watch("trading.positions.*", lambda path, new, old, seq: vandalise(new))
    lab.store.watch("market.marks.*", lambda path, new, old, seq: vandalise(new))
    symbol = "NIFTY24NOV24000CE"
    lab.submit("trade.executed", fill_payload(1), key="T1")
    for i in range(3):
        bar = {"symbol": symbol, "interval": "1m", "start": i, "end": i + 1, "open": 100.0}
        bar |= {"high": 110.0, "low": 90.0, "close": 104.0 + i, "volume": 5, "ticks": 0}
        lab.submit("market.bar", bar | {"mark": True}, key=symbol)
        for path in ("market", "trading.positions", "pnl"):
            vandalise(lab.store.get(path))
    assert lab.store.get(f"market.marks.{symbol}") == {
        "price": 106.0,
        "bid": 106.0,
        "ask": 106.0,
        "last": 106.0,
        "ts": 2,
    }
    assert lab.store.get(f"trading.positions.s1:{symbol}.unrealized_pnl") == 75 * (106.0 - 101.0)
    assert [b["close"] for b in lab.store.get(f"market.bars.{symbol}.1m")] == [104.0, 105.0, 106.0]
    lab.assert_state_is_the_fold_of_the_journal(lab.replayed().state_hash())
    lab.bus.close()
