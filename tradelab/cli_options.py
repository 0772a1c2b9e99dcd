"""Options more than one `tradelab` command takes, said the same way by each."""

from __future__ import annotations

import click


def config_option(what: str):
    """`--config FILE`: a tradelab.yaml; `what` says what the command takes from it."""
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, exists=True),
        default=None,
        help=f"A tradelab.yaml settings file ({what}); flags given override it. "
        "See `tradelab config`.",
    )
