"""Starting the journal writer process (writer_process.py) and its first exchange: the settings
out, READY back. The engine's side of the conversation after that is writer_client.py."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec

import tradelab
from tradelab.errors import JournalError, RecoveryError
from tradelab.journal import wire
from tradelab.journal.writer_watch import process_state

WRITER_MMAP_THRESHOLD = 128 << 10  # glibc's default before it adapts


def size_pipe(fd: int, size: int) -> None:
    # Capped by /proc/sys/fs/pipe-max-size: the default pipe still works, with less slack.
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)


def spawn_writer_process(python: str = sys.executable) -> subprocess.Popen:
    """The process, its stdin and stdout pipes unbuffered; nothing is sent yet."""
    env = dict(os.environ)
    # The child must import this very tradelab, also when it runs from a source tree.
    root = str(Path(tradelab.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    # glibc raises its mmap threshold after the first large buffer is freed, so the writer's
    # pipe reads and row batches (100 KB to 1 MB) then come from the heap, which keeps them;
    # a fixed threshold returns each to the system when freed (writer RSS under a flood: ~8 MB
    # less, benchmarks/overload.py). Other C libraries ignore the variable; a user's value wins.
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(WRITER_MMAP_THRESHOLD))
    try:
        proc = subprocess.Popen(
            # -P: `-m` would put the working directory first on the path, and a tradelab
            # checkout (another version) or a tradelab/ folder there would be imported instead.
            [python, "-P", "-m", "tradelab.journal.writer_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            bufsize=0,
            # Its own process group: Ctrl-C in a terminal (SIGINT to the foreground group)
            # or a signal to the engine's group reaches the engine, which stops the writer
            # cleanly. The writer never outlives the engine: the engine's death closes its
            # stdin.
            process_group=0,
        )
    except OSError as exc:
        raise JournalError(
            f"cannot start the journal writer process with {python!r}: {exc.strerror or exc}"
            " (EngineConfig.writer_process=False keeps the writer on a thread)"
        ) from None
    return proc


START_GRACE_SECONDS = 60.0


def handshake(
    proc: subprocess.Popen,
    out: wire.FrameWriter,
    frames_in: wire.FrameBuffer,
    settings: wire.WriterSettings,
) -> list[tuple[bytes, bytes]]:
    """Send the settings; return the frames that came after READY. A JournalError saying why
    when the process did not open the journal (the caller then kills it)."""
    # Opening waits up to the open timeout for DuckDB's lock, then replays a WAL bounded by the
    # checkpoint size: a minute past that is a process that will not answer (stopped, hung).
    limit = settings.open_timeout_seconds + START_GRACE_SECONDS
    started = time.monotonic()
    try:
        out.send(wire.CONFIG, msgspec.json.encode(settings))
        frames = frames_in.next_frames(1.0)
        while frames == []:
            if time.monotonic() - started > limit:
                raise JournalError(
                    f"journal writer process (pid {proc.pid}) did not open the journal in "
                    f"{limit:.0f} s (it was {process_state(proc.pid, hint=False)})"
                )
            frames = frames_in.next_frames(1.0)
    except OSError as exc:
        raise JournalError(f"journal writer process did not start: {exc}") from None
    frame = frames[0] if frames else None
    if frame is None or frame[0] != wire.READY:
        if frame is not None:
            detail = frame[1].decode(errors="replace")
        else:  # end of file: it died, and said why on this process's stderr
            try:
                code: int | None = proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                code = None
            detail = f"it exited (exit code {code}); see the error output above"
        # Damage its sealer read back before READY is the file's, as for the engine later.
        damaged = frame is not None and frame[0] == wire.DAMAGED
        raise (RecoveryError if damaged else JournalError)(
            f"journal writer process could not open the journal: {detail}"
        )
    return frames[1:]
