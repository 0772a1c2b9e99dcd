"""`python -m tradelab ...`: the `tradelab` command, for an environment without its script."""

from tradelab.cli import entry

entry()
