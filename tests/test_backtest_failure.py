"""A strategy that raises ends its backtest there: the figures are those at the bar it failed on,
as the exit-4 line says, not the file's last bar's."""

import pytest

from tests.test_backtest import _RaisesOnFifthBar, write_bars
from tradelab.journal import JournalReader
from tradelab.runner import SmaCross
from tradelab.runner.backtest import run_backtest


@pytest.mark.parametrize("synchronous", [True, False])
def test_no_bar_is_played_after_a_strategy_fails(tmp_path, synchronous):
    # The hand-computed run of test_backtest: short 1 at bar 4's open 8.5, then the strategy
    # raises on bar 4 (its fifth), whose close is 8. The bars after it (closes 11, 13, 12 ...)
    # would have put the short 4.5 under water.
    bars = write_bars(tmp_path / "ABC.csv")
    journal = tmp_path / "bt.duckdb"
    told = []
    result = run_backtest(
        bars,
        _RaisesOnFifthBar(fast=2, slow=3),
        journal_path=journal,
        synchronous=synchronous,
        progress=lambda played, total: told.append((played, total)),
    )
    assert list(result.failed_strategies) == ["raises_on_fifth_bar"]
    assert result.bars == 5 and told[-1] == (5, told[-1][1])  # the bars played, at the end
    assert result.open_positions == {"ABC": -1}
    assert result.unrealized_pnl == pytest.approx(0.5)  # 8.5 - 8, the close it failed on
    # At the fill the short is valued at bar 3's close (9), as the live book values it: -0.5.
    assert result.max_drawdown == pytest.approx(-0.5)
    closes = [e.payload["close"] for e in JournalReader(journal).events(topic="market.bar")]
    assert closes == [10, 11, 10, 9, 8]


def test_a_run_with_no_failure_still_plays_every_bar(tmp_path):
    result = run_backtest(write_bars(tmp_path / "ABC.csv"), SmaCross(fast=2, slow=3))
    assert result.bars == 10 and not result.failed_strategies


def test_with_stop_at_failure_false_the_other_strategies_play_on(tmp_path):
    bars = write_bars(tmp_path / "ABC.csv")
    both = [_RaisesOnFifthBar(fast=2, slow=3), SmaCross(fast=3, slow=4)]
    result = run_backtest(bars, both, stop_at_failure=False)
    assert list(result.failed_strategies) == ["raises_on_fifth_bar"] and result.bars == 10
    # By default the first failure ends the run for every strategy.
    both = [_RaisesOnFifthBar(fast=2, slow=3), SmaCross(fast=3, slow=4)]
    assert run_backtest(bars, both).bars == 5
