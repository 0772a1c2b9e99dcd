"""Child processes for `benchmarks/replica.py`: full replicas (`tradelab.connect`) and bare
protocol readers, each driven by commands over a pipe, started once and reused every round.

In the package (not the script) so that spawned children import them by name.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

BACKOFF = (0.01, 0.05)  # the replicas' reconnect backoff (s): catch-up is not spent sleeping


def replica_process(pipe: Any) -> None:
    """A replica in a child process, driven by commands over `pipe`."""
    from tradelab.bridge import connect

    replica = None
    lags_ns: list[int] = []
    while True:
        cmd, arg = pipe.recv()
        if cmd == "connect":  # arg: (url, record each event's lag)
            url, record_lags = arg
            lags_ns.clear()
            replica = connect(url, backoff_seconds=BACKOFF)
            if record_lags:
                record = lags_ns.append
                replica.subscribe("*", lambda e, record=record: record(time.time_ns() - e.ts))
            pipe.send(replica.seq)
        elif cmd == "wait":  # until the replica applied seq `arg`: (in step, when, its metrics)
            cpu = time.process_time()
            in_step = replica.wait_for_seq(arg, timeout=120)
            metrics = {**replica.metrics(), "cpu_s": time.process_time() - cpu}
            pipe.send((in_step, time.time(), metrics))
        elif cmd == "lags":
            pipe.send(list(lags_ns))
        elif cmd == "close":
            replica.close()
            replica = None
            pipe.send(None)
        else:
            return


def reader_process(pipe: Any) -> None:
    """Protocol-level readers in a child process: each says hello and discards every frame.
    What the engine's process pays to serve them is what it pays for replicas elsewhere."""
    import asyncio

    import tornado.websocket

    from tradelab.bridge import protocol

    async def read(url: str, ready: asyncio.Queue) -> None:
        conn = await tornado.websocket.websocket_connect(url, max_message_size=1 << 30)
        conn.write_message(protocol.encode(protocol.Hello(version=1)), binary=True)
        await ready.put(conn)
        while await conn.read_message() is not None:
            pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tasks, conns = [], []
        while True:
            cmd, arg = await loop.run_in_executor(None, pipe.recv)
            if cmd == "connect":  # arg: (url, how many)
                ready: asyncio.Queue = asyncio.Queue()
                tasks = [asyncio.create_task(read(arg[0], ready)) for _ in range(arg[1])]
                conns = [await ready.get() for _ in tasks]
                pipe.send(len(conns))
            elif cmd == "close":
                for conn in conns:
                    conn.close()
                await asyncio.gather(*tasks, return_exceptions=True)
                pipe.send(None)
            else:
                return

    asyncio.run(main())


def idle_reader_process(pipe: Any) -> None:
    """`reader_process` at the idle scheduling class (SCHED_IDLE, Linux): the readers take only
    CPU nothing else wants, as replicas on other machines would take none of the engine's."""
    import os

    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # threads started later inherit
    reader_process(pipe)


class Replicas:
    """`n` replica processes, started once and reused for every round."""

    def __init__(self, n: int, target: Any = replica_process) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes, self.procs = [], []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=target, args=(child,), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def ask(self, cmd: str, arg: Any = None, count: int | None = None) -> list[Any]:
        pipes = self.pipes[: count if count is not None else len(self.pipes)]
        for pipe in pipes:
            pipe.send((cmd, arg))
        return [pipe.recv() for pipe in pipes]

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(("exit", None))
        for proc in self.procs:
            proc.join(10)
