"""`mappa serve` as an operator runs it, for tests: a child process on a provisioned data
directory, with tokens for its agency systems and its log collected."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from broker.api.credentials import CredentialKind, CredentialStore, credentials_path
from broker.gateway.agency import utc_now
from broker.kafka.process import die_with_parent
from broker.trust.provision import DataPaths, provision
from tests.support import (
    HOUSING,
    PARTIES,
    POLICE,
    PRISON,
    PROBATION,
    SPECS,
    seed_case_team_on_disk,
)

LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")
# The agencies a test server serves, as `mappa serve` arguments.
SERVED = ("--agency", POLICE, "--agency", PROBATION, "--agency", PRISON, "--agency", HOUSING)


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    url: str
    tokens: dict[str, str]
    log: bytearray
    # Standard output: uvicorn's access log.
    out: bytearray = field(default_factory=bytearray)

    def auth(self, agency: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[agency]}"}

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []


async def _drain(stream: asyncio.StreamReader, into: bytearray) -> None:
    while chunk := await stream.read(4096):
        into += chunk


@dataclass(frozen=True)
class DataDir:
    """A provisioned data directory: its path, key passphrase and topic namespace."""

    path: Path
    passphrase: str
    namespace: str


def provisioned(tmp_path: Path, subjects: Sequence[str] = ("2011/0456789K",)) -> DataDir:
    """``SPECS`` provisioned, every party on the case team of each subject (PNC id)."""
    data = DataDir(tmp_path / "data", secrets.token_urlsafe(18), f"t{uuid.uuid4().hex[:12]}")
    # Keys valid from a day back, as in a deployment that has been running a while (and
    # still valid on a receiver whose clock a drill sets slow).
    since = utc_now() - timedelta(days=1)
    provision(DataPaths(data.path), SPECS, passphrase=data.passphrase.encode(), now=since)
    for pnc in subjects:
        seed_case_team_on_disk(data.path, data.passphrase.encode(), PARTIES, pnc)
    return data


@contextlib.asynccontextmanager
async def serve(
    tmp_path: Path,
    *extra: str,
    data: DataDir | None = None,
    env: Mapping[str, str] = {},
    tokens_for: Sequence[str] = (POLICE, PROBATION),
) -> AsyncIterator[Served]:
    """`mappa serve --port 0 EXTRA` on ``data`` (else a fresh ``provisioned`` one), with
    agency tokens for ``tokens_for`` and an officer token; waits until it listens, and
    kills it on exit if it still runs."""
    data = data or provisioned(tmp_path)
    store = CredentialStore(credentials_path(data.path))
    tokens = {a: store.issue(CredentialKind.AGENCY, a, now=utc_now()).token for a in tokens_for}
    tokens["officer"] = store.issue(CredentialKind.OFFICER, "igo.drill", now=utc_now()).token
    store.close()
    environment = {
        **os.environ,
        "MAPPA_KEY_PASSPHRASE": data.passphrase,
        "MAPPA_TOPIC_NAMESPACE": data.namespace,
        **env,
    }
    if "MAPPA_KAFKA_BOOTSTRAP" not in env:
        environment.pop("MAPPA_KAFKA_BOOTSTRAP", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker.cli.main",
        "serve",
        "--data-dir",
        str(data.path),
        "--port",
        "0",
        *extra,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # A test run killed outright takes its servers with it.
        preexec_fn=die_with_parent,
    )
    assert proc.stderr is not None
    assert proc.stdout is not None
    log, out = bytearray(), bytearray()
    drain = asyncio.create_task(_drain(proc.stderr, log))
    drain_out = asyncio.create_task(_drain(proc.stdout, out))
    try:
        deadline = time.monotonic() + 60
        while not (found := LISTENING.search(log)):
            assert proc.returncode is None, log.decode()
            assert time.monotonic() < deadline, log.decode()
            await asyncio.sleep(0.05)
        yield Served(proc, f"http://127.0.0.1:{int(found.group(1))}", tokens, log, out)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await drain
        await drain_out


async def alive_after(pid: int, *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        await asyncio.sleep(0.05)
    return True


async def stop(served: Served, sig: signal.Signals) -> int:
    served.proc.send_signal(sig)
    return await asyncio.wait_for(served.proc.wait(), timeout=30)
