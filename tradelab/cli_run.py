"""The body of `tradelab run`: a `Lab` session driven from the command line, its `--speed` type
(the progress display: tradelab.cli_progress). Imported by `tradelab.cli` when the command runs.

Thread model: the caller's thread polls the session's status every `every` seconds; the Lab's
own threads (feed, runner, engine) do the work.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import click

from tradelab.cli_progress import RunProgress, money
from tradelab.errors import LifecycleError, RecoveryError, TradelabError
from tradelab.journal.segments import SEGMENTS_STALE

if TYPE_CHECKING:
    from tradelab.cli_signals import StopSignals


class SpeedType(click.ParamType):
    """`--speed`: simulated seconds per wall second: 1, 60, 60x (or 60×), or max (no pacing)."""

    name = "speed"

    def convert(self, value: object, param: object, ctx: object) -> float | None:
        if value is None or isinstance(value, float):
            return value
        text = str(value).strip().lower()
        if text == "max":
            return None
        try:
            speed = float(text[:-1] if text.endswith(("x", "×")) else text)  # one suffix
        except ValueError:
            speed = float("nan")
        if not 0.001 <= speed <= 1_000_000:  # also false for nan
            self.fail(
                f"{value!r} is not a speed; expected a number from 0.001 to 1000000 "
                "(1, 60, 60x) or max",
                param,
                ctx,
            )
        return speed


def flags_given(ctx: click.Context, **flags: Any) -> dict[str, Any]:
    """The flags given on the command line: only these override the settings file; the others
    keep the file's values (or the defaults, which the flags' defaults repeat)."""
    default = click.core.ParameterSource.DEFAULT
    return {k: v for k, v in flags.items() if ctx.get_parameter_source(k) is not default}


def run_session(
    *,
    file: str | None,
    config_file: str | None,
    given: dict[str, Any],
    params: dict[str, str],
    duration: float | None,
    every: float,
    log_handlers: list[logging.Handler],
    signals: StopSignals,
    resume_reason: str | None = None,
) -> None:
    """Run the session until it ends, `duration` passes, Ctrl-C or SIGTERM (exit
    0: a clean stop, as at the end); other exit codes as `cli`.
    `given`: the flags given on the command line (feed, strategy_name, journal, seed,
    ticks_per_second, speed), which override `config_file`.
    `log_handlers`: the command line's stderr handlers, quietened once the writer failed.
    `signals`: Ctrl-C and SIGTERM, caught from before anything opens (a Ctrl-C in start-up
    stops cleanly too).
    `resume_reason`: lift a risk halt the journal holds, as the user running the command."""
    from tradelab.cli import EXIT_USAGE, exit_code_for, fail
    from tradelab.errors import TradelabError
    from tradelab.settings import apply_overrides, load_settings

    try:
        settings = load_settings(config_file)
    except TradelabError as exc:
        fail(exc, exit_code_for(exc))
    feed = given.get("feed", settings.lab.feed)
    strategy_name = given.get("strategy_name", settings.lab.strategy)
    if given.get("feed") == "replay" and file is None:
        fail("--feed replay needs a bar FILE: tradelab run --feed replay FILE", EXIT_USAGE)
    ignored = [f"--{k.replace('_', '-')}" for k in ("seed", "ticks_per_second") if k in given]
    if feed == "replay" and ignored:
        fail(f"{' and '.join(ignored)} set the sim feed; a replay plays its FILE", EXIT_USAGE)
    if feed == "sim" and file is not None:
        fail(f"FILE {file!r} is only read with --feed replay (the sim feed has none)", EXIT_USAGE)

    if strategy_name != "none":  # checked here so the error names the option
        from tradelab.runner.strategy import coerce_params
        from tradelab.runner.strategy_names import strategy_class_named

        try:
            cls = strategy_class_named(strategy_name, also=("none",))
        except TradelabError as exc:
            fail(f"--strategy: {exc}", EXIT_USAGE)
        try:
            coerce_params(cls, params)
        except TradelabError as exc:
            fail(f"--param: {exc}", EXIT_USAGE)
    elif params:
        chosen = "--strategy none" if "strategy_name" in given else "lab.strategy 'none'"
        fail(f"--param {', '.join(params)} given with {chosen}", EXIT_USAGE)

    try:
        apply_overrides(settings, _overrides(settings, given, file, params))
    except TradelabError as exc:
        fail(exc, exit_code_for(exc))

    if resume_reason is not None and not resume_reason.strip():
        # Checked before the session starts: afterwards the feed has already run.
        fail("--resume-trading needs a reason (non-empty text): why trading may resume", EXIT_USAGE)
    if signals.stop_requested:  # Ctrl-C before anything was opened: nothing to stop
        click.echo("stopped before the session started")
        return
    try:
        lab = settings.make_lab()
        lab.start()  # a Ctrl-C meanwhile is kept: the session stops as soon as it has started
    except TradelabError as exc:
        fail(exc, exit_code_for(exc))
    click.echo(lab.engine.recovery_report.summary())  # what was recovered, then any resume
    if resume_reason is not None:
        _resume_trading(lab, resume_reason)
    _watch(lab, feed, duration, every, log_handlers, signals)


def _resume_trading(lab: Any, reason: str) -> None:
    import getpass

    from tradelab.cli import EXIT_USAGE, fail
    from tradelab.errors import TradelabError

    state = lab.risk.state
    if state == "active":
        click.echo("risk: active, nothing to resume (--resume-trading ignored)")
        return
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (a container's numeric user)
        user = "unknown user"
    who = f"{user} (tradelab run)"
    try:
        lab.risk.resume(by=who, reason=reason)
    except TradelabError as exc:
        lab.stop()
        fail(f"--resume-trading: {exc}", EXIT_USAGE)
    click.echo(f"risk: was {state}; trading resumed by {who}: {reason}")


def _overrides(
    settings: Any, given: dict[str, Any], file: str | None, params: dict[str, str]
) -> dict[str, Any]:
    """The command line's flags as dotted settings over those of the file."""
    out: dict[str, Any] = {}
    for flag, key in [
        ("feed", "lab.feed"),
        ("journal", "lab.journal_path"),
        ("seed", "lab.seed"),
        ("ticks_per_second", "lab.ticks_per_second"),
        ("accept_lost_tail", "engine.accept_lost_tail"),
    ]:
        if flag in given:
            out[key] = given[flag]
    if "speed" in given:
        out["lab.as_fast_as_possible"] = given["speed"] is None
        if given["speed"] is not None:
            out["lab.speed"] = given["speed"]
    if file is not None:
        out["lab.replay_path"] = file
    strategy_params = dict(settings.lab.strategy_params)
    if given.get("strategy_name", settings.lab.strategy) != settings.lab.strategy:
        out["lab.strategy"] = given["strategy_name"]
        strategy_params = {}  # the file's parameters are another strategy's
    if params or strategy_params != settings.lab.strategy_params:
        out["lab.strategy_params"] = {**strategy_params, **params}
    return out


def _watch(
    lab: Any,
    feed: str,
    duration: float | None,
    every: float,
    log_handlers: list[logging.Handler],
    signals: StopSignals,
) -> None:
    """Show progress until the session ends, `duration` passes or Ctrl-C (or SIGTERM); then
    stop and report."""
    import time

    from tradelab.cli import EXIT_DAMAGED, EXIT_STRATEGY_FAILED, EXIT_UNUSABLE, fail
    from tradelab.cli_progress import count_of

    journal = lab.config.journal_path
    # Named as it trades (its strategy_name), not as the config gave it (a FILE.py:Class path).
    strategy_name = ", ".join(s.name for s in lab.strategies) or lab.config.strategy
    engine, broker = lab.engine, lab.broker

    def cannot_go_on() -> bool:  # the session cannot go on: the journal or the broker's account
        return engine.journal_failure is not None or broker.failure is not None

    # Once the writer (or the account file) has failed, the complaints that follow (stop
    # cannot snapshot, a strategy's order refused) are noise: `fail` below tells the cause once.
    for handler in log_handlers:
        handler.addFilter(lambda record: not cannot_go_on())
    progress = RunProgress(lab, sys.stdout.isatty())
    ends = None if duration is None else time.monotonic() + duration
    shown = time.monotonic()
    ended = False
    try:
        # Short waits: a signal only sets a flag (raising it here could cut short a stop).
        while not signals.stop_requested:
            if lab.session_finished.wait(0.1):
                ended = True
                break
            if cannot_go_on():
                break
            now = time.monotonic()
            if now - shown >= every or (ends is not None and now >= ends):
                progress.show()
                shown = now
            if ends is not None and now >= ends:
                break
        if signals.stop_requested:
            progress.end()
            click.echo("stopping...")
        elif ended and not cannot_go_on() and lab.feed_failure is None:
            progress.show()
            progress.end()
            click.echo(f"the {'replayed' if feed == 'replay' else 'simulated'} session ended")
    finally:
        signals.stopping = True  # from here a signal is answered, not obeyed: see StopSignals
        try:
            lab.stop()
        except LifecycleError as exc:  # the kernel did not finish: said below, in one line
            unstopped: LifecycleError | None = exc
        else:
            unstopped = None
    progress.end()
    failure = engine.journal_failure
    if broker.failure is not None:
        fail(_broker_down(lab, journal), EXIT_UNUSABLE)
    if isinstance(failure, RecoveryError):  # read back damaged: a restart would not mend it
        fail(
            f"{failure}. Stopped (seq {engine.metrics()['durable_seq']} durable) rather than "
            f"append more to it; keep a copy of {journal} before trying anything.",
            EXIT_DAMAGED,
        )
    if failure is not None:
        # Only what the writer acknowledged is safe; the store may be ahead of it.
        durable = engine.metrics()["durable_seq"]
        fail(
            f"the journal writer failed: {failure}. Events up to seq {durable} (every "
            f"acknowledged critical event) are durable in {journal} or its ack log, and "
            f"restarting on it recovers them; events after seq {durable} (up to "
            f"{lab.store.version}) may be lost.",
            EXIT_UNUSABLE,
        )
    if unstopped is not None:
        fail(
            f"the session did not stop cleanly: {unstopped}. Events up to seq "
            f"{engine.metrics()['durable_seq']} are durable in {journal} or its ack log; a "
            "restart recovers them.",
            EXIT_UNUSABLE,
        )
    s = lab.status()
    click.echo(
        # The live book: earlier runs' and other strategies' too, its finished orders and fills
        # trimmed to the last lab.book_history_sessions sessions (the journal keeps them all).
        f"live book (this journal's last {lab.config.book_history_sessions} sessions; this "
        f"run's strategy: {strategy_name}): "
        f"{count_of(s['orders'], 'order')}, "
        f"{count_of(s['fills'], 'fill')}, {count_of(s['open_positions'], 'open position')}, "
        f"day P&L {money(s['daily_pnl'])}"
    )
    if engine.segments_failure is not None:
        click.echo(f"journal segments: {engine.segments_failure}. {SEGMENTS_STALE}.")
    mismatches = lab.store.get("reconciliation.mismatches", None) or {}
    if mismatches:  # found by the last run and not fixed (flagged, or a dry run)
        kinds = sorted({m.get("kind", "?") for m in mismatches.values()})
        click.echo(
            f"reconciliation: {count_of(len(mismatches), 'difference')} with the broker not "
            f"fixed ({', '.join(kinds)}); query the reconciliation_mismatches view"
        )
    if s["broker"] != "ok":
        click.echo(
            f"broker: {s['broker']} at the stop ({s['broker_reason']}); the reconciler "
            "compares it with the book again when it answers (the next start)"
        )
    if s["risk"] != "active":
        click.echo(
            f"risk: {s['risk']} ({s['risk_reason']}); it stays so across restarts: lift it with "
            "tradelab run --resume-trading REASON, or the console's Resume trading"
        )
    if s.get("flatten_given_up"):
        click.echo(
            "risk: the breach's flatten was refused by the broker on every try and given up; "
            "positions are still open: close them (the console's Flatten all)"
        )
    stuck = lab.runner is not None and not lab.runner.stopped_in_time
    if engine.stop_problem is not None:  # the events are in; a start replays past it
        click.echo(f"at the stop, {engine.stop_problem}; the next start replays more")
    clean = not stuck and engine.stop_problem is None
    click.echo(
        f"{'stopped cleanly' if clean else 'journal closed'} at seq {lab.store.version}; state "
        f"hash {lab.store.state_hash()[:16]}; inspect with: tradelab inspect {journal}"
    )
    if stuck:
        fail(
            "the strategies did not stop: a hook was still running when the session stopped, "
            "so on_stop may not have run (the journal is whole up to the seq above)",
            EXIT_STRATEGY_FAILED,
        )
    if lab.feed_failure is not None:
        why = lab.feed_failure
        said = str(why) if isinstance(why, TradelabError) else f"{type(why).__name__}: {why}"
        fail(
            f"the feed stopped before the session's end: {said}. The journal holds "
            "every event up to the seq above; a restart on it resumes the session there.",
            EXIT_UNUSABLE,
        )
    overflow = lab.runner.overflow_stopped if lab.runner is not None else None
    if overflow is not None:  # said in the log as it happened; the run's outcome is this
        seq, names = overflow
        fail(
            f"{', '.join(names)} stopped after seq {seq}: the runner's inbox overflowed (raise "
            "runner.inbox_limit); the session and its journal went on",
            EXIT_STRATEGY_FAILED,
        )
    failed = lab.runner.failures() if lab.runner is not None else {}
    if failed:
        name, why = next(iter(failed.items()))
        fail(
            f"strategy {name} failed: {why}; it stopped trading there (the session and "
            "its journal went on)",
            EXIT_STRATEGY_FAILED,
        )


def _broker_down(lab: Any, journal: str) -> str:
    """The line a session whose broker went down ends on: why, and what is safe."""
    failure, version = lab.engine.journal_failure, lab.store.version
    if failure is None:
        journal_said = f"the journal {journal} holds every event up to seq {version}"
    else:
        durable = lab.engine.metrics()["durable_seq"]
        journal_said = (
            f"the journal writer failed too ({failure}): events up to seq {durable} are durable "
            f"in {journal} or its ack log, those after it (up to {version}) may be lost"
        )
    return (
        f"{lab.broker.failure}. The session stopped there: every fill reported to the book is "
        f"in the account file, and {journal_said}; free the space and restart on the same "
        "journal to resume (the reconciler compares the book with the account on start)."
    )
