"""What a notebook hands the Python API: numpy numbers, Paths, classes, parameters and settings."""

import numpy as np
import param
import pytest

from tests.test_backtest import write_bars
from tradelab.errors import InvalidInputError
from tradelab.lab import Lab
from tradelab.lab_config import LabConfig, apply_settings
from tradelab.runner import SmaCross
from tradelab.runner.backtest import run_backtest
from tradelab.runner.monitor import PositionMonitor
from tradelab.runner.strategy import Strategy, checked_strategies
from tradelab.trading.orders import check_price, check_quantity


def test_numpy_numbers_are_quantities_and_prices():
    assert check_quantity(np.int64(150), 75, "X") == 150
    assert check_quantity(np.float64(75.0), 75, "X") == 75
    assert check_price(np.float32(1.5), "limit price", "X") == 1.5
    with pytest.raises(InvalidInputError, match="not a number"):
        check_quantity("75", 75, "X")
    with pytest.raises(InvalidInputError, match="not a whole number"):
        check_quantity(np.float64(7.5), 1, "X")


def test_a_text_exit_level_is_refused_by_name():
    monitor = PositionMonitor.__new__(PositionMonitor)  # set_exit checks before any state
    with pytest.raises(InvalidInputError, match="stop '100' for position s:X"):
        monitor.set_exit("s:X", stop="100")


@pytest.mark.parametrize(
    ("strategy", "settings", "message"),
    [
        (SmaCross, {}, "is a class; pass an instance"),
        ("sma_cross", {}, "make_strategy"),
        ([], {}, "no strategy to backtest"),
        ([SmaCross(), SmaCross()], {}, "two strategies are named 'sma_cross'"),
        (SmaCross(), {"cash": -1000}, "cash -1000"),
        (SmaCross(), {"commission": "0.001"}, "commission '0.001'"),
        (SmaCross(), {"fee_per_fill": "20"}, "fee_per_fill '20'"),
        (SmaCross(), {"progress": 5}, "progress 5"),
        (SmaCross(), {"engine_overrides": {"nope": 1}}, "no setting 'nope'"),
        (SmaCross(), {"symbol": 5}, "symbol 5 must be text"),
    ],
)
def test_refused_backtest_arguments_leave_no_journal(tmp_path, strategy, settings, message):
    bars = write_bars(tmp_path / "ABC.csv")
    journal = tmp_path / "bt.duckdb"
    with pytest.raises(InvalidInputError, match=message):
        run_backtest(bars, strategy, journal_path=journal, **settings)
    assert not journal.exists()
    # The corrected call is not refused for a journal the refused one left behind.
    assert run_backtest(bars, SmaCross(fast=2, slow=3), journal_path=journal).bars == 10


class FailsOnStop(Strategy):
    strategy_name = "fails_on_stop"

    def on_stop(self, ctx):
        raise ValueError("stop broke")


def test_a_strategy_failing_in_on_stop_is_reported(tmp_path):
    result = run_backtest(write_bars(tmp_path / "ABC.csv"), FailsOnStop())
    assert "stop broke" in result.failed_strategies["fails_on_stop"]


def test_lab_overrides_leave_the_callers_config_as_it_was(tmp_path):
    # They were written into it: the notebook's next Lab from the same config ran another seed.
    mine = LabConfig(journal_path=str(tmp_path / "a.duckdb"), strategy="none", seed=7)
    lab = Lab(mine, seed=11, journal_path=tmp_path / "b.duckdb")
    assert (lab.config.seed, lab.config.journal_path) == (11, str(tmp_path / "b.duckdb"))
    assert (mine.seed, mine.journal_path) == (7, str(tmp_path / "a.duckdb"))
    assert Lab(mine).config is mine  # no overrides: the config given is the Lab's

    class Noted(LabConfig):  # a notebook's own settings beside the Lab's
        notes = param.String(default="")

    noted = Noted(journal_path=str(tmp_path / "c.duckdb"), strategy="none", notes="trial 3")
    copy = Lab(noted, seed=12).config
    assert type(copy) is Noted and (copy.notes, copy.seed, noted.seed) == ("trial 3", 12, 7)


def test_lab_settings_take_a_path_and_refuse_by_name(tmp_path):
    cfg = LabConfig()
    apply_settings(cfg, {"journal_path": tmp_path / "lab.duckdb", "seed": 3})
    assert cfg.journal_path == str(tmp_path / "lab.duckdb") and cfg.seed == 3
    with pytest.raises(InvalidInputError, match="no setting 'sped'"):
        apply_settings(cfg, {"sped": 2.0})
    with pytest.raises(InvalidInputError, match="speed"):
        apply_settings(cfg, {"seed": 4, "speed": -5})
    assert cfg.seed == 3  # all or nothing
    with pytest.raises(InvalidInputError, match="is a class"):
        Lab(journal_path=tmp_path / "x.duckdb", strategies=[SmaCross])


def test_lab_takes_an_empty_strategy_list_as_none(tmp_path):
    assert Lab(journal_path=tmp_path / "lab.duckdb", strategies=[]).strategies == []


def test_lab_takes_one_strategy_and_waits_for_a_quote(tmp_path):
    lab = Lab(journal_path=tmp_path / "lab.duckdb", strategies=SmaCross(), speed=600.0).start()
    try:
        assert list(lab.runner.strategies) == ["sma_cross"]
        contract = lab.feed.contracts[2]
        assert lab.wait_for_quote(contract.symbol)["price"] > 0
        lot = lab.feed.universe.lot_size(contract)
        assert lab.place_order(contract.symbol, "BUY", np.int64(lot), strategy="demo")
        with pytest.raises(Exception, match="no quote of 'NOPE'"):
            lab.wait_for_quote("NOPE", timeout=0.05)
    finally:
        lab.stop()


def test_instrument_lot_size_takes_a_symbol_and_refuses_other_values_by_name():
    from tradelab.runner.instruments import InstrumentUniverse, PlainInstrument

    universe = InstrumentUniverse({"ABC": PlainInstrument("ABC", lot_size=5)})
    assert universe.lot_size("NIFTY25N1824000CE") == 75
    assert universe.lot_size("ABC") == 5
    with pytest.raises(InvalidInputError, match="'XYZ' is not traded here"):
        universe.lot_size("XYZ")
    with pytest.raises(InvalidInputError, match="contract None is not an instrument"):
        universe.lot_size(None)


class BuysOnStop(Strategy):
    strategy_name = "buys_on_stop"

    def on_stop(self, ctx):
        ctx.buy("ABC", 1)


def test_an_order_the_bars_ran_out_for_is_reported_unfilled(tmp_path):
    from tradelab.cli_backtest import backtest_report

    result = run_backtest(write_bars(tmp_path / "ABC.csv"), BuysOnStop())
    assert len(result.unfilled_orders) == 1 and not result.fills
    assert "1 order still working when the bars ran out, not filled" in backtest_report(result)


def test_short_straddle_sells_only_within_its_entry_window():
    import logging
    from datetime import datetime
    from types import SimpleNamespace

    from tradelab.market.instruments import IST, OptionUniverse
    from tradelab.runner import ShortStraddle

    sold: list[str] = []
    ctx = SimpleNamespace(
        positions=lambda: {},
        universe=OptionUniverse(),
        sell=lambda symbol, quantity: sold.append(symbol),
        signal=lambda name, **details: None,
        clear_signal=lambda name: False,
        active_signals=lambda: [],
        position=lambda symbol: 0,
        working=lambda symbol: -75,  # the legs sold are on their way
        log=logging.getLogger("test"),
        store=SimpleNamespace(get=lambda path, default=None: default),  # nothing sold before
    )
    straddle = ShortStraddle(entry_time="09:20", entry_window_minutes=10)
    straddle.on_start(ctx)

    def at(day: int, hour: int, minute: int) -> int:
        return int(datetime(2025, 11, day, hour, minute, tzinfo=IST).timestamp()) * 10**9

    straddle._step(ctx, "NIFTY", 24_010.0, at(12, 12, 17))  # started again at 12:17: too late
    assert sold == []
    straddle._step(ctx, "NIFTY", 24_010.0, at(13, 9, 25))  # the next day, inside the window
    assert [s[-2:] for s in sold] == ["CE", "PE"] and all("24000" in s for s in sold)


def test_a_parameter_change_to_bars_or_an_instrument_the_session_lacks_is_refused(tmp_path):
    lab = Lab(
        journal_path=tmp_path / "lab.duckdb",
        feed="replay",
        replay_path="data/nifty_sample_1m.csv",
        strategies=SmaCross(symbol="NIFTY", interval="1m"),
    ).start()
    try:
        with pytest.raises(InvalidInputError) as refused:
            lab.runner.set_params("sma_cross", {"symbol": "BANKNIFTY"})
        # An instrument is missing from the session's instruments, not from its bar intervals.
        assert "symbol='BANKNIFTY', which this session's instrument list (bar file " in str(
            refused.value
        )
        assert "lab.bar_intervals" not in str(refused.value)
        assert "does not have (it has NIFTY, " in str(refused.value)
        with pytest.raises(InvalidInputError, match=r"interval='5m', which this session \(bar"):
            lab.runner.set_params("sma_cross", {"interval": "5m"})
        assert lab.runner.set_params("sma_cross", {"fast": 5}) == {"fast": 5}  # one it has
        strategy = lab.runner.strategies["sma_cross"]
        assert (strategy.symbol, strategy.interval) == ("NIFTY", "1m")  # nothing else changed
        # A strategy added mid-session is checked as one the session started with.
        with pytest.raises(InvalidInputError, match="symbol='BANKNIFTY', which this session"):
            lab.runner.add(SmaCross(name="bn", symbol="BANKNIFTY"))
        with pytest.raises(InvalidInputError, match=r"interval='5m', which this session \(bar"):
            lab.runner.add(SmaCross(name="i5", symbol="NIFTY", interval="5m"))
        assert sorted(lab.runner.strategies) == ["sma_cross"]
    finally:
        lab.stop()


def test_a_simulated_session_refuses_an_underlying_it_does_not_simulate(tmp_path):
    lab = Lab(journal_path=tmp_path / "lab.duckdb", strategy="short_straddle").start()
    try:
        with pytest.raises(InvalidInputError) as refused:
            lab.runner.set_params("short_straddle", {"underlying": "BANKNIFTY"})
        assert (
            "underlying='BANKNIFTY', which this session's instrument list does not have "
            "(it has NIFTY, NIFTY25N" in str(refused.value)
        )
        assert "lab.bar_intervals" not in str(refused.value)
    finally:
        lab.stop()


def test_a_simulated_session_refuses_a_strategy_trading_the_index_it_only_quotes(tmp_path):
    # The simulated session quotes NIFTY (short_straddle reads it) but trades its options.
    with pytest.raises(InvalidInputError) as refused:
        Lab(journal_path=tmp_path / "lab.duckdb", strategies=SmaCross(symbol="NIFTY"))
    assert (
        "trades symbol='NIFTY', which this session quotes but does not trade (it trades NIFTY2"
        in (str(refused.value))
    )
    assert not (tmp_path / "lab.duckdb").exists()  # refused before the journal was opened
    Lab(journal_path=tmp_path / "ok.duckdb", strategy="short_straddle")  # reads NIFTY: fine


class ListsAndNone(Strategy):
    sizes = param.List(default=[1], item_type=int)
    band = param.Range(default=(1, 2))
    stop = param.Number(default=None, allow_None=True)
    note = param.String(default="x", allow_None=True)


def test_text_parameters_take_lists_ranges_and_none_as_a_command_line_gives_them():
    from tradelab.runner.strategy import coerce_params

    given = {"sizes": "3,4", "band": "[1, 5]", "stop": "none", "note": "none"}
    assert coerce_params(ListsAndNone, given) == {
        "sizes": [3, 4],
        "band": (1, 5),
        "stop": None,
        "note": "none",  # text stays text
    }
    with pytest.raises(InvalidInputError, match=r"'sizes'.*'\[3' is not a list such as 3,4"):
        coerce_params(ListsAndNone, {"sizes": "[3"})


class NumberAndBooleanChoices(Strategy):
    window = param.Selector(default=10, objects=[5, 10, 20])
    weight = param.Selector(default=0.5, objects=[0.5, 1.5])
    hedged = param.Selector(default=True, objects=[True, False])
    mode = param.Selector(default="yes", objects=["yes", "no"])


def test_text_parameters_pick_a_selector_choice_that_is_a_number_or_a_boolean():
    from tradelab.runner.strategy import coerce_params

    given = {"window": "20", "weight": "1.5", "hedged": "false", "mode": "no"}
    assert coerce_params(NumberAndBooleanChoices, given) == {
        "window": 20,
        "weight": 1.5,
        "hedged": False,
        "mode": "no",  # text choices are taken as written
    }
    assert coerce_params(NumberAndBooleanChoices, {"mode": "yes"}) == {"mode": "yes"}
    with pytest.raises(InvalidInputError, match=r"'window'.*'7' is not one of 5, 10, 20"):
        coerce_params(NumberAndBooleanChoices, {"window": "7"})
    with pytest.raises(InvalidInputError, match=r"'hedged'.*'1' is not one of True, False"):
        coerce_params(NumberAndBooleanChoices, {"hedged": "1"})


def test_a_replayed_daily_file_says_its_strategies_get_the_sessions_shorter_bars(caplog):
    from tradelab.market.bars import session_intervals

    cfg = ["15m", "1h"]
    assert session_intervals(cfg, 60) == ("1m", "15m", "1h")
    assert "not the file's own" not in caplog.text
    assert session_intervals(cfg, 86_400) == ("15m", "1h")
    assert "bars are 1 day long" in caplog.text and "15m, 1h bars" in caplog.text
    assert "tradelab backtest FILE" in caplog.text


def test_a_replayed_weekly_file_names_its_own_bar_length(tmp_path, caplog):
    # Its ticks are spread over a day's session, but its bars are a week long, not "1 day".
    from tradelab.lab import Lab

    rows = ["Date,Open,High,Low,Close"]
    rows += [f"2025-{m:02d}-{d:02d},100,101,99,100" for m, d in ((10, 6), (10, 13), (10, 20))]
    bars = tmp_path / "weekly.csv"
    bars.write_text("\n".join(rows) + "\n")
    Lab(
        journal_path=str(tmp_path / "w.duckdb"),
        feed="replay",
        replay_path=str(bars),
        strategy="none",
    )
    assert "bars are 7 days long" in caplog.text


def test_a_date_parameter_on_the_command_line_is_told_why_not_called_a_bad_number():
    import datetime as dt

    from tradelab.runner import Strategy
    from tradelab.runner.strategy import coerce_params

    class Dated(Strategy):
        strategy_name = "dated"
        day = param.CalendarDate(default=dt.date(2025, 1, 2))

    with pytest.raises(InvalidInputError, match=r"'day' of 'dated' is a date, which a journal"):
        coerce_params(Dated, {"day": "2025-01-02"})


def test_a_strategy_class_without_a_name_is_named_after_itself():
    # Two user classes used to share the default "strategy": run together they were refused
    # as a duplicate, and in the book one strategy's positions read as the other's.
    class MyBreakout(Strategy):
        pass

    class ORBFade(Strategy):
        pass

    class Named(Strategy):
        strategy_name = "mine"

    class Subnamed(Named):
        pass

    assert [MyBreakout().name, ORBFade().name, Named().name] == ["my_breakout", "orb_fade", "mine"]
    assert Subnamed().name == "subnamed"
    assert SmaCross().name == "sma_cross"

    assert [s.name for s in checked_strategies([MyBreakout(), ORBFade()])] == [
        "my_breakout",
        "orb_fade",
    ]


def test_a_command_lines_bad_number_names_the_strategy_as_the_console_does(tmp_path):
    # It named the file the strategy came from, in param's own words ("Integer parameter
    # 'P.n' must be at most 100, not 200.").
    from tradelab.runner import make_strategy

    path = tmp_path / "mine.py"
    path.write_text(
        "import param\nfrom tradelab.runner import Strategy\n\n"
        "class Mine(Strategy):\n    n = param.Integer(default=5, bounds=(1, 100))\n"
    )
    with pytest.raises(InvalidInputError) as info:
        make_strategy(f"{path}:Mine", {"n": "200"})
    assert str(info.value) == "parameter 'n' of strategy 'mine' must be at most 100, not 200"
    assert make_strategy(f"{path}:Mine", {"n": "7"}).n == 7
