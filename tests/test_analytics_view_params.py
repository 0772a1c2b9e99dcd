"""Analytics.view's where condition, and a numpy value from one query's frame as a parameter of
the next."""

import numpy as np
import pytest

from tests import analytics_script as script
from tradelab.analytics import Analytics


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    path = tmp_path_factory.mktemp("analytics") / "script.duckdb"
    script.build(path)
    return Analytics(path)


def test_view_with_a_where_condition_returns_only_the_rows_it_picks(scripted):
    everything = scripted.view("fills")
    sells = scripted.view("fills", "side = 'SELL'")
    assert len(everything) == 4
    assert list(sells["trade_id"]) == ["F2", "F3", "F4"]


def test_a_numpy_scalar_from_one_frame_is_a_parameter_of_the_next_query(scripted):
    fills = scripted.sql("SELECT trade_id, price, position_after FROM fills ORDER BY trade_id")
    price, position = fills["price"].iloc[1], fills["position_after"].iloc[1]
    assert isinstance(price, np.floating) and isinstance(position, np.integer)
    same = scripted.sql(
        "SELECT trade_id FROM fills WHERE price = ? AND position_after = ?", [price, position]
    )
    assert list(same["trade_id"]) == ["F2"]
    named = scripted.sql("SELECT ? AS a, ? AS b", [np.int64(3), np.float32(0.5)])
    assert named.to_dict("list") == {"a": [3], "b": [0.5]}
