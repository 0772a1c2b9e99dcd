"""`tradelab run` invoked in-process through click's CliRunner, on the sample session file."""

from __future__ import annotations

from click.testing import CliRunner

from tradelab.cli import main as cli

SAMPLE = "data/nifty_sample_1m.csv"  # one NIFTY session, 1m bars, index + 6 options


def invoke(*args):
    return CliRunner().invoke(cli, ["run", *args])
