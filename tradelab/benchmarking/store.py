"""StateStore apply throughput, alone and with the reactive param layer attached, beside floors.

Scenario: a book of 20 option positions on 20 symbols; each `mark.updated` writes the symbol's
mark and the position's unrealized P&L (two paths, the reducer reads the position through the
view). Figures: store.apply with no UI; with ReactiveState refreshing 20 bound paths at 20 Hz on
its own thread; the naive alternative (a store watcher setting a param per event); a plain dict
write and a watched param set as floors. Events are built before each timed run; rounds are
interleaved and medians reported. Read ratios from one run, not absolutes across runs.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import param

from tradelab.benchmarking import format_table, machine_info, median
from tradelab.benchmarking.options import bench_options, command, rate_hz_option
from tradelab.events import Event
from tradelab.state import StateStore
from tradelab.state.reactive import ReactiveState

POSITIONS = 20
TARGET_APPLY_PER_S = 300_000
MAX_REACTIVE_DROP = 0.10


def _symbols() -> list[str]:
    return [f"NIFTY24NOV{24000 + 50 * i}CE" for i in range(POSITIONS)]


def mark_reducer(view: Any, event: Event) -> list[tuple[str, Any]]:
    """Inline stand-in for a book reducer: re-mark one symbol and its position's unrealized P&L."""
    payload = event.payload
    symbol, price = payload["symbol"], payload["price"]
    position = view.get("trading.positions." + symbol)
    changes = [("market.marks." + symbol, price)]
    if position is not None:
        changes.append(
            (
                "trading.positions." + symbol + ".unrealized_pnl",
                (price - position["average_price"]) * position["quantity"],
            )
        )
    return changes


def _open_positions(store: StateStore) -> None:
    store.register_reducer(
        "position.updated", lambda view, e: [("trading.positions." + e.key, e.payload)]
    )
    for i, symbol in enumerate(_symbols()):
        store.apply(
            Event(
                store.version + 1,
                0,
                "position.updated",
                symbol,
                {
                    "symbol": symbol,
                    "quantity": 75 * (1 + i % 3),
                    "average_price": 100.0 + i,
                    "unrealized_pnl": 0.0,
                },
            )
        )


def _new_store() -> StateStore:
    store = StateStore()
    store.register_reducer("mark.updated", mark_reducer)
    _open_positions(store)
    return store


def _marks(store: StateStore, n: int) -> list[Event]:
    symbols = _symbols()
    start = store.version + 1
    payloads = [
        {"symbol": symbols[i % POSITIONS], "price": 100.0 + (i % 97) * 0.05} for i in range(997)
    ]
    return [
        Event(start + i, 1_700_000_000_000_000_000 + i, "mark.updated", "", payloads[i % 997])
        for i in range(n)
    ]


class Contender:
    """A prepared thing to time: `prepare(n)` (untimed) then `run()` (timed)."""

    def __init__(
        self,
        name: str,
        prepare: Callable[[int], Callable[[], None]],
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.prepare = prepare
        self.close = close
        self.samples: list[float] = []


# A typical drained batch at a few thousand events/s; the kernel takes up to 1000.
KERNEL_BATCH = 32


def _store_contender(
    name: str,
    setup: Callable[[StateStore], None] = lambda s: None,
    batch: int = 0,
    each: bool = False,
) -> tuple[Contender, StateStore]:
    store = _new_store()
    setup(store)

    def prepare(n: int) -> Callable[[], None]:
        events = _marks(store, n)
        if batch:
            chunks = [events[i : i + batch] for i in range(0, n, batch)]
            apply_chunk = store.apply_each if each else store.apply_batch
            return lambda: [apply_chunk(chunk) for chunk in chunks] and None
        apply = store.apply

        def run() -> None:
            for event in events:
                apply(event)

        return run

    return Contender(name, prepare), store


def _book_contender() -> Contender | None:
    """The engine's real book reducers (tradelab.trading), which re-total P&L on every mark."""
    try:
        from tradelab.trading.reducers import reducers as book_reducers
    except ImportError:
        return None
    store = StateStore()
    store.register_reducers(book_reducers())
    for i, symbol in enumerate(_symbols()):
        store.apply(
            Event(
                store.version + 1,
                0,
                "trade.executed",
                "",
                {
                    "position_id": f"bench:{symbol}",
                    "strategy": "bench",
                    "symbol": symbol,
                    "lot_size": 75,
                    "quantity": 75 * (1 + i % 3),
                    "side": "BUY",
                    "price": 100.0 + i,
                    "fee": 20.0,
                    "trade_id": f"T{i}",
                },
            )
        )

    def prepare(n: int) -> Callable[[], None]:
        events = _marks(store, n)
        apply = store.apply

        def run() -> None:
            for event in events:
                apply(event)

        return run

    return Contender("store.apply, tradelab.trading book reducers", prepare)


class _Tile(param.Parameterized):
    value = param.Number(0.0)


def build_contenders(rate_hz: float) -> tuple[list[Contender], list[ReactiveState]]:
    contenders: list[Contender] = []
    plain, _ = _store_contender("store.apply (no UI)")
    contenders.append(plain)
    # The same store with the reactive layer bound to every mark and position at `rate_hz`.
    reactives: list[ReactiveState] = []

    def attach(store: StateStore) -> None:
        reactive = ReactiveState(store, rate_hz=rate_hz)
        for symbol in _symbols():
            reactive.bind("market.marks." + symbol)
            reactive.bind("trading.positions." + symbol)
        reactive.bind("market.marks").param.watch(lambda e: None, "value")
        reactives.append(reactive.start())

    with_ui, _ = _store_contender(f"store.apply + ReactiveState {rate_hz:g} Hz", attach)
    contenders.append(with_ui)
    batched, _ = _store_contender("store.apply_batch(100 events)", batch=100)
    contenders.append(batched)
    # What the engine's kernel calls: each drained batch in one call, every event atomic alone.
    kernel, _ = _store_contender(
        f"store.apply_each({KERNEL_BATCH} events): kernel path", batch=KERNEL_BATCH, each=True
    )
    contenders.append(kernel)

    book = _book_contender()
    if book is not None:
        contenders.append(book)

    def naive(store: StateStore) -> None:
        tile = _Tile()
        tile.param.watch(lambda e: None, "value")
        store.watch("market.marks.*", lambda path, new, old, seq: setattr(tile, "value", new))

    naive_case, _ = _store_contender("naive: watcher sets a param per event", naive)
    contenders.append(naive_case)

    def dict_write(n: int) -> Callable[[], None]:
        marks: dict[str, float] = {}
        keys = _symbols()

        def run() -> None:
            for i in range(n):
                marks[keys[i % POSITIONS]] = 100.0 + i

        return run

    contenders.append(Contender("floor: plain dict write", dict_write))

    def param_set(n: int) -> Callable[[], None]:
        tile = _Tile()
        tile.param.watch(lambda e: None, "value")

        def run() -> None:
            for i in range(n):
                tile.value = 100.0 + i

        return run

    contenders.append(Contender("floor: watched param set", param_set))
    return contenders, reactives


def run_store_benchmark(
    n: int = 100_000,
    rounds: int = 5,
    rate_hz: float = 20.0,
) -> dict[str, Any]:
    contenders, reactives = build_contenders(rate_hz)
    try:
        for contender in contenders:  # warm-up, untimed
            contender.prepare(min(n, 5_000))()
        for _ in range(rounds):
            for contender in contenders:
                run = contender.prepare(n)
                gc.collect()
                started = time.perf_counter()
                run()
                contender.samples.append(time.perf_counter() - started)
        refreshes = [r.refreshes for r in reactives]
        updates = [r.updates for r in reactives]
    finally:
        for reactive in reactives:
            reactive.stop()
    results = []
    for contender in contenders:
        rates = [n / s for s in contender.samples]
        results.append(
            {
                "contender": contender.name,
                "ops_per_s_median": median(rates),
                "us_per_op_median": 1e6 / median(rates),
                "rounds_ops_per_s": rates,
            }
        )
    return {
        "benchmark": "store",
        "n": n,
        "rounds": rounds,
        "rate_hz": rate_hz,
        "positions": POSITIONS,
        "machine": machine_info(),
        "results": results,
        "reactive": {"refreshes": refreshes, "param_updates": updates},
        "summary": _summary(contenders, n),
    }


def _summary(contenders: list[Contender], n: int) -> dict[str, Any]:
    by_name = {c.name: c for c in contenders}
    plain = next(c for c in contenders if c.name.startswith("store.apply (no UI)"))
    ui = next(c for c in contenders if "ReactiveState" in c.name)
    naive = next(c for c in contenders if c.name.startswith("naive"))
    # Per-round ratios against the baseline of the same round cancel the machine's drift.
    ui_ratio = statistics.median(p / u for p, u in zip(plain.samples, ui.samples, strict=True))
    naive_ratio = statistics.median(
        p / x for p, x in zip(plain.samples, naive.samples, strict=True)
    )
    apply_rate = median([n / s for s in plain.samples])
    kernel = next(c for c in contenders if c.name.startswith("store.apply_each"))
    kernel_rate = median([n / s for s in kernel.samples])
    return {
        "apply_per_s_no_ui": apply_rate,
        "target_apply_per_s": TARGET_APPLY_PER_S,
        "meets_apply_target": apply_rate >= TARGET_APPLY_PER_S,
        "kernel_apply_each_per_s": kernel_rate,
        "meets_apply_target_on_kernel_path": kernel_rate >= TARGET_APPLY_PER_S,
        "reactive_rate_drop": 1 - ui_ratio,
        "max_reactive_drop": MAX_REACTIVE_DROP,
        "meets_reactive_target": 1 - ui_ratio <= MAX_REACTIVE_DROP,
        "naive_rate_drop": 1 - naive_ratio,
        "dict_write_ns": 1e9 / median([n / s for s in by_name["floor: plain dict write"].samples]),
        "param_set_us": 1e6 / median([n / s for s in by_name["floor: watched param set"].samples]),
    }


def emit(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    rows = [
        (r["contender"], r["ops_per_s_median"], r["us_per_op_median"]) for r in result["results"]
    ]
    print(
        f"StateStore: {result['n']:,} mark.updated events x {result['rounds']} interleaved "
        f"rounds, {result['positions']} positions ({result['machine']['date']}, "
        f"Python {result['machine']['python']}, {result['machine']['cpus']} CPUs)"
    )
    print(format_table(["contender", "events/s (median)", "µs/event"], rows))
    s = result["summary"]
    print(
        f"\napply/s no UI: {s['apply_per_s_no_ui']:,.0f} (target {s['target_apply_per_s']:,}: "
        f"{'met' if s['meets_apply_target'] else 'NOT met'})"
    )
    print(
        f"apply/s on the kernel's path (apply_each): {s['kernel_apply_each_per_s']:,.0f} "
        f"(target {s['target_apply_per_s']:,}: "
        f"{'met' if s['meets_apply_target_on_kernel_path'] else 'NOT met'})"
    )
    print(
        f"reactive layer at {result['rate_hz']:g} Hz costs {s['reactive_rate_drop']:.1%} of the "
        f"apply rate (limit {s['max_reactive_drop']:.0%}: "
        f"{'met' if s['meets_reactive_target'] else 'NOT met'}); param updates "
        f"{result['reactive']['param_updates']} in {result['reactive']['refreshes']} refreshes"
    )
    print(
        f"naive param-per-event costs {s['naive_rate_drop']:.1%}; floors: dict write "
        f"{s['dict_write_ns']:.0f} ns, watched param set {s['param_set_us']:.1f} µs"
    )


@command(__doc__)
@bench_options(100_000, "mark.updated events per round and contender.")
@rate_hz_option
def main(as_json: bool, rounds: int, n: int, rate_hz: float) -> None:
    emit(run_store_benchmark(n, rounds, rate_hz), as_json)
