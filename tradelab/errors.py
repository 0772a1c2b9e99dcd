"""The one exception hierarchy of tradelab.

Every error a user can meet derives from `TradelabError`; messages name the bad value and what
was expected, so a notebook traceback alone says what to fix.
"""

from __future__ import annotations

import threading


class TradelabError(Exception):
    """Base of every error tradelab raises on purpose."""


class InvalidInputError(TradelabError, ValueError):
    """A value handed to tradelab is malformed: bad topic, NaN price, unserializable payload."""


class UnknownTopicError(InvalidInputError, KeyError):
    """A topic that is not in the registry was used."""

    def __str__(self) -> str:  # KeyError would repr() the message; keep it readable
        return str(self.args[0]) if self.args else ""


class SequenceError(TradelabError):
    """An event's seq is not the next one expected (a gap or a double apply)."""


class SchemaVersionError(TradelabError):
    """Data was written by a newer schema than this code knows, or no upcaster path exists."""


class StateError(TradelabError):
    """The state store refused a change (bad path, reducer failure); the store is unchanged."""


class JournalError(TradelabError):
    """The journal cannot be opened, read or written as asked."""


class JournalInUseError(JournalError):
    """Another engine (of another process, or of this one) holds the journal."""


class RecoveryError(JournalError):
    """Recovery found damage it cannot work around without losing data."""


class LifecycleError(TradelabError):
    """An operation was asked of a component in a lifecycle state that does not allow it."""


class OverloadError(TradelabError):
    """The engine's submit queue stayed full for longer than the producer's timeout; the event
    was not accepted (nothing accepted is ever dropped)."""


class OrderRejectedError(TradelabError):
    """An order was refused (by pre-trade checks or by the broker); the book is unchanged."""


class InvalidOrderError(OrderRejectedError):
    """An order no market would take as asked (a quantity that is not whole lots, a symbol the
    instrument list does not have): a mistake in the caller, not the market's answer."""


class OrderDeniedError(OrderRejectedError):
    """A pre-trade risk check refused an order; it was journaled as `order.denied`, not sent.
    `check` names the check (max_order_quantity, risk_state, ...)."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(reason)
        self.check = check


class DuplicateOrderIdError(OrderRejectedError):
    """A client order id already names an order; that order is left exactly as it was."""


class QueryError(InvalidInputError):
    """A SQL query over the analytics views failed; the message names the views and columns."""


def plain_value(value: object) -> object:
    """A cell from a DataFrame as an error message should show it: `nan`, not `np.float64(nan)`."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def interrupts_the_user(exc: BaseException) -> bool:
    """A SystemExit or KeyboardInterrupt on the main thread: the user's own (Ctrl-C), to go on
    up. Elsewhere (the engine's kernel, the bus's loop) such an exception from user code is
    isolated as any failure, or it would stop work that others rely on."""
    return not isinstance(exc, Exception) and threading.current_thread() is threading.main_thread()
