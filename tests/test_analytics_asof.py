"""As-of state: the store at any seq (snapshot or checkpoint + replay) equals a fresh replay up to
that seq; time lookups; diffs between two points."""

from __future__ import annotations

import duckdb
import pytest

from tests import analytics_script as script
from tradelab.analytics import Analytics, diff_states
from tradelab.engine import Engine, build_store
from tradelab.errors import InvalidInputError
from tradelab.journal import replay_into

SYMBOLS = ("NIFTY", script.X, script.Y)


@pytest.fixture(scope="module")
def journal(tmp_path_factory):
    """~3,000 mixed events with an engine snapshot every 700 events."""
    path = tmp_path_factory.mktemp("asof") / "asof.duckdb"
    with Engine(
        journal_path=str(path),
        writer_process=False,
        snapshot_every_events=700,
        snapshot_every_seconds=0,
    ) as engine:
        for i in range(3_000):
            ts = script.at(12, "09:15") + i * 1_000_000_000
            if i % 50 == 7:
                engine.submit(
                    "trade.executed",
                    {
                        "trade_id": f"T{i}",
                        "order_id": f"O{i}",
                        "position_id": f"s:{script.X}",
                        "strategy": "s",
                        "symbol": script.X,
                        "side": "BUY" if i % 100 == 7 else "SELL",
                        "quantity": 75,
                        "price": 100.0 + i % 13,
                        "fee": 1.0,
                        "lot_size": 75,
                        "ts": ts,
                    },
                    key=f"s:{script.X}",
                )
            else:
                symbol = SYMBOLS[i % 3]
                engine.submit(
                    "mark.updated",
                    {"symbol": symbol, "price": 100.0 + i % 17, "ts": ts},
                    key=symbol,
                )
    return path


def replayed_hash(path, seq: int) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        store = build_store()
        replay_into(store, con, upto_seq=seq)
        assert store.version == seq
        return store.state_hash()
    finally:
        con.close()


@pytest.mark.parametrize("seq", [0, 1, 699, 700, 701, 1_450, 2_999])
def test_state_at_seq_equals_a_fresh_replay_to_that_seq(journal, seq):
    analytics = Analytics(journal)
    store = analytics.state_at(seq)
    assert store.version == seq
    assert store.state_hash() == replayed_hash(journal, seq)


def test_state_at_starts_from_the_nearest_snapshot_then_a_kept_checkpoint(journal):
    analytics = Analytics(journal, checkpoint_every=250)
    snapshot_seqs = analytics.sql(
        "SELECT CAST(json_extract(payload, '$.last_seq') AS BIGINT) AS s FROM events "
        "WHERE topic = 'snapshot.taken' ORDER BY 1"
    )["s"].tolist()
    below = max(s for s in snapshot_seqs if s <= 1_450)
    analytics.state_at(1_450)
    assert (
        analytics.asof.last["start_seq"] == below
        and "journal snapshot" in (analytics.asof.last["start"])
    )
    # On the way to 1,900 it keeps checkpoints at each multiple of 250 after that snapshot;
    # 1,800 then starts from the one at 1,750, unless a snapshot lies between them.
    assert analytics.state_at(1_900).state_hash() == replayed_hash(journal, 1_900)
    assert analytics.state_at(1_800).state_hash() == replayed_hash(journal, 1_800)
    nearest = max(s for s in snapshot_seqs if s <= 1_800)
    expected = 1_750 if nearest < 1_750 else nearest
    assert analytics.asof.last["start_seq"] == expected
    assert analytics.asof.last["replayed"] == 1_800 - expected


def test_state_at_a_time_is_the_last_event_at_or_before_it(journal):
    analytics = Analytics(journal)
    # Event i (0-based, after the engine's own start-up events) is stamped 09:15 + i seconds.
    first_mark = int(analytics.sql("SELECT min(seq) AS s FROM marks")["s"][0])
    seq = analytics.seq_at("2025-11-12 09:20:00")  # 300 s after 09:15: the 301st scripted event
    assert seq == first_mark + 300
    store = analytics.state_at(ts="2025-11-12 09:20:00")
    assert store.version == seq
    with pytest.raises(InvalidInputError, match="give exactly one of seq= or ts="):
        analytics.state_at()
    with pytest.raises(InvalidInputError, match="is not a time"):
        analytics.state_at(ts="half past nine")
    with pytest.raises(InvalidInputError, match="beyond the last readable seq"):
        analytics.state_at(10**9)


def test_a_time_outside_the_journal_is_refused_naming_its_span_not_clamped(journal):
    analytics = Analytics(journal)
    span = r"runs 2025-11-12 09:15:00 to 2025-11-12 10:04:59 IST"
    with pytest.raises(InvalidInputError, match=r"2025-11-12 09:00:00 IST is before .*" + span):
        analytics.seq_at("2025-11-12 09:00:00")
    # The journal clock is the wall clock of the run: a market time there names the mix-up.
    with pytest.raises(InvalidInputError, match="journal time is the wall clock"):
        analytics.state_at(ts="2025-11-12 09:20:00", clock="journal")
    # After a finished journal's last event: its final state.
    assert (
        analytics.seq_at("2025-11-13 09:15:00")
        == analytics.sql("SELECT max(seq) AS s FROM events")["s"][0]
    )


def test_diff_names_paths_added_removed_and_changed(journal):
    analytics = Analytics(journal)
    fills = analytics.sql("SELECT seq, trade_id FROM fills ORDER BY seq")
    second, trade_id = int(fills.seq[1]), fills.trade_id[1]
    before, after = analytics.state_at(second - 1), analytics.state_at(second)
    diff = analytics.diff(before, after)
    position = f"trading.positions.s:{script.X}"
    assert f"trading.trades.{trade_id}" in diff.added  # a new subtree: one entry, whole value
    assert diff.changed[f"{position}.net_quantity"] == (75, 0)  # bought, then sold: flat
    assert diff.changed["pnl.fees"] == (1.0, 2.0)
    assert f"trading.open_positions.{script.X}" in diff.removed
    assert (diff.seq_a, diff.seq_b) == (second - 1, second)
    frame = diff.frame()
    assert len(frame) == len(diff.added) + len(diff.removed) + len(diff.changed)
    assert frame.set_index("path").loc["pnl.fees", "after"] == 2.0
    assert not analytics.diff(second, second)
    # Seqs work as well as stores.
    assert analytics.diff(second - 1, second).changed == diff.changed


def test_diff_of_plain_trees():
    diff = diff_states({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 1, "c": 3, "e": 4}})
    assert diff.changed == {"a.c": (2, 3)}
    assert diff.added == {"a.e": 4}
    assert diff.removed == {"d": 1}


def test_checkpoints_are_bounded_least_recently_used_first(journal):
    analytics = Analytics(journal, checkpoint_every=100, max_checkpoints=5)
    analytics.state_at(1_000)  # from the snapshot at 712: checkpoints at 800, 900, 1,000
    analytics.state_at(2_000)  # from 1,413: 1,500 ... 2,000 (six), the bound keeps five
    metrics = analytics.asof.metrics()
    assert metrics["checkpoints"] == 5 and metrics["dropped"] == 4
    assert (metrics["first_seq"], metrics["last_seq"]) == (1_600, 2_000)
    # index() spreads its checkpoints so ten reach the end of the journal.
    indexed = Analytics(journal, checkpoint_every=100, max_checkpoints=10).index()
    last = indexed["last_seq"]
    assert last > 3_000 and indexed["checkpoint_every"] == -(-last // 10)
    assert indexed["checkpoints"] == last // indexed["checkpoint_every"] <= 10


def test_checkpoints_kept_from_a_journal_are_not_used_on_another_at_the_same_path(
    journal, tmp_path
):
    import shutil

    other = tmp_path / "other.duckdb"
    with Engine(journal_path=str(other), writer_process=False) as engine:
        for i in range(2_500):
            engine.submit("mark.updated", {"symbol": "OTHER", "price": float(i)}, key="OTHER")
    path = tmp_path / "same.duckdb"
    shutil.copy(journal, path)
    analytics = Analytics(path, checkpoint_every=500)
    analytics.index()
    before = analytics.state_at(2_050).state_hash()
    shutil.copy(other, path)  # started over at the same path, the notebook still open
    after = analytics.state_at(2_050)
    assert after.state_hash() == Analytics(path).state_at(2_050).state_hash() != before
    assert after.get("market.marks.OTHER.price") is not None
