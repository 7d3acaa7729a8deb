"""Child processes we start on loopback: a free port, death with the parent, a graceful stop.

Shared by the embedded broker, the Apache Kafka test cluster and the tests' throwaway
PostgreSQL server, so that each stops with its owner the same way.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import signal
import socket
import subprocess
from collections.abc import Sequence

_PR_SET_PDEATHSIG = 1
# How often a graceful stop looks whether the processes have gone: short against any
# grace period, long enough not to spin.
_STOP_POLL_SECONDS = 0.05


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """``preexec_fn`` for ``Popen``: the kernel sends SIGTERM when our process dies,
    also by SIGKILL, when no cleanup of ours can run."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (a caller that loses the race
    to bind it retries with another)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def stop_processes(procs: Sequence[subprocess.Popen[bytes]], grace_seconds: float) -> None:
    """Stop several processes together: SIGTERM to each that still runs, up to
    ``grace_seconds`` for all to exit (a Kafka node's controlled shutdown), then SIGKILL
    to the rest. Cancelled while waiting (Ctrl-C twice), it still SIGKILLs them all
    before the cancellation goes on: none is ever left running. Reaps every one."""
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        proc.terminate()
        # A stopped process (SIGSTOP, a debugger) acts on SIGTERM only once continued.
        proc.send_signal(signal.SIGCONT)
    try:
        for _ in range(math.ceil(grace_seconds / _STOP_POLL_SECONDS)):
            if all(proc.poll() is not None for proc in running):
                break
            await asyncio.sleep(_STOP_POLL_SECONDS)
    finally:
        for proc in running:
            if proc.poll() is None:
                proc.kill()
            proc.wait()  # after SIGKILL: at once
