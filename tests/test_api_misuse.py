"""Misuse of the public API answered with a TradelabError that names the argument and what it
takes, not a TypeError or KeyError from deep inside."""

import pytest

from tests.test_backtest import write_bars
from tradelab.broker import PaperBroker
from tradelab.engine import Engine
from tradelab.engine.store import build_store
from tradelab.errors import InvalidInputError, InvalidOrderError, StateError
from tradelab.runner import SmaCross, Strategy
from tradelab.runner.backtest import run_backtest
from tradelab.runner.context import StrategyContext
from tradelab.runner.runner import StrategyRunner
from tradelab.trading.execution import ExecutionDesk


@pytest.mark.parametrize("paths", ["pnl.daily", None, 5])
def test_get_many_takes_a_list_of_paths_and_names_anything_else(paths):
    # A str used to be read char by char, and the error named the path '.'.
    with pytest.raises(InvalidInputError, match=rf"paths must be a list of state paths.*{paths!r}"):
        build_store().get_many(paths)


def test_an_event_missing_a_field_its_reducer_needs_says_which(tmp_path):
    said = "payload has no field 'position_id'.*given: price"
    with (
        Engine(journal_path=str(tmp_path / "j.duckdb")) as engine,
        pytest.raises(StateError, match=said),
    ):
        engine.submit("trade.executed", {"price": 1.0}, wait=True)


@pytest.mark.parametrize("params", [None, [("fast", 4)], "fast=4"])
def test_set_params_takes_a_mapping_and_names_anything_else(tmp_path, params):
    engine = Engine(journal_path=str(tmp_path / "j.duckdb")).start()
    try:
        runner = StrategyRunner(engine, ExecutionDesk(PaperBroker(), engine.submit))
        runner.add(SmaCross(fast=3))
        runner.start()
        with pytest.raises(InvalidInputError, match="must be a mapping of name to value"):
            runner.set_params("sma_cross", params)
        runner.stop()
        assert runner.strategies["sma_cross"].fast == 3
    finally:
        engine.stop()


class Probe(Strategy):
    """Calls `probe(ctx)` on its third bar and keeps what it returned or raised."""

    strategy_name = "probe"

    def symbols_needed(self):
        return {"ABC": "symbol"}

    def on_start(self, ctx):
        self.seen, self.outcome = 0, None

    def on_bar(self, ctx, bar):
        self.seen += 1
        if self.seen == 3:
            try:
                self.outcome = self.probe(ctx)
            except Exception as exc:
                self.outcome = exc


def probed(tmp_path, probe):
    strategy = Probe()
    strategy.probe = probe
    run_backtest(write_bars(tmp_path / "ABC.csv"), strategy, journal_path=tmp_path / "bt.duckdb")
    return strategy.outcome


@pytest.mark.parametrize("quantity", ["1", None])
def test_target_refuses_a_quantity_that_is_not_a_number_as_buy_does(tmp_path, quantity):
    error = probed(tmp_path, lambda ctx: ctx.target("ABC", quantity))
    assert isinstance(error, InvalidOrderError)
    assert str(error) == f"quantity {quantity!r} for ABC is not a number"


@pytest.mark.parametrize("interval", ["15min", "1 m", None, "1D"])
def test_bars_refuses_an_interval_that_is_no_bar_length_naming_the_lengths(tmp_path, interval):
    # It read as "no bars yet": a strategy with the typo never traded, and nothing said why.
    error = probed(tmp_path, lambda ctx: ctx.bars("ABC", interval))
    assert isinstance(error, InvalidInputError)
    assert f"interval {interval!r} is not a bar length" in str(error)
    # The lengths this (daily) backtest builds, not a live session's 1m, 5m, 15m, 1h.
    assert "this session builds 1d (" in str(error)


def test_bars_of_the_files_own_length_are_read(tmp_path):
    assert len(probed(tmp_path, lambda ctx: ctx.bars("ABC", "1d"))) == 3


def test_bars_refuses_a_length_the_session_does_not_build_naming_the_ones_it_does(tmp_path):
    # '5m' is a bar length, but a backtest of daily bars builds only '1d': it read as "no bars
    # yet" for ever.
    error = probed(tmp_path, lambda ctx: ctx.bars("ABC", "5m"))
    assert isinstance(error, InvalidInputError)
    assert "this session builds bars of 1d only" in str(error)


@pytest.mark.parametrize("call", ["mark", "bars"])
def test_a_symbol_the_session_never_quotes_is_refused_not_read_as_no_data_yet(tmp_path, call):
    # A typo ('ABD' for 'ABC') read as "no price yet" for ever: the strategy never traded.
    def probe(ctx):
        return ctx.mark("ABD") if call == "mark" else ctx.bars("ABD", "1d")

    error = probed(tmp_path, probe)
    assert isinstance(error, InvalidInputError)
    assert str(error) == f"ctx.{call}('ABD') would never have data: this session quotes ABC"


@pytest.mark.parametrize(
    ("symbol", "said"),
    [
        # A backtest quotes its file's symbol only: an option symbol is a typo there too.
        ("NIFTY25NOV24000CE", "ctx.mark('NIFTY25NOV24000CE') would never have data"),
        (["ABC"], "ctx.mark takes a symbol (a str), got list ['ABC']"),
    ],
)
def test_a_backtest_refuses_any_symbol_but_its_own(tmp_path, symbol, said):
    error = probed(tmp_path, lambda ctx: ctx.mark(symbol))
    assert isinstance(error, InvalidInputError) and said in str(error)
    (tmp_path / "again").mkdir()
    assert probed(tmp_path / "again", lambda ctx: ctx.mark("ABC")) is not None


def test_the_simulated_session_reads_a_strike_it_lists_later_as_no_data_yet(tmp_path):
    from tradelab.lab import Lab

    lab = Lab(journal_path=str(tmp_path / "lab.duckdb"), strikes_each_side=1, strategy="none")
    with lab:
        ctx = StrategyContext(lab.runner, Probe())
        far = "NIFTY25N1830000CE"  # a strike far from the index: not quoted at the open
        assert far not in lab.feed.symbols and ctx.mark(far) is None
        with pytest.raises(InvalidInputError, match="and the option strikes it lists"):
            ctx.mark("NIFTYX")


def test_a_symbol_not_in_a_bar_file_is_refused_counting_the_files_symbols():
    from pathlib import Path

    from tradelab.runner.barfile import load_bar_file

    sample = Path(__file__).resolve().parents[1] / "data" / "nifty_sample_1m.csv"
    with pytest.raises(InvalidInputError, match=r"'nifty' is not in bar file .* \(its 7: NIFTY, "):
        load_bar_file(sample, symbol="nifty")
    with pytest.raises(InvalidInputError, match=r", \.\.\.\)$"):  # six shown, and more said
        load_bar_file(sample, symbol="nifty")
