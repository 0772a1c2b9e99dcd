"""One strategy's signals: names it sees as active, journaled as `signal.detected` and
`signal.cleared` (the store's `signals.active`, the console's Signals table).

Thread model: used by its `StrategyContext`, on the runner's thread only.
"""

from __future__ import annotations

from typing import Any

from tradelab.errors import InvalidInputError
from tradelab.state.paths import check_path_level

# Fields of a signal's payload and its stored row that tradelab sets itself.
SIGNAL_FIELDS = frozenset({"strategy", "name", "ts", "signal_id", "detected_ts", "seq"})


class StrategySignals:
    """The active signal names of strategy `name`, journaled through its `runner`."""

    def __init__(self, name: str, runner: Any) -> None:
        self._name = name
        self._runner = runner
        self.active: set[str] = set()

    def detect(self, name: str, ts: int, details: dict[str, Any]) -> str:
        signal_id = self.signal_id(name)
        taken = sorted(SIGNAL_FIELDS & set(details))
        if taken:
            raise InvalidInputError(
                f"signal {name!r}: {', '.join(taken)} {'is' if len(taken) == 1 else 'are'} set"
                f" by tradelab; name the detail otherwise"
            )
        body = {"strategy": self._name, "name": name, "ts": ts, **details}
        self._runner.submit("signal.detected", body, key=signal_id)
        self.active.add(name)
        return signal_id

    def clear(self, name: str, ts: int) -> bool:
        signal_id = self.signal_id(name)
        if name not in self.active:
            return False
        body = {"strategy": self._name, "name": name, "ts": ts}
        self._runner.submit("signal.cleared", body, key=signal_id)
        self.active.discard(name)
        return True

    def clear_all(self, ts: int) -> None:
        """A failed strategy keeps nothing up to date: its active signals are cleared."""
        for name in sorted(self.active):
            self.clear(name, ts)

    def seed(self, store: Any) -> None:
        """After a restart: this strategy's signals the store holds as active."""
        held = store.get("signals.active", None) or {}
        self.active = {
            s["name"] for s in held.values() if s.get("strategy") == self._name and "name" in s
        }

    def signal_id(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"a signal name must be non-empty text, not {name!r}")
        return check_path_level(f"{self._name}-{name}", f"signal {name!r} of {self._name!r}: id")
