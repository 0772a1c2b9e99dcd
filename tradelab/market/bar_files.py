"""What every bar-file reader agrees on (`tradelab backtest`'s and the replay feed's): how the
file is read, column names in any case, the names a time column may have, the instrument of a
file without a Symbol column, and how a row is named in an error. No state, no threads."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tradelab.errors import InvalidInputError, plain_value

# The most precise name first; "date time" is a Date and a Time column read as one.
TIME_COLUMNS = ("timestamp", "datetime", "date time", "date", "time")
# A time of day alone, as intraday exports (MetaTrader, Amibroker, many vendors) write it beside
# the date: 09:15, 9:15:00, 09:15:00.250.
_TIME_OF_DAY = re.compile(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?")
# A CSV's separator, read from its header line: many exports use ';' (or tabs) where a decimal
# comma is usual; a header without commas but with one of these is split on it.
_OTHER_SEPARATORS = (";", "\t", "|")
# A number with its thousands grouped by commas: 21,665.80, -1,234.
_GROUPED_NUMBER = r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?"
# What pandas names a frame's unnamed index once written and read back.
_UNNAMED_INDEX_COLUMNS = ("unnamed: 0", "", "index", "__index_level_0__")
_NOT_IN_ID = re.compile(r"[^A-Za-z0-9_:\-]")  # tradelab.state.paths' LEVEL_RULE


def read_bar_frame(path: Path) -> pd.DataFrame:
    """The file's rows as read: Parquet, or CSV separated by ',' (or ';', tab, '|' when its header
    has no comma), with the layouts common tools write brought to one row per bar: a yfinance
    download's ticker level, a pandas time index, a Date and a Time column. A missing file,
    another suffix or an unreadable file is an InvalidInputError naming the file."""
    name = str(path)
    if not path.exists():
        raise InvalidInputError(f"bar file {name!r} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InvalidInputError(
            f"bar file {name!r} has suffix {suffix!r}; expected .csv or .parquet"
        )
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            with path.open(encoding="utf-8", errors="replace") as text:
                header = text.readline()
            separator = next(
                (s for s in _OTHER_SEPARATORS if "," not in header and s in header), ","
            )
            # With ',' between fields a comma inside a (quoted) number groups thousands:
            # "21,665.80", as investing.com writes prices. Ungrouped after reading: read_csv's
            # own `thousands` switches to a float parser that misreads ~1 in 8 full-precision
            # numbers by an ulp (df.to_csv would no longer read back exactly).
            frame = pd.read_csv(path, sep=separator)
            if separator == ",":
                frame = _thousands_ungrouped(frame)
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise InvalidInputError(f"bar file {name!r} cannot be read: {exc}") from None
    if isinstance(frame.columns, pd.MultiIndex):
        frame = _per_ticker_from_levels(frame, path)
    elif not isinstance(frame.index, pd.RangeIndex):
        # A frame indexed by time keeps its index in a Parquet file: it is a column here.
        frame = frame.reset_index()
    else:
        frame = _per_ticker_from_header_rows(frame)
    return _symbols_as_ids(_date_and_time_joined(_vendor_names(frame)), path)


# Vendors' names of the columns read here, by their lower-cased names without <>: tushare's
# trade_date and ts_code, Stooq's and MetaStock's <TICKER>, <DATE>, <VOL>, <DTYYYYMMDD>.
_VENDOR_NAMES = {
    "trade_date": "Date",
    "dtyyyymmdd": "Date",
    "ts_code": "Symbol",
    "ticker": "Symbol",
    "vol": "Volume",
}


def _vendor_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Headers as vendors write them, under the names read here; a name the file already has
    is never taken twice."""
    taken = {str(c).strip().strip("<>").lower() for c in frame.columns}
    renames = {}
    for column in frame.columns:
        bare = str(column).strip()
        name = bare.strip("<>") if bare.startswith("<") and bare.endswith(">") else bare
        alias = _VENDOR_NAMES.get(name.lower())
        if alias is not None and alias.lower() not in taken:
            taken.add(alias.lower())
            name = alias
        if name != column:
            renames[column] = name
    return frame.rename(columns=renames) if renames else frame


def instrument_id(ticker: str) -> str:
    """A ticker as an instrument id (a state path level): each character an id cannot hold
    becomes '_', and one at either end is dropped: RELIANCE.NS -> RELIANCE_NS, M&M -> M_M,
    ^NSEI -> NSEI (Yahoo's and other vendors' tickers, used as they come)."""
    return _NOT_IN_ID.sub("_", ticker.strip()).strip("_")


def _symbols_as_ids(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    column = columns_by_name(frame).get("symbol")
    if column is None:
        return frame
    raw = frame[column]
    tickers = raw.dropna().astype(str).unique()
    ids = {ticker: instrument_id(ticker) for ticker in tickers}
    if all(ticker == ident for ticker, ident in ids.items()):
        return frame
    by_id: dict[str, str] = {}
    for ticker, ident in ids.items():
        if ident in by_id and ident:
            raise InvalidInputError(
                f"bar file {str(path)!r}, column {column!r}: symbols {by_id[ident]!r} and "
                f"{ticker!r} would both trade as {ident!r}; rename one"
            )
        by_id[ident] = ticker
    frame = frame.copy()
    frame[column] = raw.map(lambda v: ids.get(str(v), v) if pd.notna(v) else v)
    return frame


def _thousands_ungrouped(frame: pd.DataFrame) -> pd.DataFrame:
    """Grouped numbers ("21,665.80") in the text columns pandas left as text because of another
    cell (a "n.a."), ungrouped, so that cell alone is named as not a number."""
    for column in frame.columns:
        values = frame[column]
        if not (values.dtype == object or pd.api.types.is_string_dtype(values)):
            continue
        text = values.astype(str)
        if text.str.contains(",", regex=False).any():
            grouped = text.str.fullmatch(_GROUPED_NUMBER)
            if grouped.any():
                frame[column] = values.where(~grouped, text.str.replace(",", ""))
    return frame


def _date_and_time_joined(frame: pd.DataFrame) -> pd.DataFrame:
    """A Date column and a Time column holding times of day become one 'Date Time' column in
    their place (an intraday file read by its Date alone would have every bar of a day at once)."""
    columns = columns_by_name(frame)
    if "date" not in columns or "time" not in columns or "timestamp" in columns:
        return frame
    if "datetime" in columns or "date time" in columns:
        return frame
    date, time = columns["date"], columns["time"]
    times = frame[time]
    if (
        pd.api.types.is_integer_dtype(times)
        and times.between(0, 2359).all()
        and (times % 100 < 60).all()
    ):
        # HHMM numbers (915 is 09:15, what a spreadsheet leaves of "0915"): read as HHMMSS they
        # would put every bar of the day in its first 24 minutes, which no file means.
        digits = times.astype("int64").astype(str).str.zfill(4)
        times = digits.str[:2] + ":" + digits.str[2:]
    elif pd.api.types.is_integer_dtype(times) and times.between(0, 235959).all():
        # Stooq's and MetaStock's HHMMSS numbers: 91500 is 09:15:00.
        digits = times.astype("int64").astype(str).str.zfill(6)
        times = digits.str[:2] + ":" + digits.str[2:4] + ":" + digits.str[4:]
    sample = times.dropna()
    if sample.empty or not _TIME_OF_DAY.fullmatch(str(sample.iloc[0]).strip()):
        return frame
    joined = frame[date].astype(str).str.strip() + " " + times.astype(str).str.strip()
    frame = frame.drop(columns=[date, time])
    frame.insert(0, "Date Time", joined)
    return frame


_PRICE_FIELDS = ("open", "high", "low", "close", "adj close")
# yfinance's download() frames have two column levels, (Price, Ticker): Close/AAPL, ... Written
# with to_csv they take three header lines (Price,Close,...; Ticker,AAPL,...; Date,,,); with
# to_parquet, two-level columns. Either is read as one row per bar and ticker, with a Symbol.


def _long_frame(times: pd.Series, fields: dict[str, dict[str, pd.Series]]) -> pd.DataFrame:
    """One block per ticker (`fields[ticker][field]`), each row keeping its place in the file
    as its index so errors still name the right line. A row where a ticker has no price at all
    is a day it did not trade, left out: a download of several tickers spans every ticker's
    days (another exchange's holiday, a later listing), blank for the others. A row with some
    prices and not others is kept, and refused by name as any bad cell is."""
    parts = []
    for ticker, columns in fields.items():
        part = pd.DataFrame({times.name: times, **columns, "Symbol": ticker})
        prices = [c for c in columns if c.strip().lower() in _PRICE_FIELDS]
        traded = part[prices].notna().any(axis=1) if prices else True
        parts.append(part[traded])
    return pd.concat(parts)


def _per_ticker_from_header_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty or len(frame) < 2 or str(frame.columns[0]).strip().lower() != "price":
        return frame
    if str(frame.iloc[0, 0]).strip().lower() != "ticker":
        return frame
    body = frame.iloc[2:]  # index 2.. is each row's place in the file, as for any CSV
    times = body[frame.columns[0]].rename(str(frame.iloc[1, 0]).strip() or "Date")
    fields: dict[str, dict[str, pd.Series]] = {}
    for column, ticker in zip(frame.columns[1:], frame.iloc[0, 1:], strict=True):
        field = re.sub(r"\.\d+$", "", str(column))  # pandas renames a repeated Close Close.1
        fields.setdefault(str(ticker), {})[field] = body[column]
    return _long_frame(times, fields)


def _per_ticker_from_levels(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    if frame.columns.nlevels != 2:
        raise InvalidInputError(
            f"bar file {str(path)!r} has {frame.columns.nlevels} levels of column names; "
            "expected one (Open, High, ...) or yfinance's two (Price, Ticker)"
        )
    times = pd.Series(frame.index, name=frame.index.name or "Date")
    fields: dict[str, dict[str, pd.Series]] = {}
    for field, ticker in frame.columns:
        fields.setdefault(str(ticker), {})[str(field)] = frame[(field, ticker)].reset_index(
            drop=True
        )
    return _long_frame(times, fields)


def time_column(frame: pd.DataFrame) -> object | None:
    """The frame's time column: the first of TIME_COLUMNS it has (any case), else an unnamed
    first column that is not numbers, which is where pandas' `to_csv` (header '', read back as
    'Unnamed: 0') and `to_parquet` ('index') leave a frame's unnamed time index. An unnamed
    column of numbers is a saved row number, never taken for times."""
    columns = columns_by_name(frame)
    named = next((columns[c] for c in TIME_COLUMNS if c in columns), None)
    if named is not None or frame.columns.empty:
        return named
    first = frame.columns[0]
    unnamed = str(first).strip().lower() in _UNNAMED_INDEX_COLUMNS
    if unnamed and not pd.api.types.is_numeric_dtype(frame[first]):
        return first
    return None


def columns_by_name(frame: pd.DataFrame) -> dict[str, object]:
    """The frame's columns keyed by their lower-cased, stripped names; without a Close column, a
    Price column is the close (investing.com's name for it)."""
    columns = {str(c).strip().lower(): c for c in frame.columns}
    if "close" not in columns and "price" in columns:
        columns["close"] = columns["price"]
    return columns


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


def checked_numbers(
    path: Path,
    column: str,
    raw: pd.Series,
    *,
    volume: bool = False,
    file_row: Callable[[int], int] = int,
) -> np.ndarray:
    """The column's values as floats: prices positive and finite; a volume finite and >= 0,
    a blank volume cell 0 (the column is optional and index files have none). Anything else is
    refused naming the column, where it is in the file and what it holds; `file_row(i)` is the
    0-based file row of the column's i-th value."""
    numbers = pd.to_numeric(raw, errors="coerce")
    if numbers.dtype == np.float32:
        # Widened by decimal text, not by bits: a float32 102.41 is 102.41000366210938 as it
        # is stored, and fills are at the file's price as written.
        numbers = numbers.astype(str).astype("float64")
    numbers = numbers.to_numpy("float64", copy=True)
    if volume:
        numbers[raw.isna().to_numpy()] = 0.0
    # A whole volume is journaled as a 64-bit integer (tradelab.payloads.INT_MAX), a
    # fractional one (a coin's 0.75) as it is (`journal_volumes`).
    bad = ~np.isfinite(numbers) | (
        ((numbers < 0) | (numbers >= 2.0**63)) if volume else (numbers <= 0)
    )
    if bad.any():
        i = int(bad.argmax())
        wanted = "a finite number from 0 to 2**63" if volume else "a positive finite number"
        raise InvalidInputError(
            f"bar file {str(path)!r}, column {column!r}, {file_position(path, file_row(i))}: "
            f"{plain_value(raw.iloc[i])!r} is not {wanted}"
        )
    return numbers


def volumes_are_whole(volumes: np.ndarray) -> bool:
    """Whether a file's volumes are all whole numbers (a share count), journaled as ints; else
    every one is journaled as the float the file holds (a coin's 0.75 must not read as 0)."""
    return bool(np.array_equal(volumes, np.floor(volumes)))


def journal_volumes(volumes: np.ndarray) -> list[int] | list[float]:
    """A file's volumes as bars carry them (`volumes_are_whole`)."""
    return volumes.astype(np.int64).tolist() if volumes_are_whole(volumes) else volumes.tolist()


def checked_symbols(
    path: Path, column: str, raw: pd.Series, file_row: Callable[[int], int] = int
) -> pd.Series:
    """The Symbol column's values as text; an empty cell is refused naming its line (a pandas
    3 `astype(str)` keeps it a float NaN, which no bar can be matched to)."""
    empty = raw.isna() | (raw.astype(str).str.strip() == "")
    if empty.any():
        i = int(empty.to_numpy().argmax())
        raise InvalidInputError(
            f"bar file {str(path)!r}, column {column!r}, {file_position(path, file_row(i))}: "
            "empty symbol"
        )
    return raw.astype(str)


def check_high_low(
    path: Path,
    columns: str,
    bars: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    file_row: Callable[[int], int] = int,
) -> None:
    """Refuse the first bar whose high and low do not hold its open and close (a file whose
    columns are swapped or shifted would otherwise trade on prices no bar had). `bars` is
    (open, high, low, close); `file_row(i)` is bar i's 0-based row in the file."""
    open_, high, low, close = bars
    bad = (high < np.maximum(np.maximum(open_, close), low)) | (low > np.minimum(open_, close))
    if bad.any():
        i = int(bad.argmax())
        raise InvalidInputError(
            f"bar file {str(path)!r}, columns {columns}, {file_position(path, file_row(i))}: "
            f"high {high[i]} / low {low[i]} do not contain open {open_[i]} and close {close[i]}"
        )


def bar_length_ns(starts_ns: np.ndarray) -> int | None:
    """A bar file's bar length: the smallest gap between two bar starts (bars do not overlap,
    so no bar is longer; a median is fooled by missing bars: a 1-minute file of an illiquid
    contract read as 2m). None for fewer than two distinct starts."""
    gaps = np.diff(np.unique(starts_ns))
    return int(gaps.min()) if len(gaps) else None
