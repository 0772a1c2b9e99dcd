"""`tradelab run | inspect | verify` exit codes and their one-line errors, including a journal
writer process killed in the middle of a real `tradelab run` subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from tradelab.cli import EXIT_UNUSABLE, EXIT_USAGE
from tradelab.cli import main as cli
from tradelab.engine import Engine


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (read from /proc: no extra dependency)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces, so split after its closing paren
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def test_killed_writer_makes_run_exit_3_naming_the_durable_seq(tmp_path):
    path = tmp_path / "lab.duckdb"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    run = subprocess.Popen(
        [sys.executable, "-m", "tradelab.cli", "run", "--journal", str(path)]
        + ["--duration", "60", "--every", "0.2", "--speed", "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # Two status lines: the engine runs and its writer process has committed events.
        for _ in range(3):
            assert run.stdout.readline(), run.stderr.read()
        [writer_pid] = _children(run.pid)
        os.kill(writer_pid, signal.SIGKILL)
        out, err = run.communicate(timeout=60)  # generous: 2 shared cores, a full stop
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == EXIT_UNUSABLE, (out, err)
    assert "stopped cleanly" not in out and "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("tradelab: error: the journal writer failed")
    durable = int(re.search(r"Events up to seq (\d+)", line).group(1))
    assert durable > 0 and "restarting on it recovers them" in line
    # What the line promised: a restart recovers at least those events.
    with Engine(journal_path=str(path)) as engine:
        assert engine.recovery_report.last_seq >= durable


def test_usage_errors_exit_2_and_a_locked_journal_is_not_damage(tmp_path):
    missing = CliRunner().invoke(cli, ["verify", str(tmp_path / "none.duckdb")])
    assert missing.exit_code == EXIT_USAGE
    path = tmp_path / "lab.duckdb"
    with Engine(journal_path=str(path), writer_process=False) as engine:
        engine.submit("mark.updated", {"symbol": "NIFTY", "price": 1.0})
        engine.flush()
        held = CliRunner().invoke(cli, ["run", "--journal", str(path), "--duration", "0"])
    assert held.exit_code == EXIT_UNUSABLE, held.output
    assert held.stderr.startswith("tradelab: error:") and "Traceback" not in held.stderr
    assert any(word in held.stderr for word in ("in use", "locked", "held by an engine"))


def test_clean_run_exits_0_and_tells_the_state_hash(tmp_path):
    path = tmp_path / "lab.duckdb"
    start = time.monotonic()
    result = CliRunner().invoke(cli, ["run", "--journal", str(path), "--duration", "0"])
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "stopped cleanly at seq" in result.output and result.stderr == ""
    assert time.monotonic() - start < 60  # generous: only guards against a hang
    assert CliRunner().invoke(cli, ["verify", str(path)]).exit_code == 0


def test_debug_shows_the_traceback_behind_the_one_line_error(tmp_path):
    junk = tmp_path / "junk.duckdb"
    junk.write_text("hello\n")
    plain = CliRunner().invoke(cli, ["inspect", str(junk)])
    debug = CliRunner().invoke(cli, ["--debug", "inspect", str(junk)])
    assert plain.exit_code == debug.exit_code == 1
    assert plain.stderr.startswith("tradelab: error: ") and "Traceback" not in plain.stderr
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.rstrip().splitlines()[-1] == plain.stderr.rstrip()


def test_ctrl_c_in_a_command_that_does_not_answer_it_is_exit_130_in_one_line(tmp_path, monkeypatch):
    """verify and inspect ended in click's "Aborted!" and exit 1, the code for a damaged
    journal."""
    from click.testing import CliRunner

    from tradelab.cli import EXIT_INTERRUPTED
    from tradelab.cli import main as cli
    from tradelab.journal import verify

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(verify, "verify_journal", interrupted)
    journal = tmp_path / "lab.duckdb"
    journal.touch()
    result = CliRunner().invoke(cli, ["verify", str(journal)])
    assert result.exit_code == EXIT_INTERRUPTED, (result.output, result.stderr)
    assert "tradelab: error: interrupted (Ctrl-C)" in result.stderr


def test_a_ctrl_c_duckdb_caught_mid_query_is_exit_130_not_a_damaged_journal(tmp_path, monkeypatch):
    # DuckDB turns a Ctrl-C during a query into its own error: verify and inspect printed a
    # traceback and exited 1, the code for a damaged journal (or called the journal damaged).
    import duckdb

    from tradelab.cli import EXIT_INTERRUPTED
    from tradelab.journal import verify

    journal = tmp_path / "lab.duckdb"
    with Engine(journal_path=str(journal)) as engine:
        engine.submit("mark.updated", {"symbol": "A", "price": 1.0})
    for raised in (RuntimeError("Query interrupted"), duckdb.InterruptException("INTERRUPT")):

        def interrupted(con, path, raised=raised):
            raise raised

        monkeypatch.setattr(verify, "check_events", interrupted)
        for command in ("verify", "inspect"):
            result = CliRunner().invoke(cli, [command, str(journal)])
            assert result.exit_code == EXIT_INTERRUPTED, (command, raised, result.stderr)
            assert result.stderr.strip() == "tradelab: error: interrupted (Ctrl-C)"
