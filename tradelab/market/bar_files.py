"""What every bar-file reader agrees on (`tradelab backtest`'s and the replay feed's): column
names in any case, the names a time column may have, and the instrument of a file without a
Symbol column, and how a row is named in an error. Pure functions."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

TIME_COLUMNS = ("timestamp", "datetime", "date", "time")  # the most precise name first


def columns_by_name(frame: pd.DataFrame) -> dict[str, object]:
    """The frame's columns keyed by their lower-cased, stripped names."""
    return {str(c).strip().lower(): c for c in frame.columns}


def symbol_from_path(path: Path) -> str:
    """The instrument of a bar file without a Symbol column: its name, e.g. reliance.csv ->
    RELIANCE (characters a state path cannot hold become '_')."""
    return re.sub(r"[^A-Za-z0-9_]", "_", path.stem).upper() or "BARS"


def file_position(path: Path, row: int) -> str:
    """Where data row `row` (0-based, as pandas reads it) is, as the user finds it: a CSV's line
    in an editor (the header is line 1), a Parquet file's row counted from 1."""
    if path.suffix.lower() == ".csv":
        return f"line {row + 2}"
    return f"row {row + 1}"
