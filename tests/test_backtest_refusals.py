"""What a backtest refuses before or while it runs, each refusal naming what is wrong."""

import pandas as pd
import pytest

from tests.test_backtest import write_bars
from tradelab.errors import InvalidInputError
from tradelab.runner import SmaCross, Strategy
from tradelab.runner.backtest import run_backtest


def test_a_multi_symbol_file_needs_a_symbol_and_names_the_choices(tmp_path):
    with pytest.raises(
        InvalidInputError, match=r"7 symbols \(NIFTY, .*choose it with --symbol"
    ) as e:
        run_backtest("data/nifty_sample_1m.csv", SmaCross())
    # One that trades several (an index and its options) is pointed to a replay.
    assert "tradelab run --feed replay FILE --speed max" in str(e.value)
    result = run_backtest("data/nifty_sample_1m.csv", SmaCross(fast=5, slow=20), symbol="NIFTY")
    assert result.bars == 375 and result.interval == "1m"
    assert len(result.fills) >= 2
    # The one the strategy names is the one played, as `--param symbol=NIFTY` says.
    named = run_backtest("data/nifty_sample_1m.csv", SmaCross(fast=5, slow=20, symbol="NIFTY"))
    assert named.symbol == "NIFTY" and named.fills == result.fills


def test_a_strategy_set_to_a_symbol_the_file_lacks_is_refused_not_run_without_orders(tmp_path):
    bars = write_bars(tmp_path / "ABC.csv")
    journal = tmp_path / "bt.duckdb"
    with pytest.raises(InvalidInputError, match=r"symbol='NIFTY'.*does not have \(it has ABC\)"):
        run_backtest(bars, SmaCross(fast=2, slow=3, symbol="NIFTY"), journal_path=journal)
    assert not journal.exists()
    assert run_backtest(bars, SmaCross(fast=2, slow=3, symbol="ABC")).fills
    # Likewise a strategy set to bars of another length than the file's.
    with pytest.raises(InvalidInputError, match=r"bars of interval='15m'.*\(it has 1d\)"):
        run_backtest(bars, SmaCross(fast=2, slow=3, interval="15m"), journal_path=journal)
    assert not journal.exists()
    assert run_backtest(bars, SmaCross(fast=2, slow=3, interval="1d")).fills


def test_a_strategy_set_to_a_symbol_a_many_symbol_file_lacks_is_named_with_the_files_symbols(
    tmp_path,
):
    rows = ["Date,Symbol,Open,High,Low,Close"]
    rows += [f"2024-03-{d:02d},{s},10,11,9,10" for d in range(1, 4) for s in ("ABC", "XYZ")]
    (tmp_path / "two.csv").write_text("\n".join(rows) + "\n")
    journal = tmp_path / "bt.duckdb"
    with pytest.raises(
        InvalidInputError,
        match=r"strategy 'sma_cross' trades symbol='NIFTY', which bar file .*two.csv' does not "
        r"have \(it has ABC, XYZ\)",
    ):
        run_backtest(tmp_path / "two.csv", SmaCross(symbol="NIFTY"), journal_path=journal)
    assert not journal.exists()
    played = run_backtest(tmp_path / "two.csv", SmaCross(fast=1, slow=2, symbol="XYZ"))
    assert played.symbol == "XYZ" and played.bars == 3
    # A symbol the file lacks is named as missing, with or without symbol=.
    with pytest.raises(InvalidInputError, match=r"does not have \(it has ABC, XYZ\)"):
        run_backtest(tmp_path / "two.csv", SmaCross(symbol="NIFTY"), symbol="ABC")
    # The file holds XYZ, but symbol= picked ABC: the error names that choice.
    with pytest.raises(
        InvalidInputError, match=r"symbol='XYZ', but --symbol \(symbol=\) picks 'ABC'"
    ):
        run_backtest(tmp_path / "two.csv", SmaCross(symbol="XYZ"), symbol="ABC")


def test_a_bad_bar_is_named_by_its_place_in_the_file(tmp_path):
    from tradelab.runner.barfile import load_bar_file

    # The bad value sits on line 5 of the CSV (header line 1), among another symbol's rows: the
    # error names the file's line, not the row's place among the chosen symbol's bars.
    rows = ["Date,Symbol,Open,High,Low,Close"]
    rows += [f"2024-03-{d:02d},{s},10,11,9,10" for d in range(1, 4) for s in ("ABC", "XYZ")]
    rows[4] = "2024-03-02,XYZ,10,11,9,nan"
    (tmp_path / "two.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(InvalidInputError, match=r"column 'Close', line 5: nan is not a positive"):
        load_bar_file(tmp_path / "two.csv", symbol="XYZ")
    assert load_bar_file(tmp_path / "two.csv", symbol="ABC").close.tolist() == [10.0] * 3
    # Times that go back: both times shown; a Parquet file's rows are counted from 1.
    frame = pd.read_csv(write_bars(tmp_path / "ABC.csv"))
    frame.loc[4, "Date"] = "2024-03-01"
    frame.to_parquet(tmp_path / "ABC.parquet")
    with pytest.raises(
        InvalidInputError, match=r"'Date', row 5: times must increase \('2024-03-01' is not after"
    ):
        load_bar_file(tmp_path / "ABC.parquet")


def test_an_existing_journal_is_refused_not_appended_to(tmp_path):
    bars = write_bars(tmp_path / "ABC.csv")
    journal = tmp_path / "bt.duckdb"
    run_backtest(bars, SmaCross(fast=2, slow=3), journal_path=journal)
    with pytest.raises(InvalidInputError, match="already exists"):
        run_backtest(bars, SmaCross(fast=2, slow=3), journal_path=journal)


@pytest.mark.parametrize(
    ("field", "value"),
    [("close", "2.0"), ("close", float("nan")), ("high", None), ("volume", [5]), ("start", True)],
)
def test_a_bar_whose_prices_or_times_are_not_finite_numbers_is_refused_naming_them(field, value):
    # Bars are stored as their reducer built them (fresh_values), so it checks them: a bad one
    # is refused whole, the store unchanged, the error naming the fields it expects.
    from tradelab.engine.store import build_store
    from tradelab.errors import StateError
    from tradelab.events import Event

    store = build_store()
    bar = {"symbol": "ABC", "interval": "1m", "start": 0, "end": 60, "open": 1.0, "high": 2.0}
    bar |= {"low": 1.0, "close": 2.0, "volume": 5, "ticks": 3, "mark": True}
    store.apply(Event(1, 10, "market.bar", "ABC", bar))
    before = store.state_hash()
    with pytest.raises(StateError, match="must be finite numbers|finite close and an int start"):
        store.apply(Event(2, 20, "market.bar", "ABC", bar | {field: value}))
    assert (store.version, store.state_hash()) == (1, before)


def test_a_mark_price_that_is_not_finite_is_refused_before_it_reaches_a_position():
    from tradelab.engine.store import build_store
    from tradelab.errors import StateError
    from tradelab.events import Event

    store = build_store()
    fill = {"fill_seq": 1, "trade_id": "T1", "order_id": "O1", "symbol": "ABC", "side": "BUY"}
    fill |= {"quantity": 1, "price": 10.0, "fee": 0.0, "ts": 1, "strategy": "s", "lot_size": 1}
    fill["position_id"] = "s:ABC"
    store.apply(Event(1, 10, "trade.executed", "T1", fill))
    before = store.state_hash()
    with pytest.raises(StateError, match="mark price for ABC must be finite"):
        store.apply(Event(2, 20, "mark.updated", "ABC", {"symbol": "ABC", "price": "nan"}))
    assert (store.version, store.state_hash()) == (1, before)
    store.apply(Event(2, 20, "mark.updated", "ABC", {"symbol": "ABC", "price": 12.0}))
    assert store.get("pnl.unrealized") == 2.0


def test_sma_cross_says_when_the_run_never_filled_its_slow_average(tmp_path, caplog):
    bars = write_bars(tmp_path / "ABC.csv")  # 10 bars
    with caplog.at_level("WARNING", logger="tradelab.strategy"):
        run_backtest(bars, SmaCross(fast=2, slow=3))
    assert not [r for r in caplog.records if "never had" in r.getMessage()]
    with caplog.at_level("WARNING", logger="tradelab.strategy"):
        result = run_backtest(bars, SmaCross(fast=5, slow=12))
    assert not result.fills
    [warning] = [r.getMessage() for r in caplog.records if "never had" in r.getMessage()]
    assert "the 12 bars" in warning and "at most 10 bars of ABC 1d" in warning


def test_sma_cross_with_fast_not_below_slow_is_refused_before_anything_runs(tmp_path):
    from click.testing import CliRunner

    from tradelab.cli import main as cli

    with pytest.raises(InvalidInputError, match="fast 30 must be less than slow 30"):
        SmaCross(fast=30, slow=30)
    bars = write_bars(tmp_path / "ABC.csv")
    args = ["backtest", str(bars), "--strategy", "sma_cross", "--param", "fast=50"]
    out = CliRunner().invoke(cli, [*args, "--journal", str(tmp_path / "j.duckdb")])
    assert out.exit_code == 2 and "fast 50 must be less than slow 30" in out.stderr
    assert not (tmp_path / "j.duckdb").exists()
    # A value out of a parameter's own bounds: a usage error too, not a traceback.
    args = ["backtest", str(bars), "--strategy", "sma_cross", "--param", "size=0"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 2
    assert "parameter 'size' of strategy 'sma_cross' must be at least 1, not 0" in out.stderr


def test_a_dataframe_is_refused_saying_to_save_it_and_run_backtest_is_where_strategy_is():
    from tradelab.runner import Strategy  # noqa: F401 (beside it, as a notebook imports them)
    from tradelab.runner import run_backtest as exported

    with pytest.raises(InvalidInputError, match=r"not a DataFrame; save a DataFrame first"):
        exported(pd.DataFrame({"Close": [1.0]}), SmaCross())


class OrdersFromAThread(Strategy):
    def on_start(self, ctx):
        self.refusals = []

    def on_bar(self, ctx, bar):
        import threading

        from tradelab.errors import InvalidOrderError

        def buy():
            try:
                ctx.buy(bar["symbol"], 1)
            except InvalidOrderError as exc:
                self.refusals.append(str(exc))

        side = threading.Thread(target=buy, name="side")
        side.start()
        side.join()


def test_a_context_used_from_another_thread_is_refused_naming_the_thread(tmp_path):
    strategy = OrdersFromAThread()
    result = run_backtest(write_bars(tmp_path / "ABC.csv"), strategy)
    assert result.fills == [] and len(strategy.refusals) == 10
    assert "ctx.place_order called on thread 'side'" in strategy.refusals[0]
