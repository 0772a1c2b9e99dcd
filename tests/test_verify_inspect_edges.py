"""`tradelab verify` compares each snapshot with a full replay, and
`tradelab inspect` on a journal an engine holds reads its sealed segments."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import duckdb
from click.testing import CliRunner

from tradelab.cli import EXIT_DAMAGED
from tradelab.cli import main as cli
from tradelab.engine import Engine
from tradelab.journal.verify import verify_journal


def test_verify_fails_a_snapshot_whose_state_is_not_the_fold_of_its_events(tmp_path):
    # Its sha256 is right (it was written so), but its state is not what the events fold to:
    # recovery would start from a wrong state; verify is what tells.
    path = str(tmp_path / "j.duckdb")
    with Engine(journal_path=path, snapshot_every_seconds=0) as engine:
        for i in range(5):
            engine.submit("mark.updated", {"symbol": "A", "price": float(i)})
    con = duckdb.connect(path)
    sid, state = con.execute("SELECT id, state FROM snapshots ORDER BY id DESC LIMIT 1").fetchone()
    wrong = state.replace('"price":4.0', '"price":44.0', 1)
    assert wrong != state
    sha = hashlib.sha256(wrong.encode()).hexdigest()
    con.execute("UPDATE snapshots SET state = ?, sha256 = ? WHERE id = ?", [wrong, sha, sid])
    con.close()
    result = verify_journal(path)
    assert not result.ok
    assert any("DIFFERS from full replay" in p for p in result.problems), result.lines
    out = CliRunner().invoke(cli, ["verify", path])
    assert out.exit_code == EXIT_DAMAGED, out.output


def test_inspect_reads_the_segments_of_a_journal_a_running_engine_holds(tmp_path):
    path = str(tmp_path / "j.duckdb")
    script = textwrap.dedent(f"""
        import sys, time
        from tradelab.engine import Engine
        engine = Engine(journal_path={path!r}, snapshot_every_seconds=0, segment_every_events=10)
        engine.start()
        for i in range(25):
            engine.submit("mark.updated", {{"symbol": "A", "price": float(i)}})
        engine.flush()
        engine.seal_segments()
        print("ready", flush=True)
        sys.stdin.readline()
        engine.stop()
    """)
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        out = CliRunner().invoke(cli, ["inspect", path])
        assert out.exit_code == 0, out.output
        assert "mark.updated" in out.output and "sealed segments" in out.output
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(60)


def test_both_read_the_journal_a_config_file_names_when_no_path_is_given(tmp_path, monkeypatch):
    path = tmp_path / "named.duckdb"
    with Engine(journal_path=str(path), snapshot_every_seconds=0) as engine:
        engine.submit("mark.updated", {"symbol": "A", "price": 1.0})
    config = tmp_path / "t.yaml"
    config.write_text(f"lab:\n  journal_path: {path}\n")
    out = CliRunner().invoke(cli, ["verify", "--config", str(config)])
    assert out.exit_code == 0 and f"journal is whole: {path}" in out.output, out.output
    out = CliRunner().invoke(cli, ["inspect", "--json", "--config", str(config)])
    assert out.exit_code == 0 and f'"path": "{path}"' in out.output, out.output
    # Neither: the default journal (data/lab.duckdb, as `tradelab run` keeps it), said if absent.
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(cli, ["inspect"])
    assert out.exit_code == 2
    assert "no journal at 'data/lab.duckdb' (the default journal); give its PATH" in out.stderr
    # A path given wins over the file's.
    other = tmp_path / "missing.yaml"
    other.write_text(f"lab:\n  journal_path: {tmp_path / 'nothing.duckdb'}\n")
    out = CliRunner().invoke(cli, ["verify", str(path), "--config", str(other)])
    assert out.exit_code == 0, out.output
