# replaced at merge by the full implementation
"""Operator commands from the console: who may act, and the runner / desk calls they make.

Thread model: `execute` runs on the calling session's thread; the runner and the desk are
thread-safe (they submit events to the engine).
"""

from __future__ import annotations

from typing import Any

from tradelab.errors import TradelabError


class CommandRefused(TradelabError):
    """A console command was not carried out: not an operator, unknown command, bad args."""


class OperatorCommands:
    """`execute(user, command, **args)` after checking `user` is an operator, every call."""

    COMMANDS = ("pause", "resume", "stop", "flatten", "resume_trading", "set_params", "reconcile")

    def __init__(self, lab: Any, *, operators: frozenset[str] | None = None) -> None:
        self.lab = lab
        self.operators = operators

    def is_operator(self, user: str | None) -> bool:
        """With no auth configured (`operators=None`) everyone is an operator."""
        return self.operators is None or (user is not None and user in self.operators)

    def execute(self, user: str | None, command: str, **args: Any) -> str:
        if not self.is_operator(user):
            raise CommandRefused(f"user {user!r} is not an operator; {command!r} refused")
        who = user or "operator"
        runner = self.lab.runner
        if command in ("pause", "resume", "stop"):
            if runner is None:
                raise CommandRefused(f"{command!r}: the runner is not started")
            action = {
                "pause": runner.pause,
                "resume": runner.resume,
                "stop": runner.stop_strategy,
            }[command]
            for name in runner.strategies:
                action(name, who=who)
            return f"{command} sent to {', '.join(runner.strategies) or 'no strategy'}"
        if command == "flatten":
            placed = self.lab.desk.flatten()
            return f"flatten placed {len(placed)} order(s)"
        if command == "resume_trading":
            reason = str(args.get("reason", "")).strip()
            if not reason:
                raise CommandRefused("resume_trading needs a reason")
            self.lab.risk.resume(who, reason)
            return "trading resumed"
        if command == "set_params":
            strategy = (runner.strategies if runner else {}).get(args.get("strategy"))
            if strategy is None:
                raise CommandRefused(f"set_params: no strategy {args.get('strategy')!r}")
            try:
                strategy.param.update(**dict(args.get("params") or {}))
            except (ValueError, TypeError) as exc:
                raise CommandRefused(f"set_params: {exc}") from None
            return f"{strategy.name} parameters set"
        if command == "reconcile":
            report = self.lab.reconciler.run_once()
            return f"reconciliation: {'ok' if report.ok else 'mismatches found'}"
        raise CommandRefused(f"unknown command {command!r}; expected one of {self.COMMANDS}")
