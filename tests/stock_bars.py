"""A replay bar file of one stock and no NIFTY, shared by the tests that replay it."""

from pathlib import Path


def write_stock_bars(directory: Path, symbol: str = "RELIANCE", bars: int = 5) -> Path:
    path = directory / f"{symbol.lower()}.csv"
    rows = ["timestamp,symbol,open,high,low,close,volume"]
    rows += [f"2025-11-12T09:{15 + i:02d}:00+05:30,{symbol},10,11,9,10,5" for i in range(bars)]
    path.write_text("\n".join(rows) + "\n")
    return path
