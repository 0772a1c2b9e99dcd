"""The DuckDB journal: group-committed events (by a writer process, acknowledged from its ack
log), snapshots, crash recovery, and outside readers.

`Journal` (one read-write process), `JournalReader` (any other process, via sealed Parquet
segments while an engine runs), `recover` / `RecoveryReport`, and `verify_journal`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradelab.journal.journal import Journal, TailCheck
    from tradelab.journal.reader import JournalReader
    from tradelab.journal.recovery import RecoveryReport, recover, replay_into
    from tradelab.journal.schema import JOURNAL_FORMAT_VERSION
    from tradelab.journal.snapshots import SnapshotInfo

# Loaded on first use: the writer process imports modules of this package and should not pay
# for recovery, the reader and pyarrow on its way to READY.
_WHERE = {
    "Journal": "journal",
    "TailCheck": "journal",
    "JournalReader": "reader",
    "RecoveryReport": "recovery",
    "recover": "recovery",
    "replay_into": "recovery",
    "JOURNAL_FORMAT_VERSION": "schema",
    "SnapshotInfo": "snapshots",
}

__all__ = [
    "JOURNAL_FORMAT_VERSION",
    "Journal",
    "JournalReader",
    "RecoveryReport",
    "SnapshotInfo",
    "TailCheck",
    "recover",
    "replay_into",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tradelab.journal' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tradelab.journal.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
