"""Backtests through the live path: sma_cross on a small bar file whose crossovers are worked out
by hand below, the next-open fill model, P&L at the last close, and replay determinism."""

import json

import pandas as pd
import param
import pytest

from tradelab.errors import InvalidInputError
from tradelab.journal import JournalReader
from tradelab.runner import SmaCross, Strategy, trades_frame
from tradelab.runner.backtest import content_hash, run_backtest

# fast=2, slow=3 SMAs of the closes, bar by bar (diff = fast - slow):
#  bar  close  fast   slow    diff
#   2    10    10.5   10.33   +0.17   first bar with both SMAs: no previous diff, no signal
#   3     9     9.5   10.00   -0.50   + -> -  cross DOWN: sell 1 (short), fills at bar 4 open 8.5
#   4     8     8.5    9.00   -0.50
#   5    11     9.5    9.33   +0.17   - -> +  cross UP: buy 2 (close short, go long 1), bar 6 open 12
#   6    13    12.0   10.67   +1.33
#   7    12    12.5   12.00   +0.50
#   8     9    10.5   11.33   -0.83   + -> -  cross DOWN: sell 2 (close long, go short 1), bar 9 open 8.8
#   9     8     8.5    9.67   -1.17   last bar: the short is valued at its close, 8
CLOSES = [10, 11, 10, 9, 8, 11, 13, 12, 9, 8]
OPENS = [10, 10.5, 10.8, 9.5, 8.5, 9, 12, 12.5, 11, 8.8]


def write_bars(path, closes=CLOSES, opens=OPENS):
    lines = ["Date,Open,High,Low,Close,Volume"]
    for day, (o, c) in enumerate(zip(opens, closes, strict=True), start=1):
        lines.append(f"2024-03-{day:02d},{o},{max(o, c)},{min(o, c)},{c},1000")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sma_cross_trades_the_hand_computed_crossovers_at_the_next_open(tmp_path):
    bars = write_bars(tmp_path / "ABC.csv")
    result = run_backtest(
        bars, SmaCross(fast=2, slow=3, size=1), journal_path=tmp_path / "bt.duckdb", cash=10_000
    )
    assert result.symbol == "ABC" and result.bars == 10 and result.interval == "1d"
    fills = [(f["side"], f["quantity"], f["price"]) for f in result.fills]
    assert fills == [("SELL", 1, 8.5), ("BUY", 2, 12.0), ("SELL", 2, 8.8)]
    # Short 8.5 -> 12 loses 3.5; long 12 -> 8.8 loses 3.2; short from 8.8 marked at 8 gains 0.8.
    assert result.realized_pnl == pytest.approx(-6.7)
    assert result.unrealized_pnl == pytest.approx(0.8)
    assert result.final_equity == pytest.approx(10_000 - 6.7 + 0.8)
    assert result.open_positions == {"ABC": -1}
    trips = [(t["direction"], t["entry_price"], t["exit_price"]) for t in result.trades]
    assert trips == [("SHORT", 8.5, 12.0), ("LONG", 12.0, 8.8)]
    # The trades table is read back from the journal.
    assert list(trades_frame(tmp_path / "bt.duckdb")["net_pnl"]) == pytest.approx([-3.5, -3.2])
    # Each cross is also the symbol's signal, with both averages of the table above.
    signals = [
        (e.key, e.payload["direction"], e.payload["fast_sma"], e.payload["slow_sma"])
        for e in JournalReader(tmp_path / "bt.duckdb").events(topic="signal.detected")
    ]
    assert signals == [
        ("sma_cross-ABC", "short", 9.5, 10.0),
        ("sma_cross-ABC", "long", 9.5, pytest.approx(9.3333333)),
        ("sma_cross-ABC", "short", 10.5, pytest.approx(11.3333333)),
    ]


def test_commission_is_a_fraction_of_traded_value(tmp_path):
    bars = write_bars(tmp_path / "ABC.csv")
    result = run_backtest(bars, SmaCross(fast=2, slow=3, size=1), commission=0.01)
    assert result.fees == pytest.approx(0.085 + 0.24 + 0.176)
    assert result.final_equity == pytest.approx(1_000_000 - 6.7 + 0.8 - result.fees)


def test_a_flat_fee_per_fill_is_charged_beside_the_commission(tmp_path):
    from click.testing import CliRunner

    from tradelab.cli import main as cli

    bars = write_bars(tmp_path / "ABC.csv")
    result = run_backtest(bars, SmaCross(fast=2, slow=3, size=1), commission=0.01, fee_per_fill=20)
    # Three fills: 20 each, plus 1 % of 8.5 x 1, 12 x 2 and 8.8 x 2 (exact: a plain instrument's
    # fee is not rounded to paise).
    assert result.fees == pytest.approx(20.085 + 20.24 + 20.176)
    assert result.final_equity == pytest.approx(1_000_000 - 6.7 + 0.8 - result.fees)
    args = ["backtest", str(bars), "--strategy", "sma_cross", "--param", "fast=2"]
    out = CliRunner().invoke(cli, [*args, "--param", "slow=3", "--fee-per-fill", "20", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["fees"] == pytest.approx(60.0)
    for bad in (float("nan"), -1.0):
        with pytest.raises(InvalidInputError, match="fee_per_fill .* must be a finite amount"):
            run_backtest(bars, SmaCross(fast=2, slow=3, size=1), fee_per_fill=bad)
    refused = CliRunner().invoke(cli, [*args, "--param", "slow=3", "--fee-per-fill", "-5"])
    assert refused.exit_code == 2 and "--fee-per-fill" in refused.output


def test_same_inputs_give_the_same_journal_content_hash(tmp_path):
    bars = write_bars(tmp_path / "ABC.csv")
    hashes = []
    for run in range(2):
        journal = tmp_path / f"run{run}.duckdb"
        result = run_backtest(bars, SmaCross(fast=2, slow=3, size=1), journal_path=journal)
        assert result.content_hash == content_hash(journal)
        hashes.append(result.content_hash)
    assert hashes[0] == hashes[1]
    other = run_backtest(bars, SmaCross(fast=2, slow=4, size=1))
    assert other.content_hash != hashes[0]


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


def test_the_synchronous_and_the_threaded_path_give_the_same_trades_and_journal(tmp_path):
    # Synchronous (the default): kernel inline, runner unthreaded, all on the caller's thread.
    # Threaded: the live arrangement. Same strategy code, same journal content.
    import random

    rng = random.Random(5)
    closes = [100.0]
    for _ in range(399):
        closes.append(round(closes[-1] * (1 + rng.gauss(0, 0.01)), 2))
    opens = [closes[0], *(round(c * (1 + rng.gauss(0, 0.002)), 2) for c in closes[:-1])]
    lines = ["Date,Open,High,Low,Close"]
    for i, (o, c) in enumerate(zip(opens, closes, strict=True)):
        lines.append(
            f"2024-01-02T{9 + i // 60:02d}:{i % 60:02d}:00+05:30,{o},{max(o, c)},{min(o, c)},{c}"
        )
    bars = tmp_path / "XYZ.csv"
    bars.write_text("\n".join(lines) + "\n")
    runs = {
        sync: run_backtest(
            bars, SmaCross(fast=3, slow=8, size=2), synchronous=sync, commission=0.001
        )
        for sync in (True, False)
    }
    sync, threaded = runs[True], runs[False]
    assert len(sync.fills) >= 10
    assert sync.fills == threaded.fills
    assert sync.trades == threaded.trades
    assert (sync.realized_pnl, sync.unrealized_pnl, sync.fees, sync.final_equity) == (
        threaded.realized_pnl,
        threaded.unrealized_pnl,
        threaded.fees,
        threaded.final_equity,
    )
    assert sync.content_hash == threaded.content_hash


def test_each_bar_is_one_journaled_event_that_also_marks_and_the_fold_agrees(tmp_path):
    # A backtest's bar carries the mark ("mark": true) instead of a mark.updated beside it; the
    # journal alone still rebuilds the marks and the unrealized P&L valued at the last close.
    from tradelab.engine.store import build_store
    from tradelab.journal import JournalReader

    bars = write_bars(tmp_path / "ABC.csv")
    journal = tmp_path / "bt.duckdb"
    result = run_backtest(bars, SmaCross(fast=2, slow=3, size=1), journal_path=journal)
    reader = JournalReader(journal)
    counts = reader.counts_by_topic()
    assert counts["market.bar"] == 10 and "mark.updated" not in counts
    store = build_store()
    for event in reader.events():
        store.apply(event)
    assert store.get("market.marks.ABC")["price"] == 8
    assert store.get("pnl.unrealized") == pytest.approx(result.unrealized_pnl)
    assert store.get("pnl.unrealized") == pytest.approx(0.8)
    (position,) = [p for p in store.get("trading.positions").values() if p["net_quantity"]]
    assert (position["net_quantity"], position["mark"]) == (-1, 8.0)


def test_a_live_bar_without_the_mark_flag_leaves_marks_and_positions_alone():
    # Live bars come from the aggregator and do not carry the mark: their marks are the feed's.
    from tradelab.engine.store import build_store
    from tradelab.events import Event

    store = build_store()
    bar = {"symbol": "ABC", "interval": "1m", "start": 0, "end": 60, "open": 1.0, "high": 2.0}
    bar |= {"low": 1.0, "close": 2.0, "volume": 5, "ticks": 3}
    store.apply(Event(1, 10, "mark.updated", "ABC", {"symbol": "ABC", "price": 1.5}))
    store.apply(Event(2, 20, "market.bar", "ABC", bar))
    assert store.get("market.marks.ABC")["price"] == 1.5
    store.apply(Event(3, 30, "market.bar", "ABC", bar | {"start": 60, "end": 120, "mark": True}))
    assert store.get("market.marks.ABC") == {
        "price": 2.0,
        "bid": 2.0,
        "ask": 2.0,
        "last": 2.0,
        "ts": 60,
    }


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


def test_analytics_value_a_backtest_at_its_bars_closes(tmp_path):
    # The bars carry the marks: the analytics' marks and equity curve read them from there.
    from tradelab.analytics import Analytics

    bars = write_bars(tmp_path / "ABC.csv")
    journal = tmp_path / "bt.duckdb"
    result = run_backtest(bars, SmaCross(fast=2, slow=3, size=1), journal_path=journal)
    analytics = Analytics(journal)
    marks = analytics.sql("SELECT price FROM marks WHERE symbol = 'ABC' ORDER BY seq")
    assert list(marks["price"]) == CLOSES
    equity = analytics.sql("SELECT net, unrealized FROM equity ORDER BY seq")
    assert equity["net"].iloc[-1] == pytest.approx(result.final_equity - result.cash)
    assert equity["unrealized"].iloc[-1] == pytest.approx(0.8)


def test_a_fill_payload_has_every_field_in_order_with_the_side_as_text():
    # Fill.to_payload is written out field by field (the journal's JSON keeps the key order):
    # a field added to Fill must reach the payload too.
    from dataclasses import fields

    from tradelab.trading.orders import Fill, Side

    fill = Fill(3, "T3", "O3", "B3", "ABC", Side.SELL, 2, 101.5, 0.25, 7, "sma_cross", 1)
    payload = fill.to_payload()
    assert list(payload) == [f.name for f in fields(Fill)]
    assert payload["side"] == "SELL" and type(payload["side"]) is str
    assert payload == {f.name: getattr(fill, f.name) for f in fields(Fill)} | {"side": "SELL"}


# The content hash of the hand-computed run above with a commission: every trading event's
# topic, key and payload, in seq order. Changing what a backtest journals (a payload's fields,
# their order, an event more or less a bar) must be deliberate: update it and say why.
# Last changed: a plain instrument's fee is the exact commission, no longer rounded to paise per
# fill, so the three fills' `fee` (0.01 -> 0.0085, 0.02 -> 0.024, 0.02 -> 0.0176) and the
# P&L net of fees moved; prices and quantities are unchanged.
PINNED_CONTENT_HASH = "18b604a0a9bb2eb8caa977ea58ee7fb7abcc84598110d52d9f2c638bac98c465"


def test_the_journal_of_the_hand_computed_run_has_the_pinned_content(tmp_path):
    bars = write_bars(tmp_path / "ABC.csv")
    result = run_backtest(bars, SmaCross(fast=2, slow=3, size=1), commission=0.001)
    assert len(result.fills) == 3 and result.fees > 0
    assert result.content_hash == PINNED_CONTENT_HASH


def test_a_backtest_journal_verifies_and_its_final_state_is_the_fold_of_it(tmp_path):
    # `tradelab verify`: the snapshot the engine took of its live state on stop equals the
    # replay of every event before it, and recovery (snapshot + tail) equals a full replay.
    from tradelab.journal.verify import verify_journal

    bars = write_bars(tmp_path / "ABC.csv")
    journal = tmp_path / "bt.duckdb"
    run_backtest(bars, SmaCross(fast=2, slow=3, size=1), journal_path=journal, commission=0.001)
    result = verify_journal(journal)
    assert result.ok, result.lines
    assert any("state equals full replay" in line for line in result.lines)


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


class _RaisesOnFifthBar(SmaCross):
    """sma_cross until its fifth bar, where it raises as a strategy with a bug would."""

    strategy_name = "raises_on_fifth_bar"

    def on_bar(self, ctx, bar):
        self._seen = getattr(self, "_seen", 0) + 1
        if self._seen == 5:
            raise ZeroDivisionError("division by zero")
        super().on_bar(ctx, bar)


def test_a_strategy_that_raises_ends_its_backtest_as_a_failure_not_a_result(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tradelab.cli import main as cli
    from tradelab.runner import examples

    bars = write_bars(tmp_path / "ABC.csv")
    result = run_backtest(bars, _RaisesOnFifthBar(fast=2, slow=3))
    assert result.failed_strategies == {
        "raises_on_fifth_bar": "on_bar raised ZeroDivisionError: division by zero"
    }
    # The one fill placed before (bar 3's cross, filled at bar 4's open) is still reported.
    assert [(f["side"], f["price"]) for f in result.fills] == [("SELL", 8.5)]
    assert run_backtest(bars, SmaCross(fast=2, slow=3)).failed_strategies == {}
    # The command prints what there is, then fails with exit code 4 naming the strategy.
    monkeypatch.setitem(examples.STRATEGIES, "raises_on_fifth_bar", _RaisesOnFifthBar)
    args = ["backtest", str(bars), "--strategy", "raises_on_fifth_bar", "--param", "fast=2"]
    for extra, shown in (([], "final equity"), (["--json"], '"failed_strategies": {"raises')):
        out = CliRunner().invoke(cli, [*args, "--param", "slow=3", *extra])
        assert out.exit_code == 4, (out.output, out.stderr)
        assert shown in out.stdout
        assert "strategy raises_on_fifth_bar failed: on_bar raised ZeroDivisionError" in out.stderr


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
    assert out.exit_code == 2 and "strategy 'sma_cross':" in out.stderr
    assert "'SmaCross.size' must be at least 1, not 0" in out.stderr


def test_a_kept_backtest_plots_its_fills_equity_and_drawdown_a_temporary_one_says_why_not(tmp_path):
    import holoviews as hv

    bars = write_bars(tmp_path / "ABC.csv")
    kept = run_backtest(bars, SmaCross(fast=2, slow=3), journal_path=tmp_path / "bt.duckdb")
    price, equity, drawdown = kept.plot()
    assert isinstance(price, hv.Overlay) and price.opts.get().kwargs["title"] == "Fills on ABC"
    buys, sells = price.get(1), price.get(2)
    assert (len(buys), len(sells)) == (1, 2)  # the hand-computed fills: one buy, two sells
    assert isinstance(equity, hv.Curve) and isinstance(drawdown, hv.Area)
    with pytest.raises(InvalidInputError, match="journal was temporary.*journal_path="):
        run_backtest(bars, SmaCross(fast=2, slow=3)).plot()


def test_an_option_backtest_trades_whole_lots_as_a_session_does(tmp_path):
    from tradelab.runner import Strategy

    class OneLot(Strategy):
        strategy_name = "one_lot"
        quantity = param.Integer(default=75)

        def on_bar(self, ctx, bar):
            if not ctx.position(bar["symbol"]) and not ctx.working(bar["symbol"]):
                ctx.buy(bar["symbol"], self.quantity)

    option = "NIFTY25N1824000CE"
    lots = run_backtest("data/nifty_sample_1m.csv", OneLot(), symbol=option)
    assert lots.fills[0]["quantity"] == 75  # one lot of NIFTY, bought at the next open
    units = run_backtest("data/nifty_sample_1m.csv", OneLot(quantity=1), symbol=option)
    assert not units.fills and "not a multiple of lot size 75" in units.failed_strategies["one_lot"]


def test_a_stocks_short_margin_is_on_the_price_it_sells_at_not_a_later_high(tmp_path):
    from tradelab.runner import Strategy

    class ShortOnce(Strategy):
        strategy_name = "short_once"

        def on_bar(self, ctx, bar):
            if not ctx.position("GROW") and not ctx.working("GROW"):
                ctx.sell("GROW", 100)

    # 10 rising to 1000: margin on the file's high (100 x 1000 x 0.12 = 12,000) would refuse
    # the short that 5,000 of cash carries at today's price (100 x 10 x 0.12 = 120).
    path = tmp_path / "GROW.csv"
    closes = [10.0 * 1.05**i for i in range(100)] + [1000.0]
    write_bars_from(path, closes)
    result = run_backtest(path, ShortOnce(), cash=5_000)
    assert [(f["side"], f["quantity"]) for f in result.fills][:1] == [("SELL", 100)]


def write_bars_from(path, closes):
    lines = ["Date,Open,High,Low,Close"]
    day = pd.Timestamp("2024-01-01")
    for close in closes:
        lines.append(f"{day:%Y-%m-%d},{close},{close},{close},{close}")
        day += pd.Timedelta(days=1)
    path.write_text("\n".join(lines) + "\n")


def test_a_dataframe_is_refused_saying_to_save_it_and_run_backtest_is_where_strategy_is():
    from tradelab.runner import Strategy  # noqa: F401 (beside it, as a notebook imports them)
    from tradelab.runner import run_backtest as exported

    with pytest.raises(InvalidInputError, match=r"not a DataFrame; save a DataFrame first"):
        exported(pd.DataFrame({"Close": [1.0]}), SmaCross())


def test_a_journal_scan_hands_over_every_row_of_a_query_in_bounded_batches(tmp_path):
    from tradelab.journal import JournalReader

    journal = tmp_path / "bt.duckdb"
    run_backtest(write_bars(tmp_path / "ABC.csv"), SmaCross(fast=2, slow=3), journal_path=journal)
    reader, batches = JournalReader(journal), []
    sql = "SELECT seq, topic FROM events ORDER BY seq"
    reader.scan(sql, batches.append, batch_rows=7)
    assert [row for batch in batches for row in batch] == reader.query(sql)
    assert len(batches) > 1 and all(len(batch) <= 7 for batch in batches)


class BuyOnFirstBar(Strategy):
    def on_start(self, ctx):
        self.bought = False

    def on_bar(self, ctx, bar):
        if not self.bought:
            self.bought = True
            ctx.buy(bar["symbol"], 1)


def test_a_bars_close_counts_in_its_own_days_pnl_and_the_bar_length_is_the_smallest_gap(
    tmp_path,
):
    from tradelab.analytics import Analytics

    # 1-minute bars with minutes missing (an illiquid contract): the gaps are 1, 2, 3 minutes
    # and a night. Bought at 100 (the 15:28 open), the 15:29 close is 110: +10 on day one.
    rows = [
        ("2024-01-02 15:25", 100, 100),
        ("2024-01-02 15:26", 100, 100),
        ("2024-01-02 15:28", 100, 100),
        ("2024-01-02 15:29", 100, 110),
        ("2024-01-03 09:15", 110, 110),
        ("2024-01-03 09:17", 110, 110),
    ]
    path = tmp_path / "ABC.csv"
    path.write_text(
        "Date,Open,High,Low,Close\n"
        + "".join(f"{t},{o},{max(o, c)},{min(o, c)},{c}\n" for t, o, c in rows)
    )
    journal = tmp_path / "bt.duckdb"
    result = run_backtest(path, BuyOnFirstBar(), journal_path=journal)
    assert result.interval == "1m"
    assert [(f["side"], f["price"]) for f in result.fills] == [("BUY", 100.0)]
    bars = [e.payload for e in JournalReader(journal).events(topic="market.bar")]
    assert [b["end"] - b["start"] for b in bars] == [60_000_000_000] * len(rows)
    daily = Analytics(journal).sql("SELECT CAST(date AS VARCHAR) AS date, net FROM daily_pnl")
    assert dict(zip(daily.date, daily.net, strict=True)) == {
        "2024-01-02": 10.0,
        "2024-01-03": 0.0,
    }


def test_a_daily_bar_ends_on_its_own_date(tmp_path):
    path = tmp_path / "ABC.csv"
    write_bars_from(path, [10, 11, 12])
    journal = tmp_path / "bt.duckdb"
    result = run_backtest(path, BuyOnFirstBar(), journal_path=journal)
    assert result.interval == "1d"
    from tradelab.market.clock import ist_date

    for bar in (e.payload for e in JournalReader(journal).events(topic="market.bar")):
        assert ist_date(bar["end"]) == ist_date(bar["start"])


class SellAtLimit(Strategy):
    limit = param.Number(default=106.5)

    def on_start(self, ctx):
        self.step = 0

    def on_bar(self, ctx, bar):
        self.step += 1
        if self.step == 1:
            ctx.buy(bar["symbol"], 10)
        elif self.step == 2:
            ctx.sell(bar["symbol"], 10, order_type="LIMIT", limit_price=self.limit)


@pytest.mark.parametrize(
    ("limit", "filled_at"),
    [(106.5, 106.5), (105.5, 106.0)],  # passed between open and close; beaten by the open
    ids=["passed-inside-the-bar", "gapped-at-the-open"],
)
def test_a_resting_limit_fills_at_its_limit_when_the_bar_passes_it(tmp_path, limit, filled_at):
    path = tmp_path / "ABC.csv"
    path.write_text(
        "Date,Open,High,Low,Close\n"
        "2024-01-01,100,100,100,100\n"
        "2024-01-02,100,105,100,105\n"  # bought 10 at this open; the limit is placed at 105
        "2024-01-03,106,108,106,107\n"
        "2024-01-04,107,107,107,107\n"
    )
    result = run_backtest(path, SellAtLimit(limit=limit))
    assert [(f["side"], f["price"]) for f in result.fills] == [("BUY", 100.0), ("SELL", filled_at)]
    assert result.realized_pnl == pytest.approx(10 * (filled_at - 100.0))


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


def test_the_trades_export_as_csv_with_ist_times_as_the_trades_view_has_them(tmp_path):
    from tradelab.analytics import Analytics
    from tradelab.runner import export_trades_csv

    journal = tmp_path / "bt.duckdb"
    run_backtest(write_bars(tmp_path / "ABC.csv"), SmaCross(fast=2, slow=3), journal_path=journal)
    csv = tmp_path / "trades.csv"
    assert export_trades_csv(journal, csv) == 2
    exported = pd.read_csv(csv, parse_dates=["opened_time", "closed_time"])
    view = Analytics(journal).sql("SELECT opened_time, closed_time FROM trades ORDER BY closed_ts")
    assert exported.opened_time.tolist() == view.opened_time.tolist()
    assert exported.closed_time.tolist() == view.closed_time.tolist()


class BuysOnce(Strategy):
    quantity = param.Integer(default=1)

    def on_start(self, ctx):
        self.done = False

    def on_bar(self, ctx, bar):
        if not self.done:
            self.done = True
            ctx.buy(bar["symbol"], self.quantity)


def test_open_positions_sum_every_strategys_units_in_a_symbol(tmp_path):
    # Positions are per strategy: the symbol's figure kept only the last strategy's units.
    bars = write_bars(tmp_path / "ABC.csv")
    result = run_backtest(bars, [BuysOnce(name="a", quantity=1), BuysOnce(name="b", quantity=2)])
    assert result.open_positions == {"ABC": 3}
    assert result.open_positions_by_strategy == {"a:ABC": 1, "b:ABC": 2}
    assert result.unrealized_pnl == pytest.approx(3 * (CLOSES[-1] - OPENS[1]))
    assert json.loads(json.dumps(result.to_dict()))["open_positions"] == {"ABC": 3}
