"""Helpers of the damaged-journal tests: SQL on a journal file, the CLI, a clear-failure check."""

from __future__ import annotations

import duckdb
from click.testing import CliRunner

from tradelab.cli import main as cli

EVENTS = 600


def _sql(path, *statements):
    con = duckdb.connect(str(path))
    try:
        return [con.execute(s).fetchall() for s in statements]
    finally:
        con.close()


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _run(path):
    return _cli("run", "--journal", path, "--duration", "0", "--every", "0.1")


def _assert_clear_failure(result, code, *words):
    """Exit `code`, one `tradelab: error:` line naming the problem, no traceback."""
    assert result.exit_code == code, (result.output, result.stderr)
    assert "Traceback" not in result.output + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tradelab: error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
