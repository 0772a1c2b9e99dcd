"""Operator commands of the console: start / pause / resume / stop strategies, flatten, resume trading after
a halt, change strategy parameters, reconcile now; checked against the operators on every call.

A command is refused (`CommandRefused`, counted and logged, nothing changed or journaled) when the
user is not an operator, the command or its arguments are wrong, or the session cannot do it now.
An accepted command acts through the runner, desk, risk gate or reconciler (their own events carry
the user: `who` / `by`) and is journaled as `operator.command` {who, command, args, result}.
Thread model: any thread may call; each command uses its part's thread-safe API.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tradelab.cli_progress import count_of
from tradelab.errors import InvalidInputError, LifecycleError, TradelabError
from tradelab.runner.strategy import FAILED as STRATEGY_FAILED
from tradelab.runner.strategy import PAUSED, RUNNING, STOPPED
from tradelab.trading.risk_state import ACTIVE

if TYPE_CHECKING:
    from tradelab.lab import Lab

log = logging.getLogger(__name__)

#: `who` of commands given with no auth configured (a local session has no user names).
LOCAL_USER = "local"
# Why a command was refused: the label of the refusal counter.
NOT_OPERATOR, UNKNOWN_COMMAND, BAD_ARGS, NOT_NOW, FAILED = (
    "not_operator",
    "unknown_command",
    "bad_args",
    "not_now",
    "failed",
)


class CommandRefused(TradelabError):
    """A command not carried out; the message says why, `reason` is its counter label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class OperatorCommands:
    """`execute(user, command, **args)` for the console's controls (see the module docstring)."""

    def __init__(self, lab: Lab, *, operators: frozenset[str] | None = None) -> None:
        """`operators=None`: no auth configured (local use): every user, None included, is an
        operator. Otherwise only the named users are."""
        self.lab = lab
        self.operators = None if operators is None else frozenset(operators)
        self._lock = threading.Lock()
        self._executed: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()
        self._commands: dict[str, Callable[[str, dict[str, Any]], tuple[str, dict]]] = {
            "start": self._start,
            "pause": self._pause,
            "resume": self._resume,
            "stop": self._stop,
            "flatten": self._flatten,
            "resume_trading": self._resume_trading,
            "set_params": self._set_params,
            "reconcile": self._reconcile,
        }

    @property
    def commands(self) -> tuple[str, ...]:
        return tuple(self._commands)

    def is_operator(self, user: str | None) -> bool:
        if self.operators is None:
            return True
        return user is not None and user in self.operators

    def execute(self, user: str | None, command: str, **args: Any) -> str:
        """Carry out `command` for `user`; returns what was done, or raises CommandRefused."""
        who = user if user is not None else LOCAL_USER
        try:
            if not self.is_operator(user):
                raise CommandRefused(
                    NOT_OPERATOR, f"user {user!r} is not an operator: command {command!r} refused"
                )
            action = self._commands.get(command)
            if action is None:
                raise CommandRefused(
                    UNKNOWN_COMMAND,
                    f"unknown command {command!r}; commands are {', '.join(self._commands)}",
                )
            try:
                result, recorded = action(who, args)
            except InvalidInputError as exc:
                raise CommandRefused(BAD_ARGS, str(exc)) from None
            except LifecycleError as exc:  # e.g. the runner stopped under the console
                raise CommandRefused(NOT_NOW, f"cannot {command}: {exc}") from None
        except CommandRefused as refusal:
            with self._lock:
                self._refused[refusal.reason] += 1
            log.warning("command %r by %r refused: %s", command, who, refusal)
            raise
        self._record(who, command, recorded, result)
        with self._lock:
            self._executed[command] += 1
        log.info("command %r by %r: %s", command, who, result)
        return result

    def metrics(self) -> dict[str, dict[str, int]]:
        """Commands carried out (by command) and refused (by reason) since this object was made."""
        with self._lock:
            return {"executed": dict(self._executed), "refused": dict(self._refused)}

    # -- the commands: (who, args) -> (result text, the args as journaled) -----------------
    def _start(self, who: str, args: dict[str, Any]) -> tuple[str, dict]:
        # A failed strategy too: the operator decides it may run again (journaled as theirs).
        return self._strategies(who, args, "start", (STOPPED, STRATEGY_FAILED))

    def _pause(self, who: str, args: dict[str, Any]) -> tuple[str, dict]:
        return self._strategies(who, args, "pause", (RUNNING,))

    def _resume(self, who: str, args: dict[str, Any]) -> tuple[str, dict]:
        return self._strategies(who, args, "resume", (PAUSED,))

    def _stop(self, who: str, args: dict[str, Any]) -> tuple[str, dict]:
        return self._strategies(who, args, "stop", (RUNNING, PAUSED))

    def _strategies(
        self, who: str, args: dict[str, Any], verb: str, allowed_from: tuple[str, ...]
    ) -> tuple[str, dict]:
        (name,) = _take(verb, args, optional=("strategy",))
        runner = self._part("runner")
        if name is not None:
            name = _text(name, "strategy")
            state = runner.state_of(name)  # an unknown name: InvalidInputError naming it
            if state not in allowed_from:
                raise CommandRefused(NOT_NOW, f"strategy {name!r} is {state}: cannot {verb} it")
            names = [name]
        else:
            names = [n for n in runner.strategies if runner.state_of(n) in allowed_from]
            if not names:
                states = ", ".join(f"{n} {runner.state_of(n)}" for n in runner.strategies)
                raise CommandRefused(
                    NOT_NOW, f"no strategy can {verb} ({states or 'the runner has none'})"
                )
        act = {
            "start": runner.start_strategy,
            "pause": runner.pause,
            "resume": runner.resume,
            "stop": runner.stop_strategy,
        }[verb]
        try:
            for each in names:
                act(each, who=who)
        except LifecycleError as exc:  # the runner itself has stopped
            raise CommandRefused(NOT_NOW, f"cannot {verb}: {exc}") from None
        said = f"{verb} asked for {', '.join(names)}"
        if verb == "stop":  # what a stop does to orders and positions (slots.py)
            said += " (working orders that open positions are cancelled; positions stay open)"
        return said, {"strategies": names}

    def _flatten(self, who: str, args: dict[str, Any]) -> tuple[str, dict]:
        _take("flatten", args)
        desk = self._part("desk")
        cancelled: list[str] = []
        kept: list[str] = []
        try:
            orders = desk.flatten(exit_only=True, cancelled=cancelled, kept=kept)
        except TradelabError as exc:  # FlattenError: all were tried; it names those left open
            done = f" ({count_of(len(cancelled), 'working order')} cancelled)" if cancelled else ""
            self._record(who, "flatten", {"cancelled": cancelled}, f"failed{done}: {exc}")
            raise CommandRefused(FAILED, f"flatten failed{done}: {exc}") from None
        said = [f"{count_of(len(cancelled), 'working order')} cancelled"] if cancelled else []
        if orders:
            said.append(f"{count_of(len(orders), 'closing order')} sent")
        elif not kept:
            # A book still open with nothing sent: its closes filled at the broker (or are on
            # their way there), not booked yet; it said "no open position".
            still_open = desk.store.get("trading.open_positions", None)
            said.append(
                "nothing to send: the open positions' closes are filled or on their way at the "
                "broker, not booked yet (the reconciler books a lost report)"
                if still_open
                else "no open position"
            )
        if kept:  # an earlier flatten's, not filled yet: left to fill, not sent again
            said.append(f"{count_of(len(kept), 'earlier closing order')} still working")
        return f"flatten: {', '.join(said)}", {"orders": orders, "cancelled": cancelled}

    def _resume_trading(self, who: str, args: dict[str, Any]) -> tuple[str, dict]:
        (reason,) = _take("resume_trading", args, required=("reason",))
        risk = self._part("risk")
        if risk.state == ACTIVE:  # before the reason: there is nothing to resume
            raise CommandRefused(NOT_NOW, "trading is not halted (risk state active)")
        reason = _text(reason, "reason")
        risk.resume(by=who, reason=reason)
        return f"trading resumed ({reason})", {"reason": reason}

    def _set_params(self, who: str, args: dict[str, Any]) -> tuple[str, dict]:
        name, params = _take("set_params", args, required=("strategy", "params"))
        name = _text(name, "strategy")
        if not isinstance(params, Mapping) or not params:
            raise InvalidInputError(
                f"params must be a non-empty mapping name -> value, not {params!r}"
            )
        values = self._part("runner").set_params(name, dict(params), who=who)
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        return f"parameters of {name} set: {shown}", {"strategy": name, "params": values}

    def _reconcile(self, who: str, args: dict[str, Any]) -> tuple[str, dict]:
        _take("reconcile", args)
        report = self._part("reconciler").run_once()
        if report.degraded is not None:
            summary = f"broker unreachable: {report.degraded}"
        elif report.ok:
            summary = "book and broker agree"
        else:
            summary = (
                f"{len(report.mismatches)} differences ({', '.join(sorted(set(report.kinds)))}); "
                f"fixed {len(report.fixed)}, flagged {len(report.flagged)}"
                + ("; trading halted" if report.halted else "")
            )
        return f"reconciliation: {summary}", {}

    # -- helpers -----------------------------------------------------------------------------
    def _part(self, name: str) -> Any:
        part = getattr(self.lab, name, None)
        if part is None:
            raise CommandRefused(NOT_NOW, f"the session has no {name} (is the lab started?)")
        return part

    def _record(self, who: str, command: str, args: dict, result: str) -> None:
        """Journal the command (durable on return: on record when the console says done)."""
        self.lab.engine.submit(
            "operator.command",
            {"who": who, "command": command, "args": args, "result": result},
            key=command,
            wait=True,
        )


def _take(
    command: str,
    args: dict[str, Any],
    *,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
) -> list[Any]:
    """The values of `required` then `optional` arguments; any other argument is an error."""
    unknown = sorted(set(args) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join((*required, *optional)) or "no arguments"
        raise InvalidInputError(f"unknown argument {unknown[0]!r} (takes {allowed})")
    missing = [name for name in required if args.get(name) is None]
    if missing:
        raise InvalidInputError(f"argument {missing[0]!r} is required")
    return [args.get(name) for name in (*required, *optional)]


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be non-empty text, not {value!r}")
    return value.strip()
