"""The embedded broker starts, answers Kafka, and never outlives its owner."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker.kafka.embedded import EmbeddedBroker
from broker.kafka.transport import KafkaTransport
from broker.settings import Settings

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux-only"
)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


async def test_starts_answers_and_stops() -> None:
    broker = EmbeddedBroker()
    async with broker as bootstrap:
        host, port = bootstrap.split(":")
        assert host == "127.0.0.1"
        assert int(port) > 0
        pid = broker.pid
        assert pid is not None
        assert alive(pid)
        async with KafkaTransport(Settings(), bootstrap=bootstrap) as transport:
            await transport.ensure_topics(["probe.a"])
            _partition, offset = await transport.send("probe.a", b"hello")
            assert offset == 0
            async with await transport.reader(["probe.a"], {}) as reader:
                got = []
                for _ in range(50):
                    got += await reader.poll(timeout_ms=50)
                    if got:
                        break
            assert [r.value for r in got] == [b"hello"]
    assert wait_gone(pid)
    await broker.stop()  # idempotent


async def test_stops_when_the_owner_raises() -> None:
    broker = EmbeddedBroker()
    pids: list[int | None] = []

    async def owner() -> None:
        async with broker:
            pids.append(broker.pid)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await owner()
    [pid] = pids
    assert pid is not None
    assert wait_gone(pid)


async def test_stops_when_the_owner_is_cancelled() -> None:
    broker = EmbeddedBroker()
    started = asyncio.Event()

    async def owner() -> None:
        async with broker:
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(owner())
    await started.wait()
    pid = broker.pid
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pid is not None
    assert wait_gone(pid)


OWNER_SCRIPT = """
import asyncio, sys
from broker.kafka.embedded import EmbeddedBroker
async def main():
    broker = EmbeddedBroker()
    async with broker:
        print(broker.pid, flush=True)
        await asyncio.sleep(120)
asyncio.run(main())
"""


def test_killed_owner_takes_the_broker_with_it() -> None:
    """SIGKILL runs no cleanup at all; the kernel's parent-death signal still stops tansu."""
    with subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", OWNER_SCRIPT], stdout=subprocess.PIPE, text=True
    ) as owner:
        try:
            assert owner.stdout is not None
            tansu_pid = int(owner.stdout.readline())
            assert alive(tansu_pid)
            owner.kill()
            owner.wait()
            assert wait_gone(tansu_pid), "tansu outlived its killed owner"
        finally:
            owner.kill()


def test_ctrl_c_on_the_demo_stops_everything(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    with subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "broker.cli.main", "demo", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as demo:
        _interrupt_demo(demo)


def _interrupt_demo(demo: subprocess.Popen[str]) -> None:
    try:
        deadline = time.monotonic() + 20
        tansu: list[int] = []
        while not tansu and time.monotonic() < deadline:
            tansu = [
                c for c in children(demo.pid) if "tansu" in Path(f"/proc/{c}/cmdline").read_text()
            ]
            time.sleep(0.02)
        assert tansu, "the demo never started its broker"
        demo.send_signal(signal.SIGINT)
        _out, err = demo.communicate(timeout=20)
        assert demo.returncode == 130, err
        assert "interrupted" in err
        assert all(wait_gone(pid) for pid in tansu)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def test_environment_has_no_stray_brokers_from_this_module() -> None:
    mine = [c for c in children(os.getpid()) if "tansu" in Path(f"/proc/{c}/cmdline").read_text()]
    # The session broker (if embedded) is the only one this process may own.
    assert len(mine) <= 1
