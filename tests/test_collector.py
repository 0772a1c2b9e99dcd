"""The collector of a process that runs a session: tuned by the `tradelab` command and the
console's plugin, never by importing or using the library."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

import tradelab
from tradelab import cli
from tradelab.collector import OLDER_EVERY, YOUNG_EVERY, tune_collector
from tradelab.errors import InvalidInputError


@pytest.fixture
def restored_collector():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_tuning_collects_less_often_freezes_and_returns_the_old_thresholds(restored_collector):
    before = gc.get_threshold()
    assert tune_collector() == before
    assert gc.get_threshold() == (YOUNG_EVERY, OLDER_EVERY, OLDER_EVERY)
    assert gc.get_freeze_count() > 0
    assert tradelab.tune_collector is tune_collector  # the notebook's opt-in


def test_bad_thresholds_are_refused_and_change_nothing(restored_collector):
    before = gc.get_threshold()
    with pytest.raises(InvalidInputError, match="at least 1, got 0"):
        tune_collector(young_every=0)
    assert gc.get_threshold() == before


def test_the_tradelab_command_tunes_its_process_before_running(monkeypatch, restored_collector):
    seen = []
    monkeypatch.setattr(cli, "main", lambda: seen.append(gc.get_threshold()))
    cli.entry()
    assert seen == [(YOUNG_EVERY, OLDER_EVERY, OLDER_EVERY)]


def test_using_the_library_leaves_the_process_collector_alone(tmp_path):
    code = (
        "import gc\n"
        "before = gc.get_threshold()\n"
        "import tradelab\n"
        "from tradelab.engine import Engine\n"
        f"e = Engine(journal_path={str(tmp_path / 'lab.duckdb')!r}).start()\n"
        "e.submit('mark.updated', {'symbol': 'NIFTY', 'price': 1.0}, wait=True)\n"
        "e.stop()\n"
        "print(gc.get_threshold() == before, gc.get_freeze_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[-2] == "True 0"
