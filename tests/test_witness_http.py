"""Witnesses across processes (split deployments, docs/audit-ledger.md section 3a): each
agency's witness served over HTTP by the agency API (``POST /witness/{agency}/
add-checkpoint``, C2SP tlog-witness) under uvicorn on 127.0.0.1, and the ledger reaching
it with ``HttpWitnessClient`` from ``MAPPA_WITNESS_URLS``, on data directories carved by
``mappa deploy gateway-dir|ledger-dir``. The ledger's records are fed straight to its
service (no broker): what is under test is the witnessing, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agency_adapters.registry import adapter_for
from broker.api.backend import ApiBackend, running
from broker.api.compose import application
from broker.api.credentials import CredentialStore, credentials_path
from broker.api.runtime import ServeConfig, deployment_backend
from broker.cli.main import main
from broker.crypto.keys import PrivateKey
from broker.deployment import Deployment
from broker.errors import ConfigurationError
from broker.kafka.transport import KafkaTransport
from broker.ledger.checkpoint import CheckpointSigner
from broker.ledger.verify_proofs import verify_witnessed
from broker.ledger.witnessing import Witnessing, consistency_proof
from broker.settings import Settings
from broker.trust.keystore import Keystore
from broker.trust.provision import DataPaths, load_governance_public
from broker.witness.cosignature import check_cosignature
from broker.witness.http_client import MAX_ANSWER_BYTES, HttpWitnessClient, witness_urls
from broker.witness.policy import load_policy
from broker.witness.protocol import MAX_REQUEST_BYTES, SIZE_CONTENT_TYPE, request_body
from broker.witness.setup import held_witnesses
from broker.witness.witness import Witness, WitnessAlarm, WitnessConflict, WitnessRefusal
from schemas.directory import KeyAlg
from tests.browser.conftest import serving
from tests.ledger_world import START, LedgerWorld, build_ledger_world, ledger_url
from tests.support import POLICE, PRISON, PROBATION
from tests.witness_helpers import Log, new_log, new_witness

__all__ = ["ledger_url"]  # the fixture, used by name
RA = (POLICE, PROBATION, PRISON)
# A witness's answers, for a test that waits on them: far past a healthy one's.
SETTLE_SECONDS = 20.0


@contextlib.asynccontextmanager
async def served_witnesses(
    tmp_path: Path, witnesses: Mapping[str, Witness], port: int = 0
) -> AsyncIterator[str]:
    """The agency API as deployed (``application``) answering for ``witnesses`` (by
    agency), under uvicorn on 127.0.0.1:``port``; yields its URL."""
    credentials = CredentialStore(credentials_path(tmp_path))
    backend = ApiBackend(agencies={}, credentials=credentials, witnesses=witnesses)
    config = uvicorn.Config(
        application(running(backend)), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the witnesses' server stopped while starting"
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        credentials.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Split:
    """A deployment carved into a ledger directory and one directory per RA agency."""

    world: LedgerWorld
    ledger_dir: Path
    gateway_dirs: dict[str, Path]
    # The ledger database (PostgreSQL) both ledgers use; None: each its own SQLite.
    database_url: str | None

    def witnesses(self, agency: str) -> dict[str, Witness]:
        """The witnesses a gateway on ``agency``'s directory holds (as ``mappa serve
        --agency`` opens them), by agency."""
        paths = DataPaths(self.gateway_dirs[agency])
        policy = load_policy(paths.root, load_governance_public(paths))
        assert policy is not None
        keystore = Keystore(paths.keys, self.world.passphrase)
        held = held_witnesses(policy, paths, keystore, clock=self.world.deployment.clock)
        by_name = {w.name: w.agency for w in policy.witnesses}
        return {by_name[name]: witness for name, witness in held.items()}

    def ledger(self, urls: str) -> Deployment:
        """A deployment on the ledger's directory with ``MAPPA_WITNESS_URLS=urls``, its
        ledger service now the world's (records fed straight to it). Raises as
        ``Deployment.ledger`` does (closing what it opened)."""
        deployment = Deployment(
            settings=Settings(
                data_dir=self.ledger_dir, database_url=self.database_url, witness_urls=urls
            ),
            passphrase=self.world.passphrase,
            agreements=[self.world.deployment.agreement],
            clock=lambda: START + timedelta(days=1),
        )
        try:
            self.world.service = deployment.ledger(
                KafkaTransport(deployment.settings, bootstrap="127.0.0.1:9")
            )
        except BaseException:
            deployment.close()
            raise
        return deployment


@pytest.fixture
def split(tmp_path: Path, ledger_url: str | None) -> Iterator[Split]:
    world = build_ledger_world(tmp_path / "data", ledger_url)  # makes the witness policy
    source = ["--data-dir", str(world.deployment.paths.root)]
    ledger_dir = tmp_path / "ledger"
    assert main(["deploy", "ledger-dir", *source, "--out", str(ledger_dir)]) == 0
    gateways = {}
    for agency in RA:
        out = tmp_path / agency
        assert main(["deploy", "gateway-dir", *source, "--agency", agency, "--out", str(out)]) == 0
        gateways[agency] = out
    yield Split(world, ledger_dir, gateways, ledger_url)
    world.close()


def names_of(split: Split) -> dict[str, str]:
    policy = split.world.deployment.witness_policy()
    assert policy is not None
    return {w.agency: w.name for w in policy.witnesses}


def latest_witnessed(deployment: Deployment) -> tuple[int, tuple[str, ...]]:
    """The latest checkpoint's size and who cosigned it, by the standalone verifier
    against the policy."""
    reader = deployment.ledger_reader()
    latest = reader.store.latest_checkpoint()
    assert latest is not None
    size = latest[0]
    policy = deployment.witness_policy()
    assert policy is not None
    summary = reader.checkpoint_json(size)
    _, signers = verify_witnessed(summary["witnessed_note"], policy.rules)
    return size, signers


def test_carved_directories_carry_the_policy_and_each_agency_its_witness(split: Split) -> None:
    policy_file = "witness-policy.json"
    source = split.world.deployment.paths.root
    assert (split.ledger_dir / policy_file).read_bytes() == (source / policy_file).read_bytes()
    assert not any(p.name.startswith("witness.") for p in (split.ledger_dir / "keys").iterdir())
    for agency, out in split.gateway_dirs.items():
        assert (out / policy_file).exists()
        owners = {p.name for p in (out / "keys").iterdir() if p.is_dir()}
        assert owners == {agency, f"witness.{agency}"}
        assert (out / "witnesses" / f"{agency}.sqlite").exists()
        assert [p.name for p in (out / "witnesses").iterdir()] == [f"{agency}.sqlite"]
        assert all(p.stat().st_mode & 0o077 == 0 for p in out.rglob("*"))
        held = split.witnesses(agency)
        assert list(held) == [agency]
        for witness in held.values():
            witness.store.close()
    # Carved after its witness cosigned: the copy remembers what it cosigned.
    world = split.world
    assert world.feed(world.event(POLICE)) == 1
    later = split.gateway_dirs[POLICE].parent / "police-later"
    carve = ["deploy", "gateway-dir", "--data-dir", str(source), "--agency", POLICE]
    assert main([*carve, "--out", str(later)]) == 0
    split.gateway_dirs[POLICE] = later
    [copied] = split.witnesses(POLICE).values()
    latest = copied.latest()
    copied.store.close()
    assert latest is not None
    assert latest.size == 1


async def test_a_ledger_gathers_its_witnesses_over_http(split: Split, tmp_path: Path) -> None:
    names = names_of(split)
    opened = {agency: split.witnesses(agency) for agency in RA}
    async with contextlib.AsyncExitStack() as stack:
        urls = {}
        for agency, held in opened.items():
            url = await stack.enter_async_context(served_witnesses(tmp_path / agency, held))
            urls[names[agency]] = f"{url}/witness/{agency}"
        setting = ",".join(f"{name}={url}" for name, url in urls.items())
        ledger = split.ledger(setting)
        stack.callback(ledger.close)
        assert ledger.witnesses == {}  # none held by the ledger: every one is asked over HTTP
        service = split.world.service
        assert service.witnessing is not None
        # Fed on this event loop, which also serves the witnesses: appending and signing
        # return without waiting for them (a wait would hold their answers up).
        for i in range(3):
            assert split.world.feed(*(split.world.event(RA[i]) for _ in range(2))) == 2
        assert await asyncio.to_thread(service.witnessing.settle, SETTLE_SECONDS)
        size, signers = latest_witnessed(ledger)
        assert size == 6
        assert signers == tuple(sorted(names.values()))
        # Each witness remembers the latest it cosigned, in its own store.
        for agency, held in opened.items():
            latest = held[agency].latest()
            assert latest is not None
            assert latest.size == 6
        # An inclusion proof names the witnesses of the checkpoint it is against.
        proof = ledger.ledger_reader(service.store).proof(1)
        assert (proof["witnessed"], proof["threshold"], proof["witness_count"]) == (True, 2, 3)
        assert proof["witnesses"] == sorted(names.values())
        assert proof["witnessed_note"].startswith(proof["checkpoint"])
    for held in opened.values():
        for witness in held.values():
            witness.store.close()


async def test_a_witness_down_holds_nothing_up_and_catches_up(split: Split, tmp_path: Path) -> None:
    names = names_of(split)
    opened = {agency: split.witnesses(agency) for agency in RA}
    police_port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        urls = {names[POLICE]: f"http://127.0.0.1:{police_port}/witness/{POLICE}"}
        for agency in (PROBATION, PRISON):
            url = await stack.enter_async_context(
                served_witnesses(tmp_path / agency, opened[agency])
            )
            urls[names[agency]] = f"{url}/witness/{agency}"
        ledger = split.ledger(",".join(f"{n}={u}" for n, u in urls.items()))
        stack.callback(ledger.close)
        service = split.world.service
        assert service.witnessing is not None
        # Police's witness is down (nothing listens): appending and signing go on, and
        # the other two meet the policy.
        assert split.world.feed(split.world.event(POLICE)) == 1
        assert await asyncio.to_thread(service.witnessing.settle, SETTLE_SECONDS)
        for _ in range(3):
            assert split.world.feed(split.world.event(PROBATION)) == 1
            assert await asyncio.to_thread(service.witnessing.settle, SETTLE_SECONDS)
        size, signers = latest_witnessed(ledger)
        assert size == 4
        assert names[POLICE] not in signers
        assert len(signers) == 2
        assert opened[POLICE][POLICE].latest() is None
        # Back, at the same address: asked from its own size (nothing), it cosigns.
        await stack.enter_async_context(
            served_witnesses(tmp_path / POLICE, opened[POLICE], port=police_port)
        )
        assert split.world.feed(split.world.event(PRISON)) == 1
        assert await asyncio.to_thread(service.witnessing.settle, SETTLE_SECONDS)
        assert latest_witnessed(ledger) == (5, tuple(sorted(names.values())))
        latest = opened[POLICE][POLICE].latest()
        assert latest is not None
        assert latest.size == 5
        # Settling waits for nothing once every witness answered.
        assert service.witnessing.settle(0)
    for held in opened.values():
        for witness in held.values():
            witness.store.close()


# -- the endpoint's answers ----------------------------------------------------------------
@dataclass
class Endpoint:
    url: str
    log: Log
    witness: Witness
    alarms: list[WitnessAlarm]

    async def post(self, body: bytes, agency: str = POLICE) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.post(f"{self.url}/witness/{agency}/add-checkpoint", content=body)


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Endpoint]:
    log = new_log()
    log.grow(5)
    alarms: list[WitnessAlarm] = []
    witness = new_witness(tmp_path, log, alarms=alarms)
    async with served_witnesses(tmp_path, {POLICE: witness}) as url:
        yield Endpoint(url, log, witness, alarms)
    witness.store.close()


async def test_the_endpoint_cosigns_and_answers_a_stale_size_with_its_own(
    endpoint: Endpoint,
) -> None:
    log = endpoint.log
    done = await endpoint.post(request_body(0, [], log.note(3)))
    assert done.status_code == 200, done.text
    assert done.headers["content-type"].startswith("text/plain")
    assert done.text.startswith(f"\u2014 {endpoint.witness.name} ")
    # No token asked for: the note is signed by the log, the witness checks the rest.
    stale = await endpoint.post(request_body(0, [], log.note(5)))
    assert stale.status_code == 409
    assert stale.headers["content-type"] == SIZE_CONTENT_TYPE
    assert stale.text == "3\n"
    onward = await endpoint.post(request_body(3, log.proof(3, 5), log.note(5)))
    assert onward.status_code == 200, onward.text
    assert endpoint.alarms == []


async def test_the_endpoint_refuses_each_bad_request(endpoint: Endpoint) -> None:
    log = endpoint.log
    assert (await endpoint.post(request_body(0, [], log.note(3)))).status_code == 200

    async def refused(body: bytes, status: int, code: str, agency: str = POLICE) -> None:
        answer = await endpoint.post(body, agency)
        assert answer.status_code == status, answer.text
        assert answer.text.startswith(f"{code}: "), answer.text
        assert answer.text.count("\n") == 1

    await refused(b"hello", 400, "witness.malformed")
    await refused(b"x" * (MAX_REQUEST_BYTES + 1), 413, "witness.too-large")
    # Without a length (chunked): cut off once it passes the bound.
    async with httpx.AsyncClient() as client:

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"x" * (MAX_REQUEST_BYTES // 2)

        cut = await client.post(f"{endpoint.url}/witness/{POLICE}/add-checkpoint", content=chunks())
    assert cut.status_code == 413
    assert cut.text.startswith("witness.too-large: ")
    await refused(request_body(3, [], log.note(5)), 404, "witness.unknown", agency=PROBATION)
    elsewhere = Log(CheckpointSigner(origin="example.org/log", key=ed25519()))
    elsewhere.grow(5)
    await refused(request_body(3, [], elsewhere.note(5)), 404, "witness.unknown-log")
    forger = new_log()  # the same origin, another key
    forger.grow(5)
    await refused(request_body(3, forger.proof(3, 5), forger.note(5)), 403, "witness.unknown-key")
    assert endpoint.alarms == []
    # A proof that does not lead from the tree it cosigned: an alarm, kept and heard.
    wrong = [bytes([h[0] ^ 1]) + h[1:] for h in log.proof(3, 5)]
    await refused(request_body(3, wrong, log.note(5)), 422, "witness.inconsistent")
    assert [(a.code, a.size, a.own_size) for a in endpoint.alarms] == [
        ("witness.inconsistent", 5, 3)
    ]
    assert [a["code"] for a in endpoint.witness.store.alarms()] == ["witness.inconsistent"]
    latest = endpoint.witness.latest()
    assert latest is not None
    assert latest.size == 3


async def test_the_ledgers_client_reads_each_answer(endpoint: Endpoint) -> None:
    log = endpoint.log
    forger = new_log()
    forger.grow(5)

    def ask(url: str) -> None:
        client = HttpWitnessClient(url)
        try:
            lines = client.add_checkpoint(0, [], log.note(3))
            assert len(lines) == 1
            assert lines[0].startswith(f"\u2014 {endpoint.witness.name} ")
            with pytest.raises(WitnessConflict) as conflict:
                client.add_checkpoint(0, [], log.note(5))
            assert conflict.value.size == 3
            with pytest.raises(WitnessRefusal) as refused:
                client.add_checkpoint(3, forger.proof(3, 5), forger.note(5))
            assert (refused.value.code, refused.value.status) == ("witness.unknown-key", 403)
        finally:
            client.close()

    # Off this event loop, which serves the witness: the client is synchronous.
    await asyncio.to_thread(ask, f"{endpoint.url}/witness/{POLICE}/")
    nobody = HttpWitnessClient(f"http://127.0.0.1:{free_port()}/witness/{POLICE}")
    try:
        with pytest.raises(httpx.ConnectError):
            nobody.add_checkpoint(0, [], log.note(3))
    finally:
        nobody.close()


async def test_the_ledgers_client_refuses_an_answer_too_long() -> None:
    async def endless(request: Request) -> Response:
        return Response("\u2014 w " + "A" * MAX_ANSWER_BYTES + "\n", media_type="text/plain")

    app = Starlette(routes=[Route("/w/add-checkpoint", endless, methods=["POST"])])
    async with serving(app, lifespan=False) as url:  # type: ignore[arg-type]
        client = HttpWitnessClient(f"{url}/w")
        try:
            with pytest.raises(WitnessRefusal) as caught:
                await asyncio.to_thread(client.add_checkpoint, 0, [], "note")
            assert caught.value.code == "witness.malformed"
        finally:
            client.close()


def test_witness_urls_are_checked() -> None:
    assert witness_urls("") == {}
    assert witness_urls(" a/w=https://w.example/witness/a/ , b=http://127.0.0.1:8700/x") == {
        "a/w": "https://w.example/witness/a",
        "b": "http://127.0.0.1:8700/x",
    }
    for bad in ("a", "=https://w.example", "a=", "a=https://x.example,a=https://y.example",
                "a=http://w.example/witness", "a=https://w.example/?q=1"):  # fmt: skip
        with pytest.raises(ConfigurationError):
            witness_urls(bad)


def test_a_settings_url_that_is_wrong_stops_the_ledger_starting(split: Split) -> None:
    with pytest.raises(ConfigurationError):
        split.ledger("nobody=http://w.example/witness/x")


def test_remote_witnesses_the_ledger_holds_or_the_policy_does_not_name_are_not_asked(
    split: Split,
) -> None:
    world = split.world
    assert world.service.witnessing is not None
    policy = world.service.witnessing.policy
    police = next(w.name for w in policy.witnesses if w.agency == POLICE)
    asked: list[int] = []

    class Counting:
        def add_checkpoint(self, old_size: int, proof: object, note: str) -> list[str]:
            asked.append(old_size)
            raise ConnectionError("never reached")

    gathering = Witnessing(
        log_=world.service.store,
        policy=policy,
        clients={},
        remote={police: Counting(), "someone/else": Counting()},
    )
    world.service.witnessing = gathering
    try:
        assert world.feed(world.event(POLICE)) == 1
        assert gathering.settle(SETTLE_SECONDS)
        assert asked == [0]  # police's, once; the name the policy does not hold, never
    finally:
        gathering.close()
        gathering.close()  # idempotent


def ed25519() -> PrivateKey:
    return PrivateKey.generate(KeyAlg.ED25519)


# -- `mappa serve --agency ID` on a gateway's directory: its witness, served ---------------
async def test_a_gateway_serves_its_agencys_witness_and_audits_its_alarms(
    split: Split, kafka_bootstrap: str
) -> None:
    world = split.world
    world.service.witnessing = None  # the source's own witnesses stay out of it
    checkpoints = []
    for agency in (POLICE, PROBATION):
        assert world.feed(world.event(agency)) == 1
        latest = world.service.store.latest_checkpoint()
        assert latest is not None
        checkpoints.append((latest[0], latest[2]))
    (size1, note1), (size2, note2) = checkpoints
    settings = Settings(
        data_dir=split.gateway_dirs[POLICE],
        kafka_bootstrap=kafka_bootstrap,
        topic_namespace=f"witness{uuid.uuid4().hex[:8]}",
    )
    config = ServeConfig(
        settings=settings,
        passphrase=world.passphrase,
        agreement=world.deployment.agreement,
        adapter_for=adapter_for,
        agencies=[POLICE],
    )
    app = application(lambda: deployment_backend(config))
    policy = world.deployment.witness_policy()
    assert policy is not None
    police = next(w for w in policy.witnesses if w.agency == POLICE)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        backend = app.state.backend
        assert backend.ledger is None  # a gateway's directory: the ledger runs elsewhere
        assert list(backend.witnesses) == [POLICE]
        path = f"/witness/{POLICE}/add-checkpoint"
        done = await client.post(path, content=request_body(0, [], note1))
        assert done.status_code == 200, done.text
        check_cosignature(note1 + done.text, police.verifier_key)
        # Another agency's witness is not served here.
        other = await client.post(f"/witness/{PROBATION}/add-checkpoint", content=b"old 0\n\n")
        assert other.status_code == 404
        # A proof that does not lead from what it cosigned: an alarm, audited by police.
        gateway = backend.agencies[POLICE].gateway
        before = gateway.ctx.audit.emitted
        proof = consistency_proof(world.service.store, size1, size2)
        wrong = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
        alarm = await client.post(path, content=request_body(size1, wrong, note2))
        assert alarm.status_code == 422, alarm.text
        assert alarm.text.startswith("witness.inconsistent: ")
        deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
        while gateway.ctx.audit.emitted == before:
            assert asyncio.get_running_loop().time() < deadline, "the alarm was not audited"
            await asyncio.sleep(0.05)
        witness = backend.witnesses[POLICE]
        assert [a["code"] for a in witness.store.alarms()] == ["witness.inconsistent"]
