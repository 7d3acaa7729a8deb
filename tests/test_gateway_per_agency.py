"""One gateway per agency: data directories carved from one deployment (`mappa deploy
gateway-dir|ledger-dir`), each holding only its owner's private keys; two `mappa serve
--agency` processes and one `mappa ledger serve` process on the same broker, each on
its own directory. A record published through one agency's API reaches the other's
inbox, and the audit events of both reach the separate ledger, whose governance API
shows them under a checkpoint that verifies with the deployment's ledger key."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from broker.api.credentials import CredentialKind, CredentialStore, credentials_path
from broker.api.models import ARMS_EXAMPLE
from broker.cli.main import build_parser, main
from broker.gateway.agency import utc_now
from broker.kafka.process import die_with_parent
from broker.ledger.checkpoint import ledger_origin, open_checkpoint, verifier_key
from broker.trust.provision import DataPaths, load_ledger_public
from tests.served import LISTENING, DataDir, Served, provisioned
from tests.support import HOUSING, POLICE, PRISON, PROBATION

GATEWAYS = (POLICE, PROBATION)
OFFICER = "igo.ledger"
# Long enough for a busy shared machine; a test that waits longer has failed.
DELIVERY_SECONDS = 30


@dataclass(frozen=True)
class Carved:
    """The three data directories carved from a deployment's."""

    gateways: dict[str, Path]
    ledger: Path


def carve(source: DataDir, root: Path) -> Carved:
    """Each gateway's and the ledger's data directory, through the CLI, with each
    gateway's store (its case team) brought over as an operator would move it."""
    gateways = {agency: root / agency for agency in GATEWAYS}
    data = ["--data-dir", str(source.path)]
    for agency, out in gateways.items():
        assert main(["deploy", "gateway-dir", *data, "--agency", agency, "--out", str(out)]) == 0
        store = DataPaths(out).agency_store(agency)
        store.parent.mkdir(mode=0o700)
        shutil.copyfile(DataPaths(source.path).agency_store(agency), store)
        store.chmod(0o600)
    ledger = root / "ledger"
    assert main(["deploy", "ledger-dir", *data, "--out", str(ledger)]) == 0
    return Carved(gateways, ledger)


@contextlib.asynccontextmanager
async def spawned(
    command: Sequence[str], data: DataDir, tokens: dict[str, str]
) -> AsyncIterator[Served]:
    """``mappa COMMAND --data-dir DATA --port 0`` as a child process, started at once (the
    caller waits with ``listening``), with ``tokens`` for the caller; killed on exit if
    it still runs."""
    environment = {
        **os.environ,
        "MAPPA_KEY_PASSPHRASE": data.passphrase,
        "MAPPA_TOPIC_NAMESPACE": data.namespace,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker.cli.main", *command,
        "--data-dir", str(data.path), "--port", "0",
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent,
    )  # fmt: skip
    assert proc.stderr is not None
    assert proc.stdout is not None
    served = Served(proc, "", tokens, bytearray())
    drains = [
        asyncio.create_task(_drain(proc.stderr, served.log)),
        asyncio.create_task(_drain(proc.stdout, served.out)),
    ]
    try:
        yield served
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.gather(*drains)


async def listening(served: Served) -> None:
    """Wait until ``served`` listens, and note its address."""
    deadline = time.monotonic() + 60
    while not (found := LISTENING.search(served.log)):
        assert served.proc.returncode is None, served.log.decode()
        assert time.monotonic() < deadline, served.log.decode()
        await asyncio.sleep(0.05)
    served.url = f"http://127.0.0.1:{int(found.group(1))}"


def issue(data_dir: Path, kind: CredentialKind, name: str) -> str:
    """A token issued in ``data_dir``'s own credential store."""
    store = CredentialStore(credentials_path(data_dir))
    try:
        return store.issue(kind, name, now=utc_now()).token
    finally:
        store.close()


async def _drain(stream: asyncio.StreamReader, into: bytearray) -> None:
    while chunk := await stream.read(4096):
        into += chunk


@dataclass
class Services:
    gateways: dict[str, Served]
    ledger: Served
    source: DataDir
    # Police's store in its carved data directory.
    police_store: Path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> DataDir:
    """One provisioned deployment for the module; each test carves its own directories."""
    return provisioned(tmp_path_factory.mktemp("per-agency"))


@pytest.fixture(scope="module")
async def services(
    deployment: DataDir, tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> AsyncIterator[Services]:
    """The two gateways and the ledger, each its own process on its own carved data
    directory, on the test run's broker, started together. Each is stopped on teardown,
    Ctrl-C for one and SIGTERM for the others, and must exit 0; any still running is
    killed."""
    carved = carve(deployment, tmp_path_factory.mktemp("carved"))

    def as_data(path: Path) -> DataDir:
        return DataDir(path, deployment.passphrase, deployment.namespace)

    bootstrap = ("--bootstrap", kafka_bootstrap)
    async with contextlib.AsyncExitStack() as stack:
        ledger = await stack.enter_async_context(
            spawned(
                ("ledger", "serve", *bootstrap),
                as_data(carved.ledger),
                {"officer": issue(carved.ledger, CredentialKind.OFFICER, OFFICER)},
            )
        )
        gateways = {}
        for agency, path in carved.gateways.items():
            tokens = {
                agency: issue(path, CredentialKind.AGENCY, agency),
                "officer": issue(path, CredentialKind.OFFICER, OFFICER),
            }
            command = ("serve", *bootstrap, "--agency", agency)
            gateways[agency] = await stack.enter_async_context(
                spawned(command, as_data(path), tokens)
            )
        every = {**gateways, "ledger": ledger}
        await asyncio.gather(*(listening(served) for served in every.values()))
        yield Services(
            gateways, ledger, deployment, DataPaths(carved.gateways[POLICE]).agency_store(POLICE)
        )
        signals = {POLICE: signal.SIGTERM, PROBATION: signal.SIGINT, "ledger": signal.SIGTERM}
        for name, served in every.items():
            served.proc.send_signal(signals[name])
        for name, served in every.items():
            code = await asyncio.wait_for(served.proc.wait(), timeout=30)
            assert code == 0, f"{name} exited {code}: {served.log.decode()[-2000:]}"


async def until(check: Callable[[], Awaitable[bool]], what: str, log: bytearray) -> None:
    deadline = time.monotonic() + DELIVERY_SECONDS
    while not await check():
        assert time.monotonic() < deadline, f"{what}: {log.decode()[-3000:]}"
        await asyncio.sleep(0.2)


def ledger_states(store: Path) -> set[str]:
    """The states of the audit events ``store``'s agency tracks until the ledger's
    receipt, read beside the running gateway."""
    with contextlib.closing(sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT state FROM tracked WHERE recipient = 'ledger'").fetchall()
    return {state for (state,) in rows}


def owners(data_dir: Path) -> set[str]:
    """Whose private keys a data directory holds: the folders of its key root."""
    return {p.name for p in (data_dir / "keys").iterdir() if p.is_dir()}


def test_each_carved_directory_holds_its_owners_keys_and_no_other(
    deployment: DataDir, tmp_path: Path
) -> None:
    carved = carve(deployment, tmp_path)
    keys = DataPaths(deployment.path).keys
    sealed = {
        owner.name: {p.read_bytes() for p in owner.glob("*.key")}
        for owner in keys.iterdir()
        if owner.is_dir()
    }
    # The source holds every agency's keys, the ledger's and the governance key.
    assert {POLICE, PROBATION, PRISON, HOUSING, "ledger", "governance"} <= set(sealed)
    expected = {**carved.gateways, "ledger": carved.ledger}
    for owner, out in expected.items():
        assert owners(out) == {owner}
        held = {p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert sealed[owner] <= held
        for other, files in sealed.items():
            if other != owner:
                assert not files & held, f"{out.name} holds a key of {other}"
        # The deployment's stores, ledger and credentials stay behind.
        assert not (out / "ledger.sqlite").exists()
        assert not credentials_path(out).exists()
        assert all(p.stat().st_mode & 0o077 == 0 for p in out.rglob("*"))


def test_carving_refuses_an_unknown_agency_and_a_directory_in_use(
    deployment: DataDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(deployment.path)]
    out = str(tmp_path / "out")
    assert main(["deploy", "gateway-dir", *data, "--agency", "police.nowhere", "--out", out]) == 1
    assert "not in the trust directory: police.nowhere" in capsys.readouterr().err
    assert not Path(out).exists()
    assert main(["deploy", "ledger-dir", *data, "--out", out]) == 0
    assert main(["deploy", "gateway-dir", *data, "--agency", POLICE, "--out", out]) == 1
    assert "already holds a deployment" in capsys.readouterr().err
    assert owners(Path(out)) == {"ledger"}


def test_a_service_whose_keys_are_not_held_is_refused_in_one_line(
    deployment: DataDir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    carved = carve(deployment, tmp_path)
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", deployment.passphrase)
    police = ["--data-dir", str(carved.gateways[POLICE])]
    assert main(["serve", *police, "--agency", PROBATION, "--bootstrap", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mappa: key.unavailable: no private keys for {PROBATION} in ")
    assert "\n" not in err
    assert main(["ledger", "serve", *police, "--bootstrap", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("mappa: key.unavailable: the ledger's private key is not held in ")
    assert "\n" not in err


def test_a_container_may_listen_on_every_address_and_the_default_is_loopback() -> None:
    parser = build_parser()
    for command in (["serve"], ["ledger", "serve"]):
        assert parser.parse_args(command).host == "127.0.0.1"
        assert parser.parse_args([*command, "--host", "0.0.0.0"]).host == "0.0.0.0"  # noqa: S104


async def test_published_by_one_gateway_read_by_the_other_audited_by_the_ledger(
    services: Services,
) -> None:
    police, probation = services.gateways[POLICE], services.gateways[PROBATION]
    ledger = services.ledger
    async with httpx.AsyncClient(timeout=10) as client:
        submitted = await client.post(
            f"{police.url}/v1/agencies/{POLICE}/records",
            json={"record": ARMS_EXAMPLE, "purpose": "risk management"},
            headers=police.auth(POLICE),
        )
        assert submitted.status_code == 201, submitted.text
        message = f"{probation.url}/v1/agencies/{PROBATION}/inbox/{submitted.json()['message_id']}"

        async def arrived() -> bool:
            got = await client.get(message, headers=probation.auth(PROBATION))
            return got.status_code == 200

        await until(arrived, "the message reaches the other gateway", probation.log)
        officer = {"Authorization": f"Bearer {ledger.tokens['officer']}"}

        async def audited() -> bool:
            page = await client.get(f"{ledger.url}/governance/query", headers=officer)
            return set(GATEWAYS) <= {e["agency"] for e in page.json()["entries"]}

        await until(audited, "both agencies' audit events reach the ledger", ledger.log)
        checkpoint = (
            await client.get(f"{ledger.url}/governance/checkpoint", headers=officer)
        ).json()
        # Checked with the ledger key the deployment published, not the one the server says.
        origin = ledger_origin(services.source.namespace)
        public = load_ledger_public(DataPaths(services.source.path))
        verified = open_checkpoint(checkpoint["note"], verifier_key(origin, public), origin=origin)
        assert verified.size == checkpoint["tree_size"] >= 2
        intact = (await client.get(f"{ledger.url}/governance/verify", headers=officer)).json()
        assert intact["intact"] is True

        async def receipted() -> bool:
            # Police tracks each audit event until the ledger's receipt says it holds it.
            return ledger_states(services.police_store) == {"delivered"}

        await until(receipted, "the separate ledger's receipts reach police", police.log)


async def test_a_gateway_runs_no_ledger_and_the_ledger_serves_no_agency(
    services: Services,
) -> None:
    police, ledger = services.gateways[POLICE], services.ledger
    assert "the ledger's private key is not held in" in police.log.decode()
    async with httpx.AsyncClient(timeout=10) as client:
        officer = {"Authorization": f"Bearer {ledger.tokens['officer']}"}
        # An officer's token is the ledger's: the gateway knows none, and runs no ledger.
        refused = await client.get(f"{police.url}/governance/checkpoint", headers=officer)
        assert refused.status_code == 401
        assert refused.json()["error"] == "auth.invalid-credential"
        # Its own officer's token: the governance routes answer as under --no-ledger.
        absent = await client.get(
            f"{police.url}/governance/checkpoint", headers=police.auth("officer")
        )
        assert absent.status_code == 404
        assert absent.json()["error"] == "api.not-found"
        assert "`mappa ledger serve` runs it" in absent.json()["detail"]
        ready = await client.get(f"{police.url}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["ledger"]["state"] == "not-run"
        assert [a["agency"] for a in ready.json()["agencies"]] == [POLICE]
        ledger_ready = await client.get(f"{ledger.url}/readyz")
        assert ledger_ready.status_code == 200, ledger_ready.text
        assert ledger_ready.json()["agencies"] == []
        assert ledger_ready.json()["ledger"]["state"] == "ok"
        assert (await client.get(f"{ledger.url}/healthz")).json() == {"status": "alive"}
        assert ledger_ready.headers["x-request-id"]
        # Its metrics: the ledger's and its reader's lag, no agency's store.
        metrics = (await client.get(f"{ledger.url}/metrics")).text
        assert "mappa_ledger_up 1.0" in metrics
        assert 'mappa_reader_lag_records{partition="0",reader="ledger"' in metrics
        assert "mappa_store_up{" not in metrics
        # No agency route on the ledger's app.
        inbox = await client.get(f"{ledger.url}/v1/agencies/{POLICE}/inbox", headers=officer)
        assert inbox.status_code == 404
        assert inbox.json()["error"] == "http.404"
        paths = (await client.get(f"{ledger.url}/openapi.json")).json()["paths"]
        assert "/governance/query" in paths
        assert not any(p.startswith("/v1/") for p in paths)
