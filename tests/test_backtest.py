"""Backtests through the live path: sma_cross's hand-computed run, its fees, journal and views."""

import json

import pandas as pd
import pytest

from tradelab.errors import InvalidInputError
from tradelab.journal import JournalReader
from tradelab.runner import SmaCross, trades_frame
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
    from tradelab.runner import strategy_names

    bars = write_bars(tmp_path / "ABC.csv")
    result = run_backtest(bars, _RaisesOnFifthBar(fast=2, slow=3))
    assert result.failed_strategies == {
        "raises_on_fifth_bar": "on_bar raised ZeroDivisionError: division by zero"
    }
    # The one fill placed before (bar 3's cross, filled at bar 4's open) is still reported.
    assert [(f["side"], f["price"]) for f in result.fills] == [("SELL", 8.5)]
    assert run_backtest(bars, SmaCross(fast=2, slow=3)).failed_strategies == {}
    # The command prints what there is, then fails with exit code 4 naming the strategy.
    monkeypatch.setitem(strategy_names.STRATEGIES, "raises_on_fifth_bar", _RaisesOnFifthBar)
    args = ["backtest", str(bars), "--strategy", "raises_on_fifth_bar", "--param", "fast=2"]
    for extra, shown in (([], "final equity"), (["--json"], '"failed_strategies": {"raises')):
        out = CliRunner().invoke(cli, [*args, "--param", "slow=3", *extra])
        assert out.exit_code == 4, (out.output, out.stderr)
        assert shown in out.stdout
        assert "strategy raises_on_fifth_bar failed: on_bar raised ZeroDivisionError" in out.stderr


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


def write_bars_from(path, closes):
    lines = ["Date,Open,High,Low,Close"]
    day = pd.Timestamp("2024-01-01")
    for close in closes:
        lines.append(f"{day:%Y-%m-%d},{close},{close},{close},{close}")
        day += pd.Timedelta(days=1)
    path.write_text("\n".join(lines) + "\n")


def test_a_journal_scan_hands_over_every_row_of_a_query_in_bounded_batches(tmp_path):
    from tradelab.journal import JournalReader

    journal = tmp_path / "bt.duckdb"
    run_backtest(write_bars(tmp_path / "ABC.csv"), SmaCross(fast=2, slow=3), journal_path=journal)
    reader, batches = JournalReader(journal), []
    sql = "SELECT seq, topic FROM events ORDER BY seq"
    reader.scan(sql, batches.append, batch_rows=7)
    assert [row for batch in batches for row in batch] == reader.query(sql)
    assert len(batches) > 1 and all(len(batch) <= 7 for batch in batches)


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
