"""The high-water mark: a tiny sidecar file holding the last committed seq, written after commits.

DuckDB silently truncates a torn WAL tail, so the journal cannot notice a lost tail by itself;
comparing this mark with the journal's last seq on open can. Written only by the journal writer
thread; read once on open.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from tradelab.journal.journal_file import open_own_file

_MAGIC = 0x74726C61_62484D31  # "trlabHM1"
_RECORD = struct.Struct("<QQQ")  # magic, seq, seq ^ magic (a torn/garbled write fails the check)


def tailmark_path(journal_path: str | Path) -> Path:
    journal_path = Path(journal_path)
    return journal_path.with_name(journal_path.name + ".hwm")


class TailMark:
    """Last committed seq, fsync'd; `read()` returns None when missing or unreadable."""

    def __init__(self, journal_path: str | Path) -> None:
        self.path = tailmark_path(journal_path)
        self._fd: int | None = None

    def read(self) -> int | None:
        try:
            data = self.path.read_bytes()
        except OSError:  # missing, or not a readable file (a directory in its place)
            return None
        if len(data) < _RECORD.size:
            return None
        magic, seq, check = _RECORD.unpack_from(data)
        if magic != _MAGIC or check != seq ^ _MAGIC:
            return None
        return seq

    def write(self, seq: int, *, sync: bool = True) -> None:
        if self._fd is None:
            self._fd = open_own_file(self.path, os.O_WRONLY | os.O_CREAT)
        os.pwrite(self._fd, _RECORD.pack(_MAGIC, seq, seq ^ _MAGIC), 0)
        if sync:
            os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
