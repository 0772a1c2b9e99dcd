"""Cost of a mark through the real book reducers, as the book grows open and closed positions.

Each scenario builds a StateStore with the default market + trading reducers, trades `open`
positions that stay open and `closed` ones that went flat (one strategy per 5 positions), then
times `store.apply` of `mark.updated` events cycling over the open symbols. A mark re-values the
positions open in its symbol; its cost should not grow with the closed or other open positions.
Figures: median us/mark over interleaved rounds, and store paths written per mark.

Usage: .venv/bin/python benchmarks/book.py [--marks 20000] [--rounds 5] [--json]
"""

from __future__ import annotations

import json
import statistics
import time

from tradelab.benchmarking.options import bench_options, command
from tradelab.events import Event
from tradelab.market.reducers import reducers as market_reducers
from tradelab.state import StateStore
from tradelab.trading.reducers import reducers as trading_reducers

SCENARIOS = ((5, 0), (5, 500), (50, 0), (50, 500))


def _trade(store: StateStore, n: int, strategy: str, symbol: str, side: str, price: float):
    store.apply(
        Event(
            store.version + 1,
            n,
            "trade.executed",
            "",
            {
                "trade_id": f"T{n}",
                "position_id": f"{strategy}:{symbol}",
                "strategy": strategy,
                "symbol": symbol,
                "lot_size": 75,
                "quantity": 75,
                "side": side,
                "price": price,
                "fee": 23.6,
            },
        )
    )


def build_book(open_positions: int, closed_positions: int) -> tuple[StateStore, list[str]]:
    store = StateStore()
    store.register_reducers(market_reducers())
    store.register_reducers(trading_reducers())
    n = 0
    for i in range(closed_positions):
        for side, price in (("BUY", 100.0), ("SELL", 101.05)):
            n += 1
            _trade(store, n, f"old{i % 7}", f"OLD{i}CE", side, price)
    symbols = [f"NIFTY24DEC{24000 + 50 * i}CE" for i in range(open_positions)]
    for i, symbol in enumerate(symbols):
        n += 1
        _trade(store, n, f"s{i // 5}", symbol, "BUY", 100.0 + i * 0.05)
    return store, symbols


def mark_events(store: StateStore, symbols: list[str], count: int) -> list[Event]:
    start = store.version + 1
    return [
        Event(
            start + i,
            i,
            "mark.updated",
            "",
            {"symbol": symbols[i % len(symbols)], "price": 100.0 + (i % 97) * 0.05},
        )
        for i in range(count)
    ]


def writes_per_mark(store: StateStore, event: Event) -> int:
    """Paths the reducers write for `event` (a mark that moves a held position's price)."""
    _version, view = store.frozen()
    return sum(len(list(reducer(view, event))) for reducer in store.reducers_for(event.topic))


@command(__doc__)
@bench_options(20_000, "mark.updated events per book and round.", n_name="--marks")
def main(as_json: bool, rounds: int, marks: int) -> dict:
    timings: dict[str, list[float]] = {}
    writes: dict[str, int] = {}
    for _ in range(rounds):
        for open_positions, closed_positions in SCENARIOS:
            name = f"{open_positions} open, {closed_positions} closed"
            store, symbols = build_book(open_positions, closed_positions)
            events = mark_events(store, symbols, marks)
            # A mark past the first few of each symbol (fewer --marks: the last one).
            writes[name] = writes_per_mark(
                store, events[min(len(symbols) * 3 + 2, len(events) - 1)]
            )
            apply = store.apply
            t0 = time.perf_counter()
            for event in events:
                apply(event)
            timings.setdefault(name, []).append((time.perf_counter() - t0) / marks * 1e6)
    result = {
        name: {"us_per_mark": statistics.median(values), "paths_per_mark": writes[name]}
        for name, values in timings.items()
    }
    if as_json:
        print(json.dumps(result))
    else:
        print(f"{'book':24s} {'us/mark':>9s} {'paths/mark':>11s}")
        for name, row in result.items():
            print(f"{name:24s} {row['us_per_mark']:9.2f} {row['paths_per_mark']:11d}")
    return result


if __name__ == "__main__":
    main()
