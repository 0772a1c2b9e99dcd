"""Big state: a snapshot of many megabytes through the default engine (the writer process).

The state is --megabytes of 10 KB signals. Timed, per round: `snapshot_now()` (serialized in the
engine, sent down the pipe, written by the writer process) and, half a second into it, one
critical event and one ordinary submit from another thread, which must not wait for the
snapshot. Medians of the rounds.

Usage: .venv/bin/python benchmarks/big_snapshot.py [--megabytes 25] [--rounds 3] [--json]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import click

from tradelab.benchmarking import format_table, machine_info
from tradelab.benchmarking.options import command, json_option, rounds_option
from tradelab.engine import Engine

BLOB = "q" * 10_000


def one_round(directory: Path, megabytes: int) -> dict[str, float]:
    engine = Engine(
        journal_path=str(directory / "big.duckdb"),
        snapshot_every_events=0,
        snapshot_every_seconds=0,
    ).start()
    try:
        for i in range(megabytes * 100):
            engine.submit("signal.detected", {"blob": BLOB}, key=f"s{i}")
        engine.flush(timeout=120)
        took: dict[str, float] = {}

        def snapshot() -> None:
            started = time.perf_counter()
            took["bytes"] = engine.snapshot_now(timeout=300).size_bytes
            took["snapshot_s"] = time.perf_counter() - started

        thread = threading.Thread(target=snapshot)
        thread.start()
        time.sleep(0.5)
        started = time.perf_counter()
        engine.submit("risk.halted", {"reason": "benchmark"})
        took["critical_during_s"] = time.perf_counter() - started
        started = time.perf_counter()
        engine.submit("signal.detected", {"a": 1}, key="z")
        took["ordinary_during_s"] = time.perf_counter() - started
        thread.join()
    finally:
        started = time.perf_counter()
        engine.stop(timeout=300)
        took["stop_s"] = time.perf_counter() - started
    return took


@command(__doc__)
@click.option("--megabytes", type=click.IntRange(min=1), default=25, show_default=True)
@rounds_option(3)
@json_option
def main(megabytes: int, rounds: int, as_json: bool) -> None:
    results = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="tradelab-bigsnap-") as tmp:
            results.append(one_round(Path(tmp), megabytes))
    medians = {k: statistics.median(r[k] for r in results) for k in results[0]}
    if as_json:
        print(json.dumps({"megabytes": megabytes, "rounds": results, **medians, **machine_info()}))
        return
    print(format_table(["figure", "median"], [[k, f"{v:,.3f}"] for k, v in medians.items()]))


if __name__ == "__main__":
    main()
