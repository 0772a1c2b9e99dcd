"""Kill -9 an engine mid-storm N times (default 100) and check the journal after every kill.

Each round: a child (tradelab/crashdrill.py) recovers the journal and writes mixed events (2 %
critical) until SIGKILL at a random moment; then every acknowledged critical event must be in
the journal, seqs contiguous from 1, no lost tail, and recovered state == full replay.
Usage: .venv/bin/python scripts/crash_loop.py [--rounds 100] [--dir DIR] [--seed 1]
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import click

from tradelab.benchmarking.options import command, positive_float
from tradelab.crashdrill import run_round


@command(__doc__)
@click.option(
    "--rounds", type=click.IntRange(min=1), default=100, show_default=True, help="Kills to make."
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the journal lives (default: temp).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seeds kill times and events.")
@positive_float("--min-kill", 0.2, "Shortest time before a kill, seconds.")
@positive_float("--max-kill", 1.5, "Longest time before a kill, seconds.")
def main(rounds: int, directory: Path | None, seed: int, min_kill: float, max_kill: float) -> None:
    if max_kill < min_kill:
        raise click.BadParameter(
            f"{max_kill} is below --min-kill {min_kill}", param_hint="--max-kill"
        )
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="tradelab-crash-") as tmp:
        path = str((directory or Path(tmp)) / "crash.duckdb")
        acked = restored = 0
        started = time.perf_counter()
        for n in range(rounds):
            try:
                # Every 4th kill is timed from launch (often during start-up or recovery), the
                # rest from the child's READY (mid-storm). Every other kill takes the journal
                # writer process down with the engine.
                stats = run_round(
                    path,
                    seed * 1000 + n,
                    rng.uniform(min_kill, max_kill),
                    after_ready=n % 4 != 3,
                    with_writer=n % 2 == 0,
                )
            except AssertionError as exc:
                print(f"round {n + 1}: FAILED: {exc}")
                raise SystemExit(1) from None
            acked += stats["acked"]
            restored += stats["restored"]
            print(
                f"round {n + 1:3d}: killed at seq {stats['last_seq']:>8}"
                f"{' with its writer' if n % 2 == 0 else ''}, {stats['acked']:>4} critical "
                f"acked, {stats['restored']} restored from the ack log, recovered from "
                f"snapshot {stats['snapshot']} + {stats['replayed']} events",
                flush=True,
            )
        print(
            f"{rounds} kills, {acked} acknowledged critical events, 0 lost; "
            f"{restored} events restored from the ack log; "
            f"{time.perf_counter() - started:.0f} s"
        )


if __name__ == "__main__":
    main()
