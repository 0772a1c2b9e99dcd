"""Routes feed ticks into the engine: raw ticks stay transient, closed bars and coalesced marks
are submitted as journaled events (`market.bar`, `mark.updated` at most once per interval of
exchange time per instrument), and quote sinks (e.g. a PaperBroker) see every tick.

One thread (the feed's) calls `on_tick`; `submit`/`publish_transient` must be thread-safe
(Engine.submit / Engine.publish_transient are).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, time
from typing import Any

from tradelab.market.bars import BarAggregator
from tradelab.market.clock import NS_PER_S, ist_date
from tradelab.market.ticks import Tick
from tradelab.state.paths import check_path_level, is_path_level
from tradelab.trading.book import without_float_noise

Submit = Callable[..., Any]
PublishTransient = Callable[..., Any]


class MarketDataRouter:
    """Feed -> (transient ticks, journaled bars, coalesced marks, quote sinks)."""

    def __init__(
        self,
        submit: Submit,
        publish_transient: PublishTransient | None = None,
        *,
        intervals: tuple[str, ...] = ("15m", "1h"),
        mark_interval_ms: int = 1000,
        quote_sinks: Iterable[Callable[[Tick], Any]] = (),
        sessions: Callable[[date], tuple[time, time] | None] | None = None,
    ) -> None:
        self._submit = submit
        self._publish_transient = publish_transient
        self.bars = BarAggregator(intervals, sessions=sessions)  # see BarAggregator
        self._mark_interval_ns = int(mark_interval_ms) * 1_000_000
        self._quote_sinks = list(quote_sinks)
        self._last_mark_ns: dict[str, int] = {}
        self._pending_marks: dict[str, Tick] = {}
        self._next_sweep_ns = 0
        self.ticks_routed = 0
        self.bars_submitted = 0
        self.bars_skipped = 0
        self._journaled_bar_starts: dict[tuple[str, str], int] = {}
        self.marks_submitted = 0

    def open_session(self, ts_ns: int, source: str = "") -> None:
        """Open the day's session; `source` says which market it is on (Lab.market_source)."""
        payload = {"session_date": ist_date(ts_ns).isoformat(), "ts": ts_ns}
        self._submit("market.session_opened", {**payload, "source": source} if source else payload)

    def close_session(self, ts_ns: int) -> None:
        """Close the partial bars, publish the marks held back, then mark the session closed."""
        for bar in self.bars.flush():
            self._submit_bar(bar)
        for tick in list(self._pending_marks.values()):
            self._submit_mark(tick)
        self._submit(
            "market.session_closed", {"session_date": ist_date(ts_ns).isoformat(), "ts": ts_ns}
        )

    def on_tick(self, tick: Tick) -> None:
        if not is_path_level(tick.symbol):  # a set lookup once a symbol was seen good
            check_path_level(tick.symbol, "tick symbol")  # raises, naming it
        self.ticks_routed += 1
        if self._publish_transient is not None:
            self._publish_transient("market.tick", tick.to_payload(), key=tick.symbol)
        for sink in self._quote_sinks:
            sink(tick)
        for bar in self.bars.on_tick(tick):
            self._submit_bar(bar)
        last = self._last_mark_ns.get(tick.symbol)
        if last is None or tick.ts - last >= self._mark_interval_ns:
            self._submit_mark(tick)
        else:
            self._pending_marks[tick.symbol] = tick
        if tick.ts >= self._next_sweep_ns:
            self._sweep_marks(tick.ts)

    def _sweep_marks(self, now_ns: int) -> None:
        # Quiet instruments still get their latest price out once their interval has passed.
        due = [
            t
            for s, t in self._pending_marks.items()
            if now_ns - self._last_mark_ns.get(s, 0) >= self._mark_interval_ns
        ]
        for tick in due:
            self._submit_mark(tick)
        self._next_sweep_ns = now_ns + max(self._mark_interval_ns, NS_PER_S // 10)

    def build_bars_only(self, tick: Tick) -> None:
        """On a restart: a tick journaled before it (its mark is in the journal) goes to the
        bars being built, nowhere else, so the bar in progress at the stop gets all its ticks.
        Bars it closes that the journal holds are dropped (`skip_bars_through`)."""
        for bar in self.bars.on_tick(tick):
            self._submit_bar(bar)

    def skip_bars_through(self, journaled: Mapping[tuple[str, str], int]) -> None:
        """On a restart: the latest bar start the journal holds per (symbol, interval). A bar
        journaled when a tick past its end arrived, whose mark was still held back, is built
        again from the ticks the restart replays after that mark: only partly, and it is in
        the journal already, so it is dropped (counted in `bars_skipped`)."""
        self._journaled_bar_starts = dict(journaled)

    def _submit_bar(self, bar: Any) -> None:
        if bar.start <= self._journaled_bar_starts.get((bar.symbol, bar.interval), -1 << 63):
            self.bars_skipped += 1
            return
        self._submit("market.bar", bar.to_payload(), key=bar.symbol)
        self.bars_submitted += 1

    def _submit_mark(self, tick: Tick) -> None:
        # Mark at the mid when there is a two-sided quote: last trades bounce between bid and ask.
        # To 12 significant digits, not fixed decimals: a coin's 0.0000401 stays itself.
        price = tick.mid if tick.bid > 0 and tick.ask > 0 else tick.last
        self._submit(
            "mark.updated",
            {
                "symbol": tick.symbol,
                "price": without_float_noise(price),
                "bid": tick.bid,
                "ask": tick.ask,
                "last": tick.last,
                "ts": tick.ts,
            },
            key=tick.symbol,
        )
        self._last_mark_ns[tick.symbol] = tick.ts
        self._pending_marks.pop(tick.symbol, None)
        self.marks_submitted += 1
