"""Reducers of market state: recent closed bars, coalesced marks and the session status.

Pure functions of (StateView, Event). State written:
  market.bars.<symbol>.<interval>   the last `BARS_KEPT` closed bars, oldest first
  market.marks.<symbol>             latest mark {price, bid, ask, last, ts}
  market.session                    {status: open|closed, session_date, ts[, source]}
A bar whose payload has `"mark": true` is also the symbol's mark at its close (a backtest's
bars: one event a bar instead of a `mark.updated` and a `market.bar`); live bars do not carry
it, their marks come from the feed's quotes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from math import isfinite
from typing import Any

from tradelab.errors import InvalidInputError
from tradelab.events import Event
from tradelab.state.paths import path_level
from tradelab.state.views import fresh_values

Change = tuple[str, Any]
BARS_KEPT = 200
_BAR_FIELDS = ("start", "end", "open", "high", "low", "close", "volume", "ticks")
_NUMBERS = frozenset((int, float))


@lru_cache(maxsize=4_096)
def _cached_bar_paths(symbol: str, interval: str) -> tuple[str, str]:
    return (
        f"market.bars.{path_level(symbol, 'symbol')}.{path_level(interval, 'bar interval')}",
        f"market.marks.{symbol}",
    )


def _bar_paths(symbol: Any, interval: Any) -> tuple[str, str]:
    """(bars path, marks path) of a bar, both levels checked: built once per pair, not per bar."""
    if type(symbol) is not str or type(interval) is not str:  # unhashable or not a level
        path_level(symbol, "symbol")
        path_level(interval, "bar interval")
    return _cached_bar_paths(symbol, interval)


@fresh_values
def bar_reducer(view: Any, event: Event) -> Iterable[Change]:
    """The bar into `market.bars.<symbol>.<interval>` and, when it carries the mark, the
    symbol's mark at its close into `market.marks.<symbol>` (one reducer: a bar is read once)."""
    p = event.payload
    symbol = p["symbol"]
    path, mark_path = _bar_paths(symbol, p["interval"])
    bar = {
        "start": p["start"],
        "end": p["end"],
        "open": p["open"],
        "high": p["high"],
        "low": p["low"],
        "close": p["close"],
        "volume": p["volume"],
        "ticks": p["ticks"],
    }
    values = bar.values()
    # The bar is stored as built (fresh_values), so its fields are checked here: C-speed type
    # screen, then one sum that is finite only if every field is.
    if not _NUMBERS.issuperset(map(type, values)) or not isfinite(sum(values)):
        raise InvalidInputError(
            f"market.bar (seq {event.seq}) for {symbol}: {', '.join(_BAR_FIELDS)} must be "
            f"finite numbers, got {bar}"
        )
    previous = view.get(path) or ()
    # Snapshots may hand back lists; build a fresh tuple either way and keep it bounded. The
    # members kept are the stored history's own: no path reaches into a sequence, so nothing
    # changes them in place.
    if type(previous) is not tuple:
        previous = tuple(previous)
    changes = [(path, previous[-(BARS_KEPT - 1) :] + (bar,))]
    close = bar_mark_price(p)
    if close is not None:  # as _mark_change(bar_mark(p)) stores it, without the payload dict
        changes.append(
            (
                mark_path,
                {"price": close, "bid": close, "ask": close, "last": close, "ts": p["start"]},
            )
        )
    return changes


def bar_mark_price(payload: dict[str, Any]) -> float | int | None:
    """The close of a bar that carries `"mark": true` (its symbol's mark), else None; a mark
    needs a finite close and an int start (InvalidInputError)."""
    if payload.get("mark") is not True:
        return None
    close, start = payload["close"], payload["start"]
    if type(close) not in _NUMBERS or close - close != 0.0 or type(start) is not int:
        raise InvalidInputError(
            f"a bar carrying the mark needs a finite close and an int start, got close "
            f"{close!r}, start {start!r}"
        )
    return close


def bar_mark(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The `mark.updated` payload a bar stands for when it carries `"mark": true`, else None."""
    close = bar_mark_price(payload)
    if close is None:
        return None
    return {
        "symbol": payload["symbol"],
        "price": close,
        "bid": close,
        "ask": close,
        "last": close,
        "ts": payload["start"],
    }


def mark_reducer(view: Any, event: Event) -> Iterable[Change]:
    return [_mark_change(event.payload, event.ts)]


def _mark_change(p: dict[str, Any], ts: int) -> Change:
    mark = {
        "price": p["price"],
        "bid": p.get("bid"),
        "ask": p.get("ask"),
        "last": p.get("last"),
        "ts": p.get("ts", ts),
    }
    return (f"market.marks.{path_level(p['symbol'], 'symbol')}", mark)


def session_reducer(view: Any, event: Event) -> Iterable[Change]:
    status = "open" if event.topic == "market.session_opened" else "closed"
    session = {
        "status": status,
        "session_date": event.payload.get("session_date"),
        "ts": event.payload.get("ts", event.ts),
    }
    if "source" in event.payload:  # which market it opened on (older journals do not say)
        session["source"] = event.payload["source"]
    return [("market.session", session)]


def reducers() -> dict[str, list[Callable[[Any, Event], Iterable[Change]]]]:
    return {
        "market.bar": [bar_reducer],
        "mark.updated": [mark_reducer],
        "market.session_opened": [session_reducer],
        "market.session_closed": [session_reducer],
    }
