"""A replica across a SIGKILL of the server's process: it never holds an event the journal lost,
and after the restart (new epoch, same journal) it resynchronizes to the server's state hash."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradelab.bridge import connect

SERVER = """
import sys
from tradelab.bridge import BridgeServer
from tradelab.engine import Engine

journal, port, storm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
engine = Engine(
    journal_path=journal, snapshot_every_seconds=0, snapshot_every_events=0,
    open_timeout_seconds=20.0,
).start()
server = BridgeServer(engine, port=port).start()
print("ready", engine.recovery_report.last_seq, flush=True)
i = 0
while storm == 0 or i < storm:  # 0: until killed
    engine.submit("mark.updated", {"symbol": f"S{i % 40}", "price": 100.0 + i})
    i += 1
engine.flush()
print("hash", engine.store.version, engine.store.state_hash(), flush=True)
sys.stdin.read()  # until the test closes our stdin
server.stop()
engine.stop()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(script: Path, journal: Path, port: int, storm: int) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(journal), str(port), str(storm)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline().split()
    assert line and line[0] == "ready", f"server did not start: {line}"
    return proc, int(line[1])


@pytest.mark.slow
def test_replica_resyncs_to_the_servers_hash_after_sigkill_and_restart(tmp_path):
    script, journal, port = tmp_path / "server.py", tmp_path / "lab.duckdb", _free_port()
    script.write_text(SERVER)
    first, _ = _serve(script, journal, port, storm=0)
    second = None
    try:
        replica = connect(f"ws://127.0.0.1:{port}/bridge", backoff_seconds=(0.05, 0.3))
        with replica:
            assert replica.wait_for_seq(3_000, 30), replica.metrics()
            first.send_signal(signal.SIGKILL)  # mid-storm
            first.wait(10)
            time.sleep(0.2)
            held = replica.seq
            epoch = replica.epoch
            second, recovered = _serve(script, journal, port, storm=2_000)
            # Everything the replica was sent had been durable: the restarted journal has it.
            assert held <= recovered
            kind, seq, state_hash = second.stdout.readline().split()
            assert kind == "hash"
            assert replica.wait_for_seq(int(seq), 30), replica.metrics()
            assert replica.seq == int(seq)
            assert replica.store.state_hash() == state_hash
            metrics = replica.metrics()
            assert metrics["snapshots_loaded"] == 2 and replica.epoch != epoch
            assert metrics["connects"] >= 2 and metrics["gaps"] == 0
            assert metrics["last_error"] == ""  # connected again: the refusals are over
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.stdin.close()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
