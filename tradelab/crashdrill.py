"""The kill -9 drill: a storm of mixed events into a journal, killed with SIGKILL at a random
moment, then checked (`run_round`); used by tests/test_crash.py and scripts/crash_loop.py.

Child usage: python -m tradelab.crashdrill JOURNAL_PATH SEED. Prints `READY <seq>` after recovery and
`ACK <seq> <trade_id>` (flushed) after each critical submit returned, i.e. once it is durable.
"""

from __future__ import annotations

import random
import sys

from tradelab.engine import Engine

SYMBOLS = ("NIFTY", "NIFTY24DEC24000CE", "NIFTY24DEC24000PE")
STRATEGIES = ("crash", "hedge", "scalp")


def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    engine = Engine(
        journal_path=path,
        group_commit_ms=rng.choice((1.0, 5.0, 10.0)),
        snapshot_every_events=rng.choice((500, 2000, 5000)),
        segment_every_events=3000,
        segment_every_seconds=0.5,
        checkpoint_idle_seconds=0.2,
    ).start()
    out = sys.stdout
    out.write(f"READY {engine.store.version} {engine.journal.writer.pid}\n")
    out.flush()
    i = 0
    while True:
        i += 1
        roll = rng.random()
        symbol = SYMBOLS[i % 3]
        if roll < 0.02:
            trade_id = f"S{seed}-T{i}"
            # Several positions across strategies, so recovery (snapshot + tail) must rebuild
            # a multi-position book's float totals bit for bit, as a full replay does.
            strategy = STRATEGIES[(i // 7) % len(STRATEGIES)]
            traded = SYMBOLS[1 + (i // 3) % 2]
            event = engine.submit(
                "trade.executed",
                {
                    "position_id": f"{strategy}:{traded}",
                    "strategy": strategy,
                    "symbol": traded,
                    "lot_size": 75,
                    "quantity": 75 * (1 + i % 3),
                    "side": "BUY" if i % 2 else "SELL",
                    "price": 100.0 + (i % 40) * 0.05,
                    "fee": 23.6,
                    "trade_id": trade_id,
                },
                key=trade_id,
            )
            out.write(f"ACK {event.seq} {trade_id}\n")
            out.flush()
        elif roll < 0.03:
            engine.submit("risk.halted" if i % 2 else "risk.resumed", {"reason": f"r{i}"})
            out.write("ACKRISK\n")
            out.flush()
        elif roll < 0.1:
            engine.submit(
                "order.submitted",
                {"order_id": f"S{seed}-O{i}", "symbol": symbol, "side": "BUY", "quantity": 75},
            )
        else:
            engine.submit("mark.updated", {"symbol": symbol, "price": 100.0 + i % 500 * 0.05})


def run_round(
    path: str,
    seed: int,
    kill_after: float,
    *,
    after_ready: bool = True,
    with_writer: bool = False,
) -> dict:
    """Start a child on `path`, SIGKILL it `kill_after` s after it reported READY (or after it
    was launched, with after_ready=False: a kill during start-up and recovery), then check the
    journal. `with_writer` (only with after_ready) kills its journal writer process too, in the
    same instant; otherwise the orphaned writer commits what it had and exits.

    Raises AssertionError naming what broke: an acknowledged critical event missing, a seq gap
    (RecoveryError on open), a reported lost tail, or recovered state != full replay.
    """
    import os
    import signal
    import subprocess
    import time

    from tradelab.engine import build_store
    from tradelab.journal import Journal, recover, replay_into

    proc = subprocess.Popen(
        [sys.executable, "-m", "tradelab.crashdrill", path, str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    head = ""
    if after_ready:
        # Start-up takes 1-2 s on a loaded machine: time the kill from READY, so the kill lands
        # mid-storm however slow the start was.
        head = proc.stdout.readline()
        if not head.startswith("READY"):
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"child did not start: {head!r} {err[-2000:]}")
    if with_writer and not after_ready:
        raise ValueError("with_writer needs after_ready: the writer's pid comes with READY")
    time.sleep(kill_after)
    if with_writer:
        os.kill(int(head.split()[2]), signal.SIGKILL)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    out = head + out
    if proc.returncode != -signal.SIGKILL:
        raise AssertionError(f"child exited by itself ({proc.returncode}): {err[-2000:]}")
    acks = [line.split() for line in out.splitlines() if line.startswith("ACK ")]
    journal = Journal(path, timeout=30.0)  # an orphaned writer may still be committing
    try:
        assert journal.check.damage is None, f"tail lost after a process kill: {journal.check}"
        store = build_store()
        report = recover(journal, store)
        full = build_store()
        replay_into(full, journal.con)
        assert report.state_hash == full.state_hash(), (
            f"recovered state {report.state_hash} != full replay {full.state_hash()} "
            f"(snapshot {report.snapshot_id})"
        )
        trades = dict(
            journal.con.execute(
                "SELECT seq, key FROM events WHERE topic = 'trade.executed'"
            ).fetchall()
        )
        for _, seq, trade_id in acks:
            assert trades.get(int(seq)) == trade_id, (
                f"acknowledged critical event seq {seq} ({trade_id}) is not in the journal "
                f"(found {trades.get(int(seq))!r})"
            )
        return {
            "acked": len(acks),
            "last_seq": journal.last_seq,
            "snapshot": report.snapshot_id,
            "replayed": report.events_replayed,
            "positions": len(store.get("trading.positions") or {}),
            "ready": "READY" in out,
            "restored": journal.acklog_restored,
        }
    finally:
        journal.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
