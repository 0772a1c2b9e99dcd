"""What a backtest reports besides its fills: the journal's content hash, the equity curve's
max drawdown, the orders refused, and where the run's time went. Pure functions of a finished
run's journal or store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tradelab.journal import JournalReader

# Topics about the run rather than the trading (lifecycle, snapshots taken on a timer, recovery
# reports): left out of the content hash with the wall-clock `ts` of every event.
HASH_EXCLUDED_PREFIXES = ("engine", "journal", "snapshot")


def content_hash(journal_path: str | Path) -> str:
    """sha256 over (topic, key, payload) of every trading event in seq order; `ts` and the
    run's own housekeeping topics (HASH_EXCLUDED_PREFIXES) are left out."""
    excluded = ", ".join(f"'{p}'" for p in HASH_EXCLUDED_PREFIXES)
    digest = hashlib.sha256()

    def add(rows: list[tuple]) -> None:
        for topic, key, payload in rows:
            digest.update(f"{topic}\x1f{key}\x1f{payload}\x1e".encode())

    JournalReader(journal_path).scan(
        "SELECT topic, key, payload FROM events "
        f"WHERE split_part(topic, '.', 1) NOT IN ({excluded}) ORDER BY seq",
        add,
    )
    return digest.hexdigest()


def max_drawdown(journal_path: str | Path) -> float:
    """The deepest drawdown of the journal's equity curve (0.0 when it never fell)."""
    from tradelab.analytics import Analytics  # DuckDB views: only once the run is over

    worst = Analytics(journal_path).sql("SELECT min(drawdown) AS worst FROM equity")["worst"][0]
    return 0.0 if worst is None or worst != worst else float(worst)  # NULL/NaN: no curve


def held_by_symbol(positions: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Units held per symbol over every strategy's position (the broker's view): positions
    are per strategy, so two strategies long the same symbol hold their sum."""
    held: dict[str, int] = {}
    for p in positions:
        if p["net_quantity"]:
            held[p["symbol"]] = held.get(p["symbol"], 0) + int(p["net_quantity"])
    return {symbol: units for symbol, units in sorted(held.items()) if units}


def refused_orders(orders: dict[str, Any]) -> list[dict[str, Any]]:
    refused = [o for o in orders.values() if o.get("status") in ("rejected", "denied")]
    refused.sort(key=lambda o: o.get("last_seq") or 0)
    keys = ("order_id", "symbol", "side", "quantity", "status", "reason")
    return [{k: o.get(k) for k in keys} for o in refused]


def time_split(sync, loop, feed, engine_in_feed, strategy, kernel, store, waits, close) -> dict:
    """Where the run's seconds went. Synchronous: one thread, so the engine's work (the
    kernel's: `kernel_store`, applying events to the store, reducers included, and
    `kernel_other`, stamping, handing to the writer, publishing on the bus; durable_waits:
    critical submits waiting for their sync) is taken out of the feed's and the strategies'
    shares that caused it; `runner` is the rest of the loop (dispatch, bookkeeping). Threaded:
    the kernel runs on its own thread beside the others, and `runner_kernel_and_handoffs` is the
    loop's time not in the feed's or the strategies' calls."""
    if sync:
        in_strategy = kernel + waits - engine_in_feed  # nearly all the rest comes from orders
        return {
            "feed": feed - engine_in_feed,
            "strategy": max(0.0, strategy - in_strategy),
            "kernel_store": store,
            "kernel_other": kernel - store,
            "durable_waits": waits,
            "runner": max(0.0, loop - feed - strategy),
            "journal_close": close,
        }
    return {
        "feed": feed,
        "strategy": strategy,
        "kernel": kernel,
        "runner_kernel_and_handoffs": loop - feed - strategy,
        "journal_close": close,
    }


def fill_row(trade: dict[str, Any]) -> dict[str, Any]:
    names = ("trade_id", "order_id", "symbol", "side", "quantity", "price", "fee", "ts")
    return {name: trade.get(name) for name in names} | {"realized_pnl": trade["realized_pnl"]}
