"""How `tradelab backtest` shows a result without --json: the fills and the round trips as
tables with their times, then the totals; and its progress line on a terminal."""

from __future__ import annotations

import sys
import time

import pandas as pd

from tradelab.market.instruments import IST
from tradelab.runner.backtest import BacktestResult


def _times(ns: pd.Series, interval: str) -> pd.Series:
    """Bar times as a reader of that bar file expects them: a daily file's dates as written
    (naive dates are read as UTC), intraday times on the exchange's clock (IST)."""
    stamps = pd.to_datetime(ns, unit="ns", utc=True)
    if interval.endswith("d"):
        return stamps.dt.strftime("%Y-%m-%d")
    return stamps.dt.tz_convert(IST).dt.strftime("%Y-%m-%d %H:%M")


def backtest_report(result: BacktestResult) -> str:
    """The fills, the round trips and the totals of `result`, as text."""
    daily = result.interval.endswith("d")
    when = "date" if daily else "time (IST)"
    parts = []
    if result.fills:
        fills = pd.DataFrame(result.fills)
        table = pd.DataFrame(
            {
                when: _times(fills["ts"], result.interval),
                "fill": fills["trade_id"],
                "side": fills["side"],
                "quantity": fills["quantity"],
                "price": fills["price"].map("{:.2f}".format),
                "fee": fills["fee"].map("{:.2f}".format),
                "realized": fills["realized_pnl"].map("{:,.2f}".format),
            }
        )
        parts += [f"fills ({len(fills)})", table.to_string(index=False)]
    if result.trades:
        trades = pd.DataFrame(result.trades)
        table = pd.DataFrame(
            {
                "opened": _times(trades["opened_ts"], result.interval),
                "closed": _times(trades["closed_ts"], result.interval),
                "direction": trades["direction"],
                "quantity": trades["quantity"],
                "entry": trades["entry_price"].map("{:.2f}".format),
                "exit": trades["exit_price"].map("{:.2f}".format),
                "net": trades["net_pnl"].map("{:,.2f}".format),
            }
        )
        parts += [f"round trips ({len(trades)})", table.to_string(index=False)]
    parts += [
        f"{result.bars} bars of {result.symbol} ({result.interval}) in {result.seconds:.2f} s "
        f"({result.bars_per_second:,.0f} bars/s); {len(result.fills)} fills, "
        f"{len(result.trades)} round trips",
        f"realized {result.realized_pnl:,.2f}  unrealized {result.unrealized_pnl:,.2f}  "
        f"fees {result.fees:,.2f}  final equity {result.final_equity:,.2f}",
        f"journal content hash {result.content_hash}",
    ]
    return "\n".join(parts)


class BarProgress:
    """A backtest's progress on a terminal: one stderr line rewritten, cleared at the end."""

    def __init__(self) -> None:
        self._shown_at = 0.0

    def __call__(self, played: int, bars: int) -> None:
        if played >= bars:
            self._write("\r\x1b[K")  # cleared: the report follows on stdout
        elif time.monotonic() - self._shown_at >= 0.25:
            self._shown_at = time.monotonic()
            self._write(f"\rbacktest: {played:,} of {bars:,} bars ({played / bars:.0%})\x1b[K")

    @staticmethod
    def _write(text: str) -> None:
        sys.stderr.write(text)  # as is: only ever shown on a terminal
        sys.stderr.flush()
