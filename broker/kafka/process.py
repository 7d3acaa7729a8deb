"""Child processes we start on loopback: a free port, death with the parent, a graceful stop.

Shared by the embedded broker, the Apache Kafka test cluster and the tests' throwaway
PostgreSQL server, so that each stops with its owner the same way.
"""

from __future__ import annotations

import ctypes
import signal
import socket

_PR_SET_PDEATHSIG = 1


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
