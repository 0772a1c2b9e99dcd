"""What the analytics API answers about time, symbols and the chain on a backtest's journal."""

import numpy as np
import pandas as pd
import pytest

from tests.test_backtest import write_bars
from tradelab.analytics import Analytics, QueryError
from tradelab.errors import InvalidInputError
from tradelab.runner import SmaCross
from tradelab.runner.backtest import run_backtest


@pytest.fixture(scope="module")
def backtest_journal(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("asof")
    journal = tmp / "bt.duckdb"
    run_backtest(write_bars(tmp / "ABC.csv"), SmaCross(fast=2, slow=3), journal_path=journal)
    return Analytics(journal)


def test_seq_at_a_time_on_a_backtest_is_the_last_bar_closed_by_then(backtest_journal):
    a = backtest_journal
    bars = a.sql("SELECT seq, end_ts, close FROM bars ORDER BY seq")
    end_ts = bars.end_ts[3]  # a numpy integer, as read from the frame
    seq = a.seq_at(end_ts)
    assert seq == a.seq_at(int(end_ts)) == a.seq_at(float(end_ts))
    assert bars.seq[3] <= seq < bars.seq[4]
    store = a.state_at(ts=end_ts)
    assert store.get("market.marks.ABC")["price"] == bars.close[3]
    assert a.state_at(np.int64(seq)).version == seq
    with pytest.raises(InvalidInputError, match="clock 'wall'"):
        a.state_at(seq, clock="wall")
    with pytest.raises(InvalidInputError, match="time '09:19' has no date; give the day too"):
        a.seq_at("09:19")  # pandas would read it as today's: after the journal, silently


def test_a_time_with_a_zone_selects_the_same_rows_as_the_ist_time_it_is(backtest_journal):
    a = backtest_journal  # fills at 00:00 IST of 2024-03-05, 07 and 10
    naive = pd.Timestamp("2024-03-07 03:00")  # read in UTC it is before the 07's fill
    query = "SELECT seq FROM fills WHERE time > ? ORDER BY seq"
    expected = a.sql(query, [naive]).seq.tolist()
    assert len(expected) == 1
    for zoned in (
        naive.tz_localize("Asia/Kolkata"),
        naive.tz_localize("Asia/Kolkata").tz_convert("UTC"),
    ):
        assert a.sql(query, [zoned]).seq.tolist() == expected
        assert a.sql(query, [zoned.to_pydatetime()]).seq.tolist() == expected
    # ISO text with its zone, as copied from a log or an API, names the same instant (DuckDB's
    # own cast would drop the offset); text without one is IST, as the `time` columns are.
    for text in (
        "2024-03-06T21:30:00Z",
        "2024-03-06 16:30:00-05:00",
        "2024-03-07T03:00+05:30",
        "2024-03-06 21:30:00+00:00:00",
        "2024-03-06 21:30:00 UTC",
        "2024-03-06 16:30:00 America/New_York",
    ):
        assert a.sql(query, [text]).seq.tolist() == expected, text
    assert a.sql(query, ["2024-03-07 03:00"]).seq.tolist() == expected
    # A timestamp, as an aware datetime is: time functions take it.
    day = a.sql("SELECT date_trunc('day', ?) AS d", ["2024-03-06T21:30:00Z"]).d[0]
    assert str(day) == "2024-03-07 00:00:00"
    # Inside a list parameter too.
    [first] = a.sql("SELECT (?)[1] AS t", [["2024-03-06T21:30:00Z"]]).t
    assert str(first) == "2024-03-07 03:00:00"
    # Text whose last word is no time zone stays text; a time that cannot be is said so.
    assert a.sql("SELECT ? AS t", ["2024-03-06 09:15 open"]).t[0] == "2024-03-06 09:15 open"
    with pytest.raises(QueryError, match="2024-02-30T05:00:00Z' is not a time"):
        a.sql(query, ["2024-02-30T05:00:00Z"])


def test_backtest_views_agree_on_time_and_order_lifetimes(backtest_journal):
    a = backtest_journal
    marks = a.sql("SELECT exchange_ts FROM marks ORDER BY seq")["exchange_ts"]
    assert list(marks) == list(a.sql("SELECT end_ts FROM bars ORDER BY seq")["end_ts"])
    late = a.sql("SELECT count(*) AS n FROM latency WHERE done_ms < first_fill_ms")
    assert int(late.n[0]) == 0
    fills = a.sql("SELECT seq FROM fills")
    assert len(a.sql("SELECT * FROM fills WHERE seq = ?", [fills.seq[0]])) == 1


def test_equity_is_flat_at_zero_when_nothing_traded(tmp_path):
    journal = tmp_path / "bt.duckdb"
    run_backtest(write_bars(tmp_path / "ABC.csv"), SmaCross(fast=2, slow=30), journal_path=journal)
    equity = Analytics(journal).sql("SELECT net, drawdown FROM equity")
    assert len(equity) == 10 and (equity.net == 0).all() and (equity.drawdown == 0).all()


def test_an_unknown_symbol_is_named_with_what_is_traded_here():
    from tradelab.runner.instruments import InstrumentUniverse, PlainInstrument

    universe = InstrumentUniverse({"ABC": PlainInstrument("ABC")})
    with pytest.raises(
        InvalidInputError, match="'BANKNIFTY' is not traded here: the instruments are ABC"
    ):
        universe.parse("BANKNIFTY")
    assert universe.parse("NIFTY25N1124000CE").strike == 24000


def test_the_chain_shows_calls_strike_puts_per_row_with_desk_greeks_and_the_atm_marked():
    from types import SimpleNamespace

    from tradelab.ui.frames import chain

    ts = int(datetime_ist(2025, 11, 12, 10, 0))
    marks = {
        "NIFTY": {"price": 24_010.0, "ts": ts},
        "NIFTY25N1824000CE": {"price": 150.0, "bid": 149.0, "ask": 151.0, "ts": ts},
        "NIFTY25N1824000PE": {"price": 140.0, "bid": 139.0, "ask": 141.0, "ts": ts},
        "NIFTY25N1824050CE": {"price": 125.0, "bid": 124.0, "ask": 126.0, "ts": ts},
        "NIFTY25N1824500PE": {"price": 500.0, "ts": ts},  # beyond 1 strike each side: left out
        "NIFTY25D0224000CE": {"price": 210.0, "ts": ts},  # the next expiry: not in this chain
    }
    lab = SimpleNamespace(store=SimpleNamespace(get=lambda path, default: marks))
    frame = chain(lab, strikes_each_side=1)
    assert list(frame["strike"]) == [24000, 24050] and list(frame["atm"]) == [True, False]
    columns = list(frame.columns)
    middle = columns[columns.index("strike") - 2 : columns.index("strike") + 3]
    assert middle == ["CE bid", "CE ask", "strike", "PE bid", "PE ask"]  # calls | strike | puts
    atm = frame.iloc[0]
    assert (atm["CE bid"], atm["CE ask"], atm["PE price"]) == (149.0, 151.0, 140.0)
    assert atm["CE delta"] > 0 > atm["PE delta"]
    assert 5 < atm["CE vega/pt"] < 20  # ~1,000 per 1.0 of vol: 10 per point
    assert -30 < atm["CE theta/day"] < -3  # ~-4,000 a year: ~-11 a day
    assert pd.isna(frame.iloc[1]["PE price"])  # no put quoted at 24050
    empty = chain(SimpleNamespace(store=SimpleNamespace(get=lambda path, default: {})))
    assert empty.empty and list(empty.columns) == columns
    # An expired expiry's last marks stay in the store: three days on, the live one is shown.
    later = int(datetime_ist(2025, 11, 21, 10, 0))
    marks = {
        **marks,
        "NIFTY": {"price": 24_010.0, "ts": later},
        "NIFTY25N2524000CE": {"price": 210.0, "bid": 209.0, "ask": 211.0, "ts": later},
    }
    after_expiry = chain(lab, strikes_each_side=1)
    assert list(after_expiry["strike"]) == [24000] and after_expiry.iloc[0]["CE price"] == 210.0
    # The console highlights the ATM row, sets the strike column apart, and hides `atm`.
    from tradelab.ui.console import _chain_row_style

    styles = [_chain_row_style(row) for _, row in frame.iterrows()]
    assert all("#fff3bf" in css for css in styles[0])
    strike_at = columns.index("strike")
    assert [bool(css) for css in styles[1]] == [i == strike_at for i in range(len(columns))]


def datetime_ist(*parts: int) -> int:
    from datetime import datetime

    from tradelab.market.instruments import IST

    return int(datetime(*parts, tzinfo=IST).timestamp()) * 10**9


def test_journal_reader_names_a_file_that_is_no_journal_and_wraps_query_errors(tmp_path):
    import duckdb

    from tradelab.errors import JournalError
    from tradelab.journal import JournalReader

    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).execute("CREATE TABLE prices (x INT)").close()
    with pytest.raises(JournalError, match="other.duckdb is not a tradelab journal"):
        JournalReader(other).df("SELECT * FROM events")
    result = run_backtest(
        write_bars(tmp_path / "ABC.csv"),
        SmaCross(fast=2, slow=3),
        journal_path=tmp_path / "bt.duckdb",
    )
    reader = JournalReader(result.journal)
    for query in ("SELECT * FROM no_such_table", "SELEC 1"):
        for run in (reader.query, reader.df):
            with pytest.raises(JournalError):
                run(query)
    assert len(reader.df("SELECT * FROM events")) == reader.count()


def test_index_and_state_at_tell_what_they_read_as_a_query_does(backtest_journal, tmp_path):
    from tradelab.analytics import Analytics
    from tradelab.state import ReactiveState, StateStore

    fresh = Analytics(backtest_journal.journal)
    fresh.index()
    assert fresh.source == "journal" and fresh.last_seq > 0
    assert fresh.state_at(seq=fresh.last_seq).version == fresh.last_seq
    with pytest.raises(InvalidInputError, match="rate_hz"):
        ReactiveState(StateStore(), rate_hz=0)


def test_the_chain_backs_implied_vol_out_at_the_simulated_markets_own_rate():
    # At a fixed 6.5 % the chain of a market priced at 10 % read calls a point of vol over
    # puts at every strike: a skew the market did not have.
    from types import SimpleNamespace

    from tradelab.market.instruments import IST
    from tradelab.market.pricing import bs_price
    from tradelab.runner.instruments import InstrumentUniverse
    from tradelab.ui.frames import chain

    ts = int(datetime_ist(2025, 11, 12, 10, 0))
    at = pd.Timestamp(ts, tz="UTC").tz_convert(IST).to_pydatetime()
    call = InstrumentUniverse().parse("NIFTY25N1824000CE")
    years = call.years_to_expiry(at)
    marks = {"NIFTY": {"price": 24_010.0, "ts": ts}}
    for kind in ("CE", "PE"):
        price = bs_price(24_010.0, 24_000, years, 0.10, 0.13, kind == "CE")
        marks[f"NIFTY25N1824000{kind}"] = {"price": price, "ts": ts}
    store = SimpleNamespace(get=lambda path, default: marks)
    feed = SimpleNamespace(config=SimpleNamespace(rate=0.10))
    row = chain(SimpleNamespace(store=store, feed=feed), strikes_each_side=1).iloc[0]
    assert row["CE iv %"] == pytest.approx(13.0, abs=0.01)
    assert row["PE iv %"] == pytest.approx(13.0, abs=0.01)
    replayed = chain(SimpleNamespace(store=store), strikes_each_side=1).iloc[0]  # no rate known
    assert replayed["CE iv %"] - replayed["PE iv %"] > 0.5  # at 6.5 %: the skew it showed
