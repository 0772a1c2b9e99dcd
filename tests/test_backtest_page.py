"""`tradelab backtest --html`'s page: what was run, the figures first, the charts, the tables."""

import pytest
from bokeh.models import Div

from tests.test_backtest import write_bars
from tradelab.runner import SmaCross
from tradelab.runner import backtest_page as page_module
from tradelab.runner.backtest import run_backtest
from tradelab.runner.backtest_page import backtest_page


@pytest.fixture
def hand_computed(tmp_path):
    """The hand-computed run of test_backtest: 3 fills, 2 round trips (both lost), 10,000 cash
    ending at 9,994.10 with 1 ABC short marked at the last close."""
    bars = write_bars(tmp_path / "ABC.csv")
    return run_backtest(
        bars, SmaCross(fast=2, slow=3, size=1), journal_path=tmp_path / "bt.duckdb", cash=10_000
    )


def texts(page) -> list[str]:
    return [child.text for child in page.children if isinstance(child, Div)]


def test_the_page_opens_with_what_was_run_and_its_figures(hand_computed):
    page = backtest_page(hand_computed, {"strategy": "sma_cross (fast=2, slow=3)", "file": "A<B"})
    heading = texts(page)[0]
    assert "Backtest: ABC (1d), 3 fills" in heading
    assert "strategy sma_cross (fast=2, slow=3)" in heading and "A&lt;B" in heading  # escaped
    cards = {
        "final equity": "9,994.10",
        "return on cash": "-0.06%",
        "net P&L": "-5.90",
        "round trips won": "0 of 2 (0%)",
        "fills": "3",
        "bars": "10",
    }
    for label, value in cards.items():
        assert f'{label}</div><div class="tl-value tl-down">{value}<' in heading or (
            f'{label}</div><div class="tl-value ">{value}<' in heading
        ), label
    assert 'tl-value tl-down">9,994.10' in heading  # a loss is shown red
    assert "open at the end, valued at the last close: -1 ABC" in heading
    # The charts, then the round trips and the fills with their dates.
    assert not isinstance(page.children[1], Div)
    trips, fills = texts(page)[1], texts(page)[2]
    assert "Round trips (2)" in trips and "2024-03-05" in trips and "SHORT" in trips
    assert "Fills (3)" in fills and "BT-F000003" in fills and "8.80" in fills
    assert hand_computed.content_hash in texts(page)[-1]


def test_a_long_table_shows_its_ends_and_says_how_many_are_left_out(hand_computed, monkeypatch):
    monkeypatch.setattr(page_module, "TABLE_ROWS_SHOWN", 2)
    fills = texts(backtest_page(hand_computed, {}))[2]
    assert "BT-F000001" in fills and "BT-F000003" in fills and "BT-F000002" not in fills
    assert "the first and last 1 of 3" in fills and "…" in fills


def test_a_failed_strategy_and_refused_orders_are_said_above_the_charts(hand_computed):
    hand_computed.failed_strategies = {"sma_cross": "ZeroDivisionError: boom"}
    hand_computed.refused_orders = [{"reason": "margin: needs 12.00, has 3.00"}]
    heading = texts(backtest_page(hand_computed, {}))[0]
    assert "strategy sma_cross failed: ZeroDivisionError: boom" in heading
    assert "1 order(s) refused, none traded; the first: margin: needs 12.00" in heading


def test_a_result_shows_itself_in_a_notebook_by_its_figures_not_every_fill(hand_computed):
    text = repr(hand_computed)
    assert text.startswith("<BacktestResult ABC (1d): 10 bars, 3 fills, 2 round trips")
    assert "final equity 9,994.10 on cash 10,000.00" in text and "BT-F000001" not in text
    shown = hand_computed._repr_html_()
    assert "round trips won</div>" in shown and "0 of 2 (0%)" in shown
    assert "open at the end, valued at the last close: -1 ABC" in shown
