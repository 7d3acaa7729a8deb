"""The bench's side of the receiver process (``broker.bench.receiver``): start it, read
what it delivered and when, and stop it on the way out, also on failure or Ctrl-C.

``async with receiver_process(bench, agency) as deliveries:`` returns once the receiver
says it is ready; ``deliveries.at`` fills with ``message id -> time.time_ns()`` as it
delivers. On exit its standard input is closed (its signal to stop), it is given
``STOP_GRACE_SECONDS``, then killed; it is always waited for. Were the bench itself
killed, the kernel would close that pipe, and the receiver would stop all the same.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from broker.bench.deployments import BenchDeployment

# How long the receiver may take to start (a Python process, its imports, its keys
# unsealed, its reader connected) before the bench gives up on it.
READY_SECONDS = 60.0
# How long it may take to stop once told to: its gateway stopping, its store closing.
STOP_GRACE_SECONDS = 10.0
# How much of the end of its standard error is read for its last line.
ERROR_TAIL_BYTES = 2000


class ReceiverFailed(RuntimeError):
    """The receiver process ended, or refused a record, while the bench needed it."""


@dataclass
class Deliveries:
    """What the receiver process has said so far."""

    pid: int
    # When each message was delivered: message id -> time.time_ns() in the receiver.
    at: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    # Its standard output closed: it has ended.
    ended: bool = False

    def check(self) -> None:
        """Raise ``ReceiverFailed`` if the receiver refused anything, or has ended."""
        if self.refused:
            raise ReceiverFailed(f"the receiver refused a record: {self.refused[0]}")
        if self.ended:
            raise ReceiverFailed("the receiver ended while the bench needed it")


def last_error(log: Path) -> str:
    """The last line of the receiver's standard error: its one-line error, or the
    exception line of a traceback."""
    try:
        data = log.read_bytes()[-ERROR_TAIL_BYTES:]
    except OSError:
        return "(no log)"
    lines = data.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(nothing on standard error)"


async def read_lines(stream: asyncio.StreamReader, deliveries: Deliveries) -> None:
    """Record each line of the receiver's standard output in ``deliveries``."""
    while line := await stream.readline():
        match line.decode().split():
            case ["delivered", message_id, ns]:
                deliveries.at[message_id] = int(ns)
            case ["refused", code]:
                deliveries.refused.append(code)
            case _:
                pass
    deliveries.ended = True


async def stop(proc: asyncio.subprocess.Process) -> None:
    """Close the receiver's standard input, give it ``STOP_GRACE_SECONDS``, then kill
    it; wait for it either way. Cancelled meanwhile, it kills it before going on."""
    try:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
        raise


@asynccontextmanager
async def receiver_process(bench: BenchDeployment, agency: str) -> AsyncIterator[Deliveries]:
    """Run ``agency``'s receiver on ``bench``'s deployment for the block (module
    docstring). Raises ``ReceiverFailed`` if it ends before it is ready, or is not ready
    within ``READY_SECONDS``, quoting the last line of its standard error."""
    log = Path(bench.settings.data_dir) / f"receiver-{agency}.log"
    with log.open("wb") as errors:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "broker.bench.receiver",
            agency,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
            env=os.environ | bench.environment(),
        )
    try:
        assert proc.stdout is not None  # noqa: S101 - asked for just above
        deliveries = Deliveries(proc.pid)
        try:
            first = await asyncio.wait_for(proc.stdout.readline(), READY_SECONDS)
        except TimeoutError:
            first = b""
        if first.strip() != b"ready":
            raise ReceiverFailed(f"the receiver did not start: {last_error(log)}")
        reading = asyncio.create_task(read_lines(proc.stdout, deliveries))
        try:
            yield deliveries
        finally:
            reading.cancel()
    finally:
        await stop(proc)


async def delivered(deliveries: Deliveries, ids: set[str], *, within: float) -> bool:
    """Wait up to ``within`` seconds until every one of ``ids`` is delivered; returns
    whether they were. Raises ``ReceiverFailed`` if the receiver refused a record."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not ids <= deliveries.at.keys():
        deliveries.check()
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.005)
    deliveries.check()
    return True
