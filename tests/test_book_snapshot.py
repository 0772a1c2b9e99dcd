"""A multi-position, multi-strategy book restored from a snapshot taken anywhere, plus the rest
of the events, equals the live book bit for bit (state hash), in memory and through a journal."""

from __future__ import annotations

import random

from contracts.local_kernel import LocalKernel, book_store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_book_incremental import STEP, run_steps

from tradelab.engine import Engine, build_store
from tradelab.journal import Journal, recover, replay_into
from tradelab.market.reducers import reducers as market_reducers
from tradelab.state import StateSnapshot, StateStore
from tradelab.trading.reducers import reducers as trading_reducers

SEED = 4  # under dict-order summing, 37 of its 45 cuts restored a different book

CE, PE, CE_2 = "NIFTY25NOV24000CE", "NIFTY25NOV24000PE", "NIFTY25NOV24500CE"


def book_steps(seed: int) -> list[tuple]:
    """Four positions across three strategies, marked again and again at 0.05-tick prices (not
    binary fractions), then partly closed: any total summed in dict order would differ in its
    last bits once a snapshot changed that order."""
    rng = random.Random(seed)
    steps: list[tuple] = [
        ("fill", "trend", CE, "BUY", 2, rng.randint(1900, 2100), 23.6),
        ("fill", "hedge", PE, "BUY", 1, rng.randint(1900, 2100), 20.0),
        ("fill", "scalp", CE_2, "SELL", 3, rng.randint(1900, 2100), 23.6),
        ("fill", "hedge", CE, "SELL", 1, rng.randint(1900, 2100), 20.0),
    ]
    steps += [
        ("mark", symbol, rng.randint(1850, 2150)) for _ in range(12) for symbol in (CE, PE, CE_2)
    ]
    steps += [
        ("fill", "trend", CE, "SELL", 1, rng.randint(1900, 2100), 23.6),
        ("reset",),
        ("fill", "scalp", CE_2, "BUY", 3, rng.randint(1900, 2100), 23.6),
        ("mark", PE, rng.randint(1850, 2150)),
        ("fill", "hedge", PE, "SELL", 1, rng.randint(1900, 2100), 20.0),
    ]
    return steps


BOOK_STEPS = book_steps(SEED)


def restored_after(kernel: LocalKernel, cut: int) -> StateStore:
    """Replay events[:cut], snapshot through bytes, restore, then apply the rest."""
    first = book_store()
    for event in kernel.events[:cut]:
        first.apply(event)
    store = StateStore.from_snapshot(StateSnapshot.from_bytes(first.snapshot().to_bytes()))
    store.register_reducers(market_reducers())
    store.register_reducers(trading_reducers())
    for event in kernel.events[cut:]:
        store.apply(event)
    return store


def test_book_restored_from_a_snapshot_at_every_cut_equals_the_live_book_bit_for_bit():
    live = run_steps(BOOK_STEPS)
    assert len(live.store.get("trading.open_by_strategy")) >= 2  # several open positions
    for cut in range(len(live.events) + 1):
        restored = restored_after(live, cut)
        assert restored.state_hash() == live.store.state_hash(), f"differs after cut {cut}"
        assert restored.get("pnl") == live.store.get("pnl")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=1, max_size=50), st.data())
def test_any_book_restored_from_a_mid_way_snapshot_equals_the_live_one(steps, data):
    live = run_steps(steps)
    cut = data.draw(st.integers(0, len(live.events)), label="cut")
    assert restored_after(live, cut).state_hash() == live.store.state_hash()


def test_engine_recovery_of_a_multi_position_book_equals_a_full_replay(tmp_path):
    path = tmp_path / "book.duckdb"
    with Engine(
        journal_path=str(path),
        snapshot_every_events=37,
        snapshot_every_seconds=0,
        segments_enabled=False,
    ) as engine:
        for n, step in enumerate(BOOK_STEPS * 3, 1):
            if step[0] == "fill":
                _, strategy, symbol, side, lots, ticks, fee = step
                engine.submit(
                    "trade.executed",
                    {
                        "trade_id": f"T{n}",
                        "position_id": f"{strategy}:{symbol}",
                        "strategy": strategy,
                        "symbol": symbol,
                        "lot_size": 75,
                        "side": side,
                        "quantity": 75 * lots,
                        "price": ticks * 0.05,
                        "fee": fee,
                    },
                )
            elif step[0] == "mark":
                engine.submit("mark.updated", {"symbol": step[1], "price": step[2] * 0.05})
        live_pnl = engine.store.get("pnl")
        live_positions = engine.store.get("trading.positions")
    full = build_store()
    journal = Journal(path)
    try:
        replay_into(full, journal.con)
        at_stop = recover(journal, build_store())
        # Drop the snapshots near the end: recovery starts from a mid-way one and replays a tail.
        journal.con.execute("DELETE FROM snapshots WHERE last_seq > ?", [journal.last_seq - 40])
        mid_way = recover(journal, build_store())
    finally:
        journal.close()
    assert at_stop.events_replayed < 10 < mid_way.events_replayed
    assert at_stop.state_hash == mid_way.state_hash == full.state_hash()
    assert full.get("pnl") == live_pnl
    assert full.get("trading.positions") == live_positions
