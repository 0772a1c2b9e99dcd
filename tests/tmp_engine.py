"""An engine on a journal in tmp_path with timed snapshots off, and whether a pid is alive."""

from __future__ import annotations

import os

from tradelab.engine import Engine


def _engine(tmp_path, **kw) -> Engine:
    kw.setdefault("snapshot_every_seconds", 0)
    return Engine(journal_path=str(tmp_path / "lab.duckdb"), **kw)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
