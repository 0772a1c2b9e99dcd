"""`Lab.status()`: the session at a glance (the `tradelab run` progress line and summary, the
notebooks' status cell), read from the store and the Lab's parts at call time."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from tradelab.errors import LifecycleError
from tradelab.market.instruments import IST
from tradelab.trading.risk_state import control_state


def session_status(lab: Any) -> dict[str, Any]:
    """Seq, exchange time, the charted instrument's mark (`index`, of `symbol`: NIFTY, or a
    replayed stock), the book, risk and broker state of `lab`'s session."""
    store = lab.engine.store
    index = (store.get(f"market.marks.{lab.chart_symbol}", None) or {}).get("price")
    positions = store.get("trading.positions", None) or {}
    daily = store.get("pnl.daily", None) or {}
    control = store.get("risk.control", None) or {}
    health = store.get(f"broker.health.{lab.broker.name}", None) or {}
    now = lab.clock.now_ns()
    span = max(1, lab.close_ns - lab.open_ns)
    return {
        "state": lab.engine.state,
        "seq": store.version,
        "exchange_time": datetime.fromtimestamp(now / 1e9, tz=IST),
        "session_fraction": 1.0
        if lab.session_finished.is_set()
        else min(1.0, max(0.0, (now - lab.open_ns) / span)),
        "index": index,
        "symbol": lab.chart_symbol,
        "ticks": lab.router.ticks_routed,
        "feed_late_s": feed_late_s(lab),
        # Between two days of a replay, or after the close: no tick is due.
        "market_closed": (store.get("market.session", None) or {}).get("status") == "closed",
        "bars": lab.router.bars_submitted,
        "orders": len(store.get("trading.orders", None) or {}),
        "fills": len(store.get("trading.trades", None) or {}),
        "open_positions": sum(1 for p in positions.values() if p.get("net_quantity")),
        # To the paisa: a sum of marks times units carries float noise (-1547.500000000002).
        "daily_pnl": None if daily.get("net") is None else round(daily["net"], 2),
        "failed_strategies": lab.runner.failures() if lab.runner is not None else {},
        # A strategy hook running for long holds every strategy and exit (hook_watch.py).
        "stalled_hook": lab.runner.hook_watch.stalled() if lab.runner is not None else None,
        "risk": control_state(store),
        "risk_reason": control.get("reason") or "",
        # The breach's flatten failed every try (a broker refusing): what is open stays open.
        "flatten_given_up": bool(lab.risk_monitor and lab.risk_monitor.flatten_given_up),
        # The broker's reachability (the reconciler's retries journal it): "ok" or
        # "degraded", with why.
        "broker": health.get("state", "ok"),
        "broker_reason": health.get("reason") or "",
    }


def feed_late_s(lab: Any) -> float | None:
    """Seconds a paced feed is behind its own schedule: its next tick was due that long ago
    and has not come (a dead market-data line); <= 0 while it waits for a tick not due yet
    (a slow replay, a night). None at max speed or before the feed plays."""
    paced = getattr(lab, "paced_days", None)
    return paced.pacer.late_s() if paced is not None and paced.pacer is not None else None


def wait_for_mark(lab: Any, symbol: str, timeout: float) -> dict[str, Any]:
    """Block until `lab`'s store holds a mark of `symbol` from this run (a recovered journal
    holds earlier sessions' marks, which the broker has no quote for); returns it.
    LifecycleError naming why (the session ended, or `timeout` s passed) if none comes."""
    deadline = time.monotonic() + timeout
    path = f"market.marks.{symbol}"
    after = lab.resumed_after_ns if lab.resumed_after_ns is not None else -1

    def fresh() -> dict[str, Any] | None:
        mark = lab.engine.store.get(path, None)
        return mark if mark is not None and (mark.get("ts") or 0) > after else None

    while (mark := fresh()) is None:
        if lab.session_finished.is_set() or time.monotonic() > deadline:
            why = "the session ended" if lab.session_finished.is_set() else "timed out"
            raise LifecycleError(
                f"no quote of {symbol!r} within {timeout} s ({why}): is it a symbol this "
                "session's feed quotes?"
            )
        time.sleep(0.01)
    return mark
