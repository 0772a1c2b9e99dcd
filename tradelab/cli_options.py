"""Options more than one `tradelab` command takes, said the same way by each."""

from __future__ import annotations

import math

import click


def config_option(what: str, flags: bool = True):
    """`--config FILE`: a tradelab.yaml; `what` says what the command takes from it, `flags`
    whether it has flags of its own that override the file."""
    override = "; flags given override it" if flags else ""
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, exists=True),
        default=None,
        help=f"A tradelab.yaml settings file ({what}){override}. See `tradelab config`.",
    )


class NumberRange(click.FloatRange):
    """A FloatRange that refuses NaN and infinities: NaN passes any range test (every
    comparison with it is False), so `--duration nan` ran for ever."""

    name = "number range"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number
