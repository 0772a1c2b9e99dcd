"""Shared fixtures: `whole`, a journal of 600 marks, and `journal`, a fresh copy of it to damage."""

from __future__ import annotations

import shutil

import pytest

from tests.damaged_journal import EVENTS
from tradelab.engine import Engine


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """A journal of 600 marks with snapshots at seq ~200, ~400, ~600 (and one on stop)."""
    directory = tmp_path_factory.mktemp("whole")
    path = directory / "lab.duckdb"
    with Engine(
        journal_path=str(path), snapshot_every_events=0, snapshot_every_seconds=0
    ) as engine:
        for i in range(EVENTS):
            engine.submit("mark.updated", {"symbol": f"S{i % 5}", "price": float(i)})
            if i % 200 == 199:
                engine.snapshot_now()
    return directory, engine.store.state_hash(), engine.store.version


@pytest.fixture
def journal(whole, tmp_path):
    """A fresh copy of the whole journal (and its side files) to damage."""
    directory, _, _ = whole
    copy = tmp_path / "j"
    shutil.copytree(directory, copy)
    return copy / "lab.duckdb"
