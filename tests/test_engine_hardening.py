"""Engine hardening, what it is handed: payloads it cannot journal or that change, settings, ids."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tmp_engine import _engine
from tradelab.config import EngineConfig
from tradelab.engine import Engine
from tradelab.errors import InvalidInputError
from tradelab.journal import JournalReader
from tradelab.journal.verify import verify_journal


def test_numpy_and_subclass_numbers_are_journaled_as_plain_numbers_and_the_journal_verifies(
    tmp_path,
):
    path = tmp_path / "lab.duckdb"
    with _engine(tmp_path) as engine:
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": np.float64(24001.5)})
        engine.submit("mark.updated", {"symbol": "BANK", "price": np.int64(51000)}, wait=True)
        live = engine.store.get("market.marks")
        assert engine.store.get("market.marks.NIFTY.price") == 24001.5
    with _engine(tmp_path) as again:  # restarts on the journal it left: same marks
        assert again.store.get("market.marks") == live
    result = verify_journal(path)
    assert result.ok, result.lines
    prices = [e.payload["price"] for e in JournalReader(path).events(topic="mark.updated")]
    assert prices == [24001.5, 51000] and [type(p) for p in prices] == [float, int]


class Text(str):
    pass


def test_numpy_text_and_bools_and_str_subclasses_are_journaled_as_plain_values(tmp_path):
    path = tmp_path / "lab.duckdb"
    note = {"a": Text("x"), "b": np.str_("y"), "c": np.bool_(True), "d": [np.int64(3)]}
    with _engine(tmp_path) as engine:
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0, "note": note}, wait=True)
    [journaled] = [e.payload["note"] for e in JournalReader(path).events(topic="mark.updated")]
    assert journaled == {"a": "x", "b": "y", "c": True, "d": [3]}
    assert [type(v) for v in journaled.values()] == [str, str, bool, list]


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (2**63, "integers must fit in 64 bits"),
        ([np.uint64(2**64 - 1)], "integers must fit in 64 bits"),
        (np.datetime64("2024-01-01"), "of type numpy.datetime64"),
    ],
)
def test_a_value_the_journals_readers_cannot_hold_is_refused_naming_it(tmp_path, value, said):
    with _engine(tmp_path) as engine:
        before = engine.store.version
        with pytest.raises(InvalidInputError, match=f"payload.note.* {said}"):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0, "note": value})
        assert engine.store.version == before


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"symbol": "NIFTY\ud800", "price": 1.0}, "payload.symbol"),
        ({"symbol": "NIFTY", "price": 1.0, "note": {"k\udfff": 1}}, "payload.note key"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_field_and_nothing_is_applied(
    tmp_path, payload, where
):
    with _engine(tmp_path) as engine:
        before = engine.store.version
        with pytest.raises(InvalidInputError, match=f"{where}.*not valid Unicode"):
            engine.submit("mark.updated", payload, critical=True)
        assert engine.store.version == before
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 2.0}, wait=True)
    assert verify_journal(tmp_path / "lab.duckdb").ok


@pytest.mark.parametrize("critical", [True, False])
def test_a_lone_surrogate_in_the_key_is_refused_and_nothing_is_applied(tmp_path, critical):
    # The key is journaled as text too: a symbol used as a key must not pass the check, be
    # applied, then fail in the writer and leave a seq gap that makes the journal unusable.
    with _engine(tmp_path) as engine:
        before = engine.store.version
        with pytest.raises(InvalidInputError, match="event key 'NIFTY.ud800'.*not valid Unicode"):
            engine.submit(
                "mark.updated",
                {"symbol": "NIFTY", "price": 1.0},
                key="NIFTY\ud800",
                critical=critical,
            )
        assert engine.store.version == before
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 2.0}, key="NIFTY é", wait=True)
    assert verify_journal(tmp_path / "lab.duckdb").ok


def test_a_str_subclass_topic_or_key_is_journaled_as_plain_text(tmp_path):
    # What iterating a NumPy array of symbols gives: it passed the checks, was applied, then the
    # writer could not encode it (a seq gap; the stop's snapshot failed on the store's topic).
    with _engine(tmp_path) as engine:
        engine.submit(np.str_("mark.updated"), {"symbol": "A", "price": 1.0}, key=np.str_("A"))
        engine.submit("mark.updated", {"symbol": "B", "price": 2.0}, key=Text("B"), wait=True)
        assert engine.store.get("market.marks.B.price") == 2.0
    assert verify_journal(tmp_path / "lab.duckdb").ok
    events = list(JournalReader(tmp_path / "lab.duckdb").events(topic="mark.updated"))
    assert [(e.topic, e.key) for e in events] == [("mark.updated", "A"), ("mark.updated", "B")]


def test_a_payload_nested_thousands_deep_is_refused_before_anything_is_applied(tmp_path):
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    with _engine(tmp_path) as engine:
        before = engine.store.version
        with pytest.raises(InvalidInputError, match="nested more than 64 levels"):
            engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0, "deep": deep})
        assert engine.store.version == before
    assert verify_journal(tmp_path / "lab.duckdb").ok


@pytest.mark.parametrize("writer_process", [True, False])
def test_a_payload_mutated_after_submit_changes_neither_journal_nor_store(tmp_path, writer_process):
    path = tmp_path / "lab.duckdb"
    with _engine(tmp_path, writer_process=writer_process) as engine:
        for i in range(200):
            payload = {"symbol": "NIFTY", "price": 100.0 + i, "extra": {"tag": "a"}}
            engine.submit("mark.updated", payload)
            payload["price"] = -1.0  # the submitter keeps its dict and changes it
            payload["extra"]["tag"] = "changed"
        engine.flush()
        live = engine.store.get("market.marks")
        assert engine.store.get("market.marks.NIFTY.price") == 299.0
    journaled = [e.payload for e in JournalReader(path).events(topic="mark.updated")]
    assert [p["price"] for p in journaled] == [100.0 + i for i in range(200)]
    assert {p["extra"]["tag"] for p in journaled} == {"a"}
    result = verify_journal(path)
    assert result.ok, result.lines
    with _engine(tmp_path, writer_process=writer_process) as again:
        assert again.store.get("market.marks") == live


def test_overrides_do_not_change_the_callers_config(tmp_path):
    config = EngineConfig(journal_path=str(tmp_path / "a.duckdb"), group_commit_ms=10.0)
    engine = Engine(config, group_commit_ms=2.0, journal_path=str(tmp_path / "b.duckdb"))
    assert engine.config.group_commit_ms == 2.0
    assert (config.group_commit_ms, config.journal_path) == (10.0, str(tmp_path / "a.duckdb"))


def test_engine_settings_are_checked_naming_the_setting_and_the_callers_config_kept():
    from tradelab.config import EngineConfig
    from tradelab.engine import Engine

    config = EngineConfig(max_queued_events=5)
    with pytest.raises(InvalidInputError, match="Engine has no setting 'bogus'; EngineConfig's"):
        Engine(config, bogus=1)
    with pytest.raises(InvalidInputError, match="max_queued_events' must be at least 1"):
        Engine(config, max_queued_events=0)
    assert config.max_queued_events == 5


def test_a_bad_id_is_named_without_echoing_all_of_it(tmp_path):
    from tradelab.errors import TradelabError

    with _engine(tmp_path) as engine, pytest.raises(TradelabError) as refused:
        engine.submit("signal.detected", {"v": 1}, key="x" * 10_000, wait=True)
    assert len(str(refused.value)) < 400 and "10002 characters" in str(refused.value)
