"""`mappa serve` as a user runs it: a child process that starts, answers over real HTTP,
delivers in the background, and stops cleanly on SIGTERM or Ctrl-C with no child left."""

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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from broker.api.credentials import CredentialKind, CredentialStore, credentials_path
from broker.api.models import ARMS_EXAMPLE
from broker.gateway.agency import utc_now
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
SERVED = ("--agency", POLICE, "--agency", PROBATION, "--agency", PRISON, "--agency", HOUSING)
JUSTIFICATION = "supervision planning, case review"


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    url: str
    tokens: dict[str, str]
    log: bytearray

    def auth(self, agency: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[agency]}"}

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []


async def _drain(stream: asyncio.StreamReader, into: bytearray) -> None:
    while chunk := await stream.read(4096):
        into += chunk


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, *extra: str) -> AsyncIterator[Served]:
    data = tmp_path / "data"
    passphrase = secrets.token_urlsafe(18)
    provision(DataPaths(data), SPECS, passphrase=passphrase.encode(), now=utc_now())
    seed_case_team_on_disk(data, passphrase.encode(), PARTIES)
    store = CredentialStore(credentials_path(data))
    tokens = {a: store.issue(CredentialKind.AGENCY, a, now="t").token for a in (POLICE, PROBATION)}
    store.close()
    env = {
        **os.environ,
        "MAPPA_KEY_PASSPHRASE": passphrase,
        "MAPPA_TOPIC_NAMESPACE": f"t{uuid.uuid4().hex[:12]}",
    }
    env.pop("MAPPA_KAFKA_BOOTSTRAP", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker.cli.main",
        "serve",
        "--data-dir",
        str(data),
        "--port",
        "0",
        *extra,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    log = bytearray()
    drain = asyncio.create_task(_drain(proc.stderr, log))
    try:
        deadline = time.monotonic() + 60
        while not (found := LISTENING.search(log)):
            assert proc.returncode is None, log.decode()
            assert time.monotonic() < deadline, log.decode()
            await asyncio.sleep(0.05)
        yield Served(proc, f"http://127.0.0.1:{int(found.group(1))}", tokens, log)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await drain


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


async def test_serve_answers_delivers_and_stops_on_sigterm(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    async with (
        serve(tmp_path, "--bootstrap", kafka_bootstrap, *SERVED) as served,
        httpx.AsyncClient(base_url=served.url, timeout=10) as client,
    ):
        submitted = await client.post(
            f"/v1/agencies/{POLICE}/records",
            json={"record": ARMS_EXAMPLE, "purpose": "risk management", "user": "ppu.3"},
            headers=served.auth(POLICE),
        )
        assert submitted.status_code == 201, submitted.text
        message_id = submitted.json()["message_id"]
        # Nobody polls but the server's own background gateways.
        url = f"/v1/agencies/{PROBATION}/inbox/{message_id}"
        deadline = time.monotonic() + 20
        while (got := await client.get(url, headers=served.auth(PROBATION))).status_code == 404:
            assert time.monotonic() < deadline, served.log.decode()
            await asyncio.sleep(0.1)
        assert got.status_code == 200
        assert got.json()["view"] == "full"
        opened = await client.post(
            f"{url}/open",
            json={"user": "probation.officer.9", "justification": JUSTIFICATION},
            headers=served.auth(PROBATION),
        )
        assert opened.status_code == 200, opened.text
        assert opened.json()["record"]["contactType"] == "MAPPA_RISK"
        spec = await client.get("/openapi.json")
        assert spec.json()["info"]["title"] == "mappa-broker"
        assert served.children() == []  # an external broker: nothing of ours to start
        assert await stop(served, signal.SIGTERM) == 0
    text = served.log.decode()
    assert "Application shutdown complete" in text
    assert "Traceback" not in text


async def test_serve_with_the_embedded_broker_stops_it_on_ctrl_c(tmp_path: Path) -> None:
    async with (
        serve(tmp_path) as served,  # every agency whose keys are held and that has an adapter
        httpx.AsyncClient(base_url=served.url, timeout=10) as client,
    ):
        inbox = await client.get(f"/v1/agencies/{PROBATION}/inbox", headers=served.auth(PROBATION))
        assert inbox.status_code == 200
        assert inbox.json() == {"items": [], "next_cursor": None}
        assert re.search(rf"serving .*{POLICE}.*{HOUSING}", served.log.decode())
        [broker] = served.children()  # tansu, started by the server
        assert await stop(served, signal.SIGINT) == 0
    # The broker went with the server: no process left behind.
    assert not await alive_after(broker, seconds=5)
    assert "Traceback" not in served.log.decode()


async def test_serve_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(AssertionError) as failed:
        async with serve(tmp_path, "--agency", "nobody.here"):
            pass  # pragma: no cover - it must not start
    assert "config.invalid: not in the trust directory: nobody.here" in str(failed.value)
    assert "Traceback" not in str(failed.value)
