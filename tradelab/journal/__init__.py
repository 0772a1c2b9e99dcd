"""The DuckDB journal: group-committed events (by a writer process, acknowledged from its ack
log), snapshots, crash recovery, and outside readers.

`Journal` (one read-write process), `JournalReader` (any other process, via sealed Parquet
segments while an engine runs), `recover` / `RecoveryReport`, and `verify_journal`.
"""

from tradelab.journal.journal import Journal, TailCheck
from tradelab.journal.reader import JournalReader
from tradelab.journal.recovery import RecoveryReport, recover, replay_into
from tradelab.journal.schema import JOURNAL_FORMAT_VERSION
from tradelab.journal.snapshots import SnapshotInfo

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
