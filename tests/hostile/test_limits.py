"""What one request may cost, and what is left behind (issue 16, finding 10): a body
limit enforced while reading, a body that never arrives, guessed tokens, a token in the
access log, and world-readable stores.

The body and log tests run against `mappa serve` itself over real sockets: uvicorn's
own handling of a body and of its access log is part of what is under test."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from broker.api.credentials import CredentialStore, credentials_path
from broker.api.limits import (
    FAILURES_ALLOWED,
    MAX_BODY_BYTES,
    MAX_BUCKETS,
    FailureLimiter,
    TooManyFailures,
    redact_query,
)
from broker.gateway.store import AgencyStore
from broker.ledger.store import LedgerStore
from broker.trust.provision import DataPaths
from tests.served import SERVED, DataDir, Served, provisioned, serve
from tests.support import HOUSING, POLICE, PROBATION
from tests.test_api import Api, api

__all__ = ["api"]

# How long a test waits for an answer the server owes it: far beyond any bound under
# test, so only a server that never answers fails it.
PATIENCE = 60


@dataclass
class Server:
    served: Served
    data: DataDir

    @property
    def address(self) -> tuple[str, int]:
        url = urlsplit(self.served.url)
        assert url.hostname is not None
        assert url.port is not None
        return url.hostname, url.port


@pytest.fixture(scope="module")
async def server(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> AsyncIterator[Server]:
    tmp = tmp_path_factory.mktemp("limits")
    data = provisioned(tmp)
    async with serve(tmp, "--bootstrap", kafka_bootstrap, *SERVED, data=data) as served:
        yield Server(served, data)


async def _exchange(server: Server, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str]]:
    """Send ``head`` and ``body`` on a fresh connection and read the answer: its status
    and JSON body. Fails the test if no answer comes within ``PATIENCE`` seconds."""
    reader, writer = await asyncio.open_connection(*server.address)
    try:
        writer.write(head + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), timeout=PATIENCE)
        # Everything the server sends for an error fits one read; it closes afterwards.
        while not answer.endswith(b"}") and (more := await reader.read(65536)):
            answer += more
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, content = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(content)


def _head(server: Server, length_header: str, *, token: str) -> bytes:
    return (
        f"POST /v1/agencies/{POLICE}/records HTTP/1.1\r\n"
        f"Host: {server.address[0]}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
        f"{length_header}\r\n\r\n"
    ).encode()


async def test_a_declared_30_mb_body_is_refused_before_it_is_read(server: Server) -> None:
    token = server.served.tokens[POLICE]
    head = _head(server, f"Content-Length: {30 * 1024 * 1024}", token=token)
    # Only the first bytes are sent: the answer must not wait for the rest.
    status, body = await _exchange(server, head, b'{"record": {"pnc": "' + b"9" * 1000)
    assert status == 413
    assert body["error"] == "request.too-large"


async def test_an_undeclared_body_is_cut_off_at_the_limit(server: Server) -> None:
    token = server.served.tokens[POLICE]
    head = _head(server, "Transfer-Encoding: chunked", token=token)
    chunk = b"9" * 65536
    # Just past the limit, in chunks, with no length declared up front.
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY_BYTES // 65536 + 1)
    )
    status, body = await _exchange(server, head, chunks)
    assert status == 413
    assert body["error"] == "request.too-large"


async def test_a_body_that_never_arrives_is_answered_408(server: Server) -> None:
    token = server.served.tokens[POLICE]
    head = _head(server, "Content-Length: 500", token=token)
    # Ten bytes of five hundred, then nothing: the server must not wait for ever.
    status, body = await _exchange(server, head, b'{"record":')
    assert status == 408
    assert body["error"] == "request.timeout"


async def test_a_body_within_the_limit_is_still_taken(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.served.url, timeout=PATIENCE) as client:
        big = await client.post(
            f"/v1/agencies/{POLICE}/records",
            json={"record": {"pnc": "9" * (MAX_BODY_BYTES - 1000)}, "purpose": "p"},
            headers=server.served.auth(POLICE),
        )
    # Read and refused by the adapter, not by the limit.
    assert big.status_code == 422, big.text


async def test_a_token_in_the_query_never_reaches_the_access_log(server: Server) -> None:
    token = server.served.tokens[PROBATION]
    async with httpx.AsyncClient(base_url=server.served.url, timeout=PATIENCE) as client:
        refused = await client.get(
            f"/v1/agencies/{PROBATION}/inbox", params={"access_token": token, "limit": "5"}
        )
        assert refused.status_code == 401
        # A token sent as a bare parameter name is a value too.
        assert (await client.get(f"/v1/agencies/{PROBATION}/inbox?{token}")).status_code == 401
    line = f"/v1/agencies/{PROBATION}/inbox?access_token=REDACTED&limit=REDACTED"
    # uvicorn's access log, through the product's handler on standard error.
    for _ in range(PATIENCE * 20):
        access = server.served.out + server.served.log
        if line.encode() in access and b"inbox?REDACTED=REDACTED" in access:
            break
        await asyncio.sleep(0.05)
    log = (server.served.out + server.served.log).decode()
    assert line in log
    assert token not in log
    assert token.split("_", 2)[2] not in log  # the secret, which may hold "_" itself


def test_redaction_keeps_names_and_drops_values() -> None:
    assert redact_query("/a?subject=2011/0456789K&limit=5") == "/a?subject=REDACTED&limit=REDACTED"
    assert redact_query("/a") == "/a"
    assert redact_query("/a?") == "/a?REDACTED"
    assert redact_query("/a?Mappa_x=1") == "/a?REDACTED=REDACTED"


# -- failed authentication -------------------------------------------------------------------


def _guess() -> str:
    return f"mappa_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


def _from(api: Api, address: str) -> httpx.AsyncClient:
    asgi = httpx.ASGITransport(app=api.app, client=(address, 40000))
    return httpx.AsyncClient(transport=asgi, base_url="http://mappa.test")


async def _inbox(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(
        f"/v1/agencies/{HOUSING}/inbox", headers={"Authorization": f"Bearer {token}"}
    )


async def test_guessed_tokens_from_one_address_are_rationed(api: Api) -> None:
    async with _from(api, "192.0.2.10") as guesser, _from(api, "192.0.2.20") as other:
        for _ in range(FAILURES_ALLOWED):
            assert (await _inbox(guesser, _guess())).status_code == 401
        limited = await _inbox(guesser, _guess())
        assert limited.status_code == 429, limited.text
        assert limited.json()["error"] == "auth.rate-limited"
        assert int(limited.headers["Retry-After"]) >= 1
        # Refused before the token is looked at, a right one included: a guess that
        # hits tells the guesser nothing while the address waits.
        assert (await _inbox(guesser, api.tokens[HOUSING])).status_code == 429
        # Another address is not held back.
        assert (await _inbox(other, api.tokens[HOUSING])).status_code == 200


async def test_guesses_at_one_credential_from_many_addresses_are_rationed(api: Api) -> None:
    credential = api.tokens[HOUSING].split("_")[1]
    for n in range(FAILURES_ALLOWED):
        async with _from(api, f"198.51.100.{n}") as client:
            wrong = f"mappa_{credential}_{secrets.token_urlsafe(32)}"
            assert (await _inbox(client, wrong)).status_code == 401
    async with _from(api, "198.51.100.200") as client:
        limited = await _inbox(client, f"mappa_{credential}_{secrets.token_urlsafe(32)}")
        assert limited.status_code == 429, limited.text
        # Another credential from the same fresh address is unaffected.
        assert (
            await client.get(f"/v1/agencies/{POLICE}/inbox", headers=api.auth(POLICE))
        ).status_code == 200


def test_the_ration_refills_and_says_when() -> None:
    now = [0.0]
    limiter = FailureLimiter(allowed=2, refill_seconds=6, clock=lambda: now[0])
    limiter.failed("addr:a")
    limiter.check("addr:a")
    limiter.failed("addr:a")
    with pytest.raises(TooManyFailures) as limited:
        limiter.check("addr:b", "addr:a")
    assert limited.value.retry_after == 6
    now[0] += 6
    limiter.check("addr:a")


def test_the_ration_keeps_a_bounded_number_of_buckets() -> None:
    now = [0.0]
    limiter = FailureLimiter(allowed=2, refill_seconds=1, clock=lambda: now[0])
    for n in range(MAX_BUCKETS + 100):
        limiter.failed(f"addr:{n}")
        assert len(limiter) <= MAX_BUCKETS
    extra = iter(range(MAX_BUCKETS + 100, 3 * MAX_BUCKETS))
    while len(limiter) < MAX_BUCKETS:
        limiter.failed(f"addr:{next(extra)}")
    # Buckets full again hold nothing to remember: they go first, the new one stays.
    now[0] += 10
    limiter.failed("addr:new")
    limiter.failed("addr:new")
    assert len(limiter) == 1
    with pytest.raises(TooManyFailures):
        limiter.check("addr:new")


async def test_successful_callers_are_never_charged(api: Api) -> None:
    async with _from(api, "203.0.113.5") as client:
        for _ in range(FAILURES_ALLOWED * 3):
            assert (await _inbox(client, api.tokens[HOUSING])).status_code == 200


# -- files -----------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_stores_and_the_ledger_are_private(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # as a service is commonly started
    try:
        data = provisioned(tmp_path)
        paths = DataPaths(data.path)
        store = AgencyStore(paths.agency_store(POLICE))
        ledger = LedgerStore(paths.ledger)
        credentials = CredentialStore(credentials_path(data.path))
        with store.transaction():
            store.acknowledge("nothing", "2026-11-23T12:00:00.000Z", by="test")
    finally:
        os.umask(previous)
    try:
        assert _mode(data.path) == 0o700
        assert _mode(paths.agency_store(POLICE).parent) == 0o700
        databases = [paths.agency_store(POLICE), paths.ledger, credentials_path(data.path)]
        for db in databases:
            for path in (db, db.with_name(db.name + "-wal")):
                assert path.exists(), path
                assert _mode(path) == 0o600, (path, oct(_mode(path)))
    finally:
        store.close()
        ledger.close()
        credentials.close()


def test_a_store_left_world_readable_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "agencies" / "old.sqlite"
    AgencyStore(path).close()
    path.chmod(0o644)
    AgencyStore(path).close()
    assert _mode(path) == 0o600
