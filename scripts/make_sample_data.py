"""Write the shipped sample bars: one simulated NIFTY session as 1-minute OHLCV bars.

Seeded and deterministic: running it again writes identical files. Usage:
    .venv/bin/python scripts/make_sample_data.py [--out data]
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
import pandas as pd

from tradelab.benchmarking.options import command
from tradelab.market.bars import BarAggregator
from tradelab.market.feeds import SimulatedFeed, SimulatedFeedConfig
from tradelab.market.instruments import IST

SEED = 20251112


def build_bars() -> pd.DataFrame:
    config = SimulatedFeedConfig(
        seed=SEED, strikes_each_side=1, ticks_per_second=10, speed=10.0, as_fast_as_possible=True
    )
    feed = SimulatedFeed(config)
    bars = BarAggregator(("1m",))
    closed = []
    for tick in feed.ticks():
        closed.extend(bars.on_tick(tick))
    closed.extend(bars.flush())
    rows = [
        {
            "timestamp": datetime.fromtimestamp(b.start / 1e9, tz=IST).isoformat(),
            "symbol": b.symbol,
            "open": b.open,
            "high": b.high,
            "low": b.low,
            "close": b.close,
            "volume": b.volume,
        }
        for b in sorted(closed, key=lambda b: (b.start, feed.symbols.index(b.symbol)))
    ]
    return pd.DataFrame(rows)


@command(__doc__)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(__file__).resolve().parents[1] / "data",
    show_default=True,
    help="Directory the CSV and Parquet files are written to.",
)
def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    frame = build_bars()
    frame.to_csv(out / "nifty_sample_1m.csv", index=False)
    frame.to_parquet(out / "nifty_sample_1m.parquet", index=False)
    print(f"wrote {len(frame)} bars of {frame['symbol'].nunique()} symbols to {out}")


if __name__ == "__main__":
    main()
