"""The book's reducers cost O(positions touched): the open index, P&L totals by delta, and the
paths a mark writes; the delta totals agree with a from-scratch recount."""

from __future__ import annotations

import pytest
from contracts.local_kernel import LocalKernel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_book import PUT, SYM, fill, mark

from tradelab.events import Event
from tradelab.state import StateSnapshot, StateStore
from tradelab.trading.book import totals
from tradelab.trading.reducers import mark_reducer, reducers

CALL_2 = "NIFTY25NOV24500CE"


def mark_event(kernel: LocalKernel, symbol: str, price: float) -> Event:
    return kernel.registry.make_event(
        "mark.updated", {"symbol": symbol, "price": price}, seq=len(kernel.events) + 1
    )


def test_mark_writes_only_the_positions_open_in_its_symbol_and_the_totals_it_moves():
    k = LocalKernel()
    n = 0
    for i in range(30):  # a long history of round trips in another symbol, all flat now
        n += 1
        fill(k, n, "BUY", 75, 100.0 + i, strategy="old", symbol=CALL_2)
        n += 1
        fill(k, n, "SELL", 75, 101.0 + i, strategy="old", symbol=CALL_2)
    fill(k, n + 1, "BUY", 75, 100.0, strategy="trend")
    fill(k, n + 2, "BUY", 75, 50.0, strategy="hedge", symbol=PUT)
    _version, view = k.store.frozen()

    paths = [path for path, _value in mark_reducer(view, mark_event(k, SYM, 104.0))]

    assert paths == [
        f"trading.positions.trend:{SYM}",
        "pnl.unrealized",
        "pnl.net",
        "pnl.by_strategy.trend",
        "pnl.daily",
    ]


def test_mark_at_the_price_already_marked_writes_nothing():
    k = LocalKernel()
    fill(k, 1, "BUY", 75, 100.0)
    mark(k, SYM, 104.0)
    _version, view = k.store.frozen()
    assert list(mark_reducer(view, mark_event(k, SYM, 104.0))) == []


def test_open_index_lists_positions_while_open_and_drops_them_when_flat():
    k = LocalKernel()
    fill(k, 1, "BUY", 75, 100.0, strategy="trend")
    fill(k, 2, "SELL", 75, 90.0, strategy="hedge")
    fill(k, 3, "BUY", 75, 50.0, strategy="hedge", symbol=PUT)
    assert k.store.get(f"trading.open_positions.{SYM}") == (f"hedge:{SYM}", f"trend:{SYM}")
    assert k.store.get("trading.open_by_strategy.hedge") == (f"hedge:{SYM}", f"hedge:{PUT}")

    fill(k, 4, "SELL", 75, 101.0, strategy="trend")  # trend goes flat
    assert k.store.get(f"trading.open_positions.{SYM}") == (f"hedge:{SYM}",)
    assert k.store.get("trading.open_by_strategy") == {"hedge": (f"hedge:{SYM}", f"hedge:{PUT}")}
    assert k.store.get("pnl.by_strategy.trend")["unrealized"] == 0.0


STRATEGIES = ("trend", "hedge", "scalp")
SYMBOLS = (SYM, PUT, CALL_2)
STEP = st.one_of(
    st.tuples(
        st.just("fill"),
        st.sampled_from(STRATEGIES),
        st.sampled_from(SYMBOLS),
        st.sampled_from(("BUY", "SELL")),
        st.integers(1, 4),
        st.integers(1800, 2200),
        st.sampled_from((0.0, 20.0, 23.6)),
    ),
    st.tuples(st.just("mark"), st.sampled_from(SYMBOLS), st.integers(1800, 2200)),
    st.tuples(
        st.just("reset"),
    ),
)


def run_steps(steps) -> LocalKernel:
    k = LocalKernel()
    for n, step in enumerate(steps, 1):
        if step[0] == "fill":
            _, strategy, symbol, side, lots, ticks, fee = step
            fill(k, n, side, 75 * lots, ticks * 0.05, fee=fee, strategy=strategy, symbol=symbol)
        elif step[0] == "mark":
            mark(k, step[1], step[2] * 0.05)
        else:
            k.submit("pnl.session_reset", {"session_date": f"d{n}"})
    return k


def test_book_unrealized_is_exactly_zero_once_every_position_is_flat():
    # Prices on a 0.05 tick are not binary fractions: adding and removing these positions'
    # unrealized deltas leaves a residue of ~3e-14 in the totals unless flat means zero.
    steps = [
        ("fill", "s0", SYM, "BUY", 1, 1943, 20.0),
        ("fill", "s1", PUT, "BUY", 1, 1984, 20.0),
        ("mark", SYM, 1906),
        ("mark", PUT, 1944),
        ("fill", "s0", SYM, "SELL", 1, 1988, 20.0),
        ("fill", "s1", PUT, "SELL", 1, 1999, 20.0),
    ]
    k = run_steps(steps)
    assert k.store.get("trading.open_by_strategy") == {}
    assert k.store.get("pnl.unrealized") == 0.0
    assert k.store.get("pnl.by_strategy.s0")["unrealized"] == 0.0
    assert k.store.get("pnl.by_strategy.s1")["unrealized"] == 0.0


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, max_size=60))
def test_totals_kept_by_delta_agree_with_a_from_scratch_recount(steps):
    k = run_steps(steps)
    positions = k.store.get("trading.positions") or {}
    recount = totals(positions)
    close = pytest.approx
    for name in ("realized", "unrealized", "fees", "net"):
        assert k.store.get(f"pnl.{name}", 0.0) == close(recount[name], abs=1e-6)
    stored = k.store.get("pnl.by_strategy") or {}
    assert set(stored) == set(recount["by_strategy"])
    for strategy, expected in recount["by_strategy"].items():
        assert stored[strategy] == close(expected, abs=1e-6)
    open_ids = sorted(pid for pid, pos in positions.items() if pos["net_quantity"])
    indexed = sorted(
        pid for ids in (k.store.get("trading.open_positions") or {}).values() for pid in ids
    )
    assert indexed == open_ids


def test_book_state_written_before_the_open_index_existed_is_indexed_on_the_next_mark():
    k = LocalKernel()
    fill(k, 1, "BUY", 75, 100.0, strategy="trend")
    fill(k, 2, "BUY", 150, 50.0, strategy="hedge", symbol=PUT)
    old = k.store.snapshot()
    state = {
        **old.state,
        "trading": {
            name: value
            for name, value in old.state["trading"].items()
            if name not in ("open_positions", "open_by_strategy")
        },
    }
    legacy = StateStore.from_snapshot(StateSnapshot(seq=old.seq, schema_version=1, state=state))
    legacy.register_reducers(reducers())

    legacy.apply(mark_event(k, PUT, 54.0))

    assert legacy.get(f"trading.open_positions.{PUT}") == (f"hedge:{PUT}",)
    assert legacy.get("trading.open_by_strategy.trend") == (f"trend:{SYM}",)
    assert legacy.get(f"trading.positions.hedge:{PUT}")["unrealized_pnl"] == pytest.approx(600.0)
    assert legacy.get("pnl.unrealized") == pytest.approx(600.0)


def test_a_marks_pnl_changes_equal_the_general_ones_bit_for_bit():
    # unrealized_pnl_changes is pnl_changes without the fill branches: for unrealized-only
    # moves it must write the same paths with the same floats, new book or not.
    import random

    from tradelab.trading.pnl import PnlDelta, pnl_changes, unrealized_pnl_changes

    rng = random.Random(7)
    pnl = None
    for step in range(300):
        moves = [
            (
                rng.choice(("a", "b", "c")),
                rng.choice((-1, 1)) * rng.random() * 10 ** rng.randint(-3, 4),
            )
            for _ in range(rng.randint(1, 4))
        ]
        general = pnl_changes(pnl, [PnlDelta(s, 0.0, u, 0.0) for s, u in moves])
        assert unrealized_pnl_changes(pnl, moves) == general, step
        if step % 50 == 0:  # a fill now and then moves realized P&L and fees too
            general = pnl_changes(pnl, [PnlDelta("a", rng.random(), 0.0, rng.random())])
        pnl = _applied(pnl, general)


def _applied(pnl, changes):
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (pnl or {}).items()}
    out.setdefault("by_strategy", {})
    for path, value in changes:
        parts = path.split(".")
        if parts[1] == "by_strategy":
            out["by_strategy"][parts[2]] = dict(value)
        else:
            out[parts[1]] = value
    return out
