"""The paper account's file: a small SQLite database, apart from the journal.

Each save is one transaction (atomic: a crash leaves the previous save or this one, never a
mix). WAL with synchronous=NORMAL: a commit is in the OS before `save` returns, so it survives
kill -9 of the process (not a power cut), at no fsync per fill. Fills are appended, orders and
the account row upserted. Thread model: one connection used under the broker's lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from tradelab.errors import InvalidInputError, TradelabError
from tradelab.market.instruments import looks_like_option

log = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS account (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT)",
    "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, body TEXT)",
    "CREATE TABLE IF NOT EXISTS fills (fill_seq INTEGER PRIMARY KEY, body TEXT)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)",
)


class AccountFileError(TradelabError):
    """The account file cannot be opened or read as a paper account."""


def foreign_account(
    path: Path | None, symbol: str, universe: Any, why: object = ""
) -> InvalidInputError:
    """The error for a saved account holding orders in `symbol`, which `universe` does not
    trade (an account of a session on another bar file or market): it names the file, what is
    traded here, and how to start over."""
    known = sorted(getattr(universe, "instruments", None) or ())
    here = f"{', '.join(known[:6])} and NIFTY options" if known else "NIFTY options only"
    over = f"remove {path}"
    journal = Path(str(path).removesuffix(".broker.sqlite")) if path is not None else None
    if journal is not None and journal != path:  # a Lab's account, beside its journal
        from tradelab.journal.journal import start_over  # the journal's sidecars, named once

        over = start_over(journal)
    if looks_like_option(symbol):  # a NIFTY option, but not one of NSE's calendar
        return InvalidInputError(
            f"paper broker account file {path} holds orders in {symbol}, which is no NIFTY "
            f"contract by NSE's expiry calendar ({why}); an account saved before tradelab "
            "followed NSE's expiry history (Thursday expiries up to 31 Aug 2025) holds such "
            f"contracts for earlier dates: start over: {over} (this account among them)"
        )
    return InvalidInputError(
        f"paper broker account file {path} holds orders in {symbol}, which this session does "
        f"not trade (it trades {here}): the account was saved by a session on another bar file "
        f"or market; run that one again, or start over: {over} (this account among them)"
    )


class AccountFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AccountFileError(
                f"cannot create the folder of the paper account file {self.path}: "
                f"{exc.strerror or exc}"
            ) from None
        try:
            self._con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self._con.execute(statement)
        except sqlite3.DatabaseError as exc:
            if not os.access(self.path.parent, os.W_OK):  # SQLite says only "unable to open"
                raise AccountFileError(
                    f"cannot write the paper account file {self.path}: its folder "
                    f"{self.path.parent} is not writable (SQLite: {exc})"
                ) from None
            if not isinstance(exc, sqlite3.OperationalError):  # "file is not a database"
                raise AccountFileError(
                    f"{self.path} is not a paper account file (SQLite): {exc}"
                ) from None
            # A full disk, an unusable path, an I/O error: the file is not the problem (do not
            # delete an account because of them).
            raise AccountFileError(
                f"cannot open the paper account file {self.path}: {exc} (a full disk, or a "
                "path where no file can be made?)"
            ) from None

    def load(self) -> tuple[dict[str, Any], list[dict], list[dict]] | None:
        """(account, orders, fills in fill_seq order), or None for a new file."""
        row = self._con.execute("SELECT body FROM account WHERE id = 1").fetchone()
        if row is None:
            return None
        # In the order of their last save: an order's save replaces its row (a new rowid).
        orders = [
            json.loads(b) for (b,) in self._con.execute("SELECT body FROM orders ORDER BY rowid")
        ]
        fills = [
            json.loads(b) for (b,) in self._con.execute("SELECT body FROM fills ORDER BY fill_seq")
        ]
        # The oldest fills may have left (the account's history bound): the rest follow on.
        first = fills[0]["fill_seq"] if fills else 1
        for i, fill in enumerate(fills, first):
            if fill["fill_seq"] != i:
                raise AccountFileError(
                    f"{self.path}: fill_seq {fill['fill_seq']} found where {i} was expected"
                )
        return json.loads(row[0]), orders, fills

    def save(
        self,
        account: dict[str, Any],
        orders: list[dict],
        fills: list[dict],
        *,
        fills_through: int = 0,
        orders_gone: list[str] = (),  # type: ignore[assignment]
    ) -> None:
        """Write one transaction; `AccountFileError` if it cannot be (disk full, I/O error):
        then nothing of it is in the file. The fills through `fills_through` and the orders
        `orders_gone` leave the file in it (the account's history bound)."""
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute(
                "INSERT OR REPLACE INTO account (id, body) VALUES (1, ?)", [json.dumps(account)]
            )
            con.executemany(
                "INSERT OR REPLACE INTO orders (order_id, body) VALUES (?, ?)",
                [(o["request"]["order_id"], json.dumps(o)) for o in orders],
            )
            con.executemany(
                "INSERT INTO fills (fill_seq, body) VALUES (?, ?)",
                [(f["fill_seq"], json.dumps(f)) for f in fills],
            )
            if fills_through:
                con.execute("DELETE FROM fills WHERE fill_seq <= ?", [fills_through])
            if orders_gone:
                con.executemany(
                    "DELETE FROM orders WHERE order_id = ?", [(o,) for o in orders_gone]
                )
            con.execute("COMMIT")
        except BaseException as exc:
            # SQLite may have rolled back already (a failed COMMIT on a full disk does).
            if con.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise AccountFileError(
                    f"cannot write the paper account file {self.path}: {exc}"
                ) from exc
            raise

    def bind_to_journal(self, journal: Path, created_ns: str, journal_is_new: bool) -> None:
        """Bind this account to the journal created at `created_ns` (the first session on
        it, or a new journal beside it, whose reconciler adopts what it holds); an account
        bound to another journal is refused, naming both: its fills would be booked into
        this one as trades it never made, and its ids would pass for this journal's."""
        row = self._con.execute("SELECT value FROM meta WHERE name = 'journal'").fetchone()
        if row is not None and row[0] != created_ns and not journal_is_new:
            raise InvalidInputError(
                f"paper broker account file {self.path} belongs to another journal (the one "
                f"created at {row[0]} ns), not to {journal} (created at {created_ns} ns): put "
                "back that journal's own account, or move this one away to start a new account"
            )
        if row is None or row[0] != created_ns:
            self._con.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('journal', ?)", [created_ns]
            )

    def close(self) -> None:
        try:
            self._con.close()
        except sqlite3.Error as exc:
            raise AccountFileError(
                f"cannot close the paper account file {self.path}: {exc}"
            ) from exc


def check_account_of_journal(broker: Any, engine: Any) -> None:
    """Bind the paper broker's account to the engine's journal, refusing one bound to another
    (`AccountFile.bind_to_journal`); say so when the account holds no fill beside a journal
    that has traded (removed or emptied: the broker starts over, the book does not)."""
    account, journal = broker.account.file, engine.journal
    if account is None or journal is None or journal.created_ns is None:
        return
    new = engine.recovery_report.last_seq == 0
    account.bind_to_journal(journal.path, journal.created_ns, new)
    if not broker.fills_since(0) and engine.store.get("trading.trades", None):
        log.warning(
            "paper broker account file %s holds no fill beside journal %s, which has traded: "
            "the broker starts with fresh cash and no positions, and the reconciler reports "
            "what the book holds as missing",
            account.path,
            journal.path,
        )
