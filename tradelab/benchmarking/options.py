"""Click options shared by the benchmark and script entry points: `benchmarks/*.py`,
`scripts/*.py` and `tradelab bench ...` take --json, --rounds and their size option alike.

No threads: decorators, applied when a command is defined. Imports only click, so `tradelab
--help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from tradelab.cli_options import NumberRange

F = TypeVar("F", bound=Callable[..., Any])

# -h as well as --help, as argparse accepted before.
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object, not a table."
)


def command(doc: str | None) -> Callable[[Callable[..., Any]], click.Command]:
    """A click command whose help is the first line of `doc` (the script's module docstring)."""
    return click.command(
        help=(doc or "").strip().splitlines()[0], context_settings=CONTEXT_SETTINGS
    )


def rounds_option(default: int) -> Callable[[F], F]:
    return click.option(
        "--rounds",
        type=click.IntRange(min=1),
        default=default,
        show_default=True,
        help="Interleaved rounds; medians are reported.",
    )


def count_option(name: str, default: int, help: str) -> Callable[[F], F]:
    """A positive int size option (`--n`, `--events`, `--marks`, ...)."""
    return click.option(
        name, type=click.IntRange(min=1), default=default, show_default=True, help=help
    )


def positive_float(name: str, default: float, help: str) -> Callable[[F], F]:
    """A float option that must be > 0 (seconds, rates, speeds)."""
    return click.option(
        name,
        type=NumberRange(min=0, min_open=True),
        default=default,
        show_default=True,
        help=help,
    )


def bench_options(
    n_default: int, n_help: str, *, rounds_default: int = 5, n_name: str = "--n"
) -> Callable[[F], F]:
    """--json, --rounds and the benchmark's size option, in that order in --help."""

    def decorate(command: F) -> F:
        for option in (count_option(n_name, n_default, n_help), rounds_option(rounds_default)):
            command = option(command)
        return json_option(command)

    return decorate


# The store benchmark's reactive layer refresh rate (benchmarks/store.py and `tradelab bench store`).
rate_hz_option = click.option(
    "--rate-hz",
    type=NumberRange(min=0.1, max=1000),
    default=20.0,
    show_default=True,
    help="Refresh rate of the reactive layer.",
)


def _engine_overrides(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict:
    from tradelab.config import EngineConfig  # here: `--help` must not import the engine

    overrides: dict[str, Any] = {}
    for text in values:
        key, sep, raw = text.partition("=")
        spec = EngineConfig.param.objects("existing").get(key)
        if not sep or spec is None or key == "name":
            raise click.BadParameter(
                f"{text!r}: expected KEY=VALUE with KEY an EngineConfig setting"
            )
        kind = type(spec.default)
        try:
            value = raw.lower() in ("1", "true", "yes") if kind is bool else kind(raw)
            EngineConfig(**{key: value})  # the setting's own bounds
        except (TypeError, ValueError) as exc:
            raise click.BadParameter(f"{text!r}: {exc}") from None
        overrides[key] = value
    return overrides


def _tuned_collector(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:  # before the command runs: the process as the `tradelab` command has it
        from tradelab.collector import tune_collector

        tune_collector()
    return value


tuned_collector_option = click.option(
    "--tuned-collector",
    is_flag=True,
    callback=_tuned_collector,
    expose_value=False,
    help="Tune this process's garbage collector as the tradelab command does "
    "(tradelab.tune_collector).",
)

engine_option = click.option(
    "--engine",
    "engine_overrides",
    multiple=True,
    callback=_engine_overrides,
    metavar="KEY=VALUE",
    help="EngineConfig setting of the engines under test (repeatable), e.g. kernel_batch_size=200.",
)
