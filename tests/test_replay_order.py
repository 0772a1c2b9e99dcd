"""The replay feed reads a bar file as `tradelab backtest` does: a shuffled file is refused by
its line, not sorted silently; newest first, and symbols one block after another, are in order."""

import pytest

from tradelab.errors import InvalidInputError
from tradelab.market.feeds.replay import load_bars
from tradelab.runner.barfile import load_bar_file

HEADER = "datetime,symbol,open,high,low,close"


def write(path, rows):
    path.write_text("\n".join([HEADER, *(f"{t},{s},10,11,9,10" for t, s in rows)]) + "\n")
    return path


def test_a_shuffled_file_is_refused_by_both_readers_naming_the_line(tmp_path):
    path = write(
        tmp_path / "shuffled.csv",
        [("2022-01-03 09:15", "A"), ("2022-01-03 09:17", "A"), ("2022-01-03 09:16", "A")],
    )
    with pytest.raises(InvalidInputError, match=r"line 4: .*times must increase"):
        load_bar_file(path)
    with pytest.raises(InvalidInputError, match=r"line 4: the bars of A are out of time order"):
        load_bars(path)


def test_newest_first_and_symbols_in_blocks_are_replayed_in_time_order(tmp_path):
    path = write(
        tmp_path / "blocks.csv",
        [
            ("2022-01-03 09:16", "A"),
            ("2022-01-03 09:15", "A"),
            ("2022-01-03 09:15", "B"),
            ("2022-01-03 09:16", "B"),
        ],
    )
    bars = load_bars(path)
    assert bars["timestamp"].is_monotonic_increasing
    assert bars.groupby("symbol").size().to_dict() == {"A": 2, "B": 2}
