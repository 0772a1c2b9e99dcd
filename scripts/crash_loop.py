"""Kill -9 an engine mid-storm N times (default 100) and check the journal after every kill.

Each round: a child (tradelab/crashdrill.py) recovers the journal and writes mixed events (2 %
critical) until SIGKILL at a random moment; then every acknowledged critical event must be in
the journal, seqs contiguous from 1, no lost tail, and recovered state == full replay.
Usage: .venv/bin/python scripts/crash_loop.py [--rounds 100] [--dir DIR] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from tradelab.crashdrill import run_round


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--dir", default=None, help="where the journal lives (default: temp)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-kill", type=float, default=0.2)
    parser.add_argument("--max-kill", type=float, default=1.5)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="tradelab-crash-") as tmp:
        path = str(Path(args.dir or tmp) / "crash.duckdb")
        acked = restored = 0
        started = time.perf_counter()
        for n in range(args.rounds):
            try:
                # Every 4th kill is timed from launch (often during start-up or recovery), the
                # rest from the child's READY (mid-storm). Every other kill takes the journal
                # writer process down with the engine.
                stats = run_round(
                    path,
                    args.seed * 1000 + n,
                    rng.uniform(args.min_kill, args.max_kill),
                    after_ready=n % 4 != 3,
                    with_writer=n % 2 == 0,
                )
            except AssertionError as exc:
                print(f"round {n + 1}: FAILED: {exc}")
                return 1
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
            f"{args.rounds} kills, {acked} acknowledged critical events, 0 lost; "
            f"{restored} events restored from the ack log; "
            f"{time.perf_counter() - started:.0f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
