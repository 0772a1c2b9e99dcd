"""The runner refuses a second strategy of one name and skips ticks still waiting at a stop;
strategies refuse a misspelt parameter and a bar file without the options they trade."""

import pytest

from tradelab.broker import PaperBroker
from tradelab.engine import Engine
from tradelab.errors import InvalidInputError
from tradelab.runner import SmaCross
from tradelab.runner.examples import ShortStraddle
from tradelab.runner.runner import StrategyRunner
from tradelab.runner.strategy import check_strategy_inputs
from tradelab.trading.execution import ExecutionDesk


def test_a_second_strategy_of_the_same_name_is_refused_not_swapped_in(tmp_path):
    with Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False) as engine:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit))
        first = runner.add(SmaCross(name="sma"))
        with pytest.raises(InvalidInputError, match="already in the runner"):
            runner.add(SmaCross(name="sma", fast=3))
        assert runner.strategies["sma"] is first


def test_a_misspelt_parameter_in_a_strategy_constructor_is_refused():
    # A notebook's SmaCross(fsat=3) must not run the defaults with the typo ignored.
    with pytest.raises(InvalidInputError, match="has no parameter 'fsat'"):
        SmaCross(fsat=3)


def test_ticks_still_waiting_at_a_stop_are_skipped_not_handed_to_the_strategy(tmp_path):
    import threading
    import time

    from tests.test_runner_inbox import Stuck

    class Counting(Stuck):
        strategy_name = "counting"

        def __init__(self, **params):
            super().__init__(**params)
            self.seen = []

        def on_tick(self, ctx, tick):
            self.seen.append(tick["symbol"])
            super().on_tick(ctx, tick)

    with Engine(journal_path=str(tmp_path / "j.duckdb"), writer_process=False) as engine:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit), name="r")
        strategy = runner.add(Counting())
        runner.start(who="test")
        engine.publish_transient("market.tick", {"symbol": "A", "last": 1.0}, key="A")
        assert strategy.entered.wait(30)
        for symbol in ("B", "C", "D"):  # one waiting tick each: none supersedes another
            engine.publish_transient("market.tick", {"symbol": symbol, "last": 1.0}, key=symbol)
        stopping = threading.Thread(target=runner.stop, kwargs={"who": "test", "timeout": 30})
        stopping.start()
        time.sleep(0.3)  # the stop is asked while the hook still runs
        strategy.release.set()
        stopping.join(30)
    assert strategy.seen == ["A"]
    assert runner.ticks_dropped >= 3


# -- strategy.py: check_strategy_inputs ----------------------------------------------------------


def test_short_straddle_on_a_file_without_nifty_options_is_refused():
    # NIFTY's bars and a stock's: no option of NIFTY to sell, so nothing would ever trade.
    with pytest.raises(InvalidInputError, match="trades options on underlying='NIFTY'"):
        check_strategy_inputs(
            [ShortStraddle()], "bar file 'x.csv'", symbols={"NIFTY", "RELIANCE"}, intervals=None
        )
    check_strategy_inputs(  # with one of its options, it may run
        [ShortStraddle()],
        "bar file 'x.csv'",
        symbols={"NIFTY", "NIFTY25N1824000CE"},
        intervals=None,
    )
