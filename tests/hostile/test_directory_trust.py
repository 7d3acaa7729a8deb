"""The trust directory from the spec review (issue 16): an agency is bound to the suites it
may send, so a classic envelope cannot stand in for a pq-hybrid sender's; a directory
expires, and a receiver holding an expired one refuses instead of trusting it for ever;
a different document claiming a version already accepted is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.cli.main import main
from broker.crypto.encoding import jcs
from broker.crypto.suites import CLASSIC, PQ_HYBRID
from broker.errors import ConfigurationError, SchemaError, VerificationError
from broker.gateway.handled import Handling
from broker.trust.admin import governance_key, set_suites
from broker.trust.directory import Directory, sign_directory
from broker.trust.keystore import Keystore
from broker.trust.provision import (
    DataPaths,
    load_directory,
    load_governance_public,
    provision,
)
from schemas.common import Role, format_timestamp
from schemas.directory import KeyAlg
from tests.brokers import Broker
from tests.support import (
    AREA,
    PARTIES,
    POLICE,
    PROBATION,
    SPECS,
    World,
    build_world,
    risk_assessment,
    seal_as,
)

AGENCIES = Path(__file__).resolve().parents[2] / "deploy" / "agencies.example.yaml"
PASS = "a directory officer's passphrase"  # noqa: S105 - a test deployment's


def classic_from(world: World, sender: str, recipient: str) -> bytes:
    """A classic envelope from ``sender``, signed with its Ed25519 key alone: all that an
    attacker who broke Ed25519 (and nothing post-quantum) can make."""
    topic = world.deployment.topics.for_role(AREA, Role.PROBATION)
    signer = world.gw(sender).ctx.keys.signing[KeyAlg.ED25519]
    return jcs(seal_as(world, sender, (recipient,), topic, signers=[signer], suite=CLASSIC))


def resigned(paths: DataPaths, passphrase: bytes, **changes: object) -> bytes:
    """The directory in force with ``changes``, signed by the governance key."""
    signer = governance_key(Keystore(paths.keys, passphrase))
    assert signer is not None
    document = load_directory(paths).document.model_copy(update=changes)
    return sign_directory(document, signer).model_dump_json().encode()


# -- suite binding -------------------------------------------------------------------------------


async def test_a_classic_envelope_for_a_pq_hybrid_sender_is_refused(
    tmp_path: Path, tansu_broker: Broker
) -> None:
    world = await build_world(tmp_path, tansu_broker, suite="pq-hybrid")
    try:
        world.seed_case_team(PARTIES)
        assert world.deployment.directory.agency(POLICE).suites == ("pq-hybrid",)
        topic = world.deployment.topics.for_role(AREA, Role.PROBATION)
        await world.transport.send(topic, classic_from(world, POLICE, PROBATION), key=b"x")
        await world.pump(lambda: bool(world.of(PROBATION, Handling.REFUSED)))
        refusal = world.of(PROBATION, Handling.REFUSED)[-1]
        assert refusal.reason_code == "directory.suite-not-allowed"
        assert not world.gw(PROBATION).ctx.store.inbox()
        # The suite it is bound to still gets through.
        await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
        await world.pump(lambda: bool(world.of(PROBATION, Handling.DELIVERED)))
    finally:
        await world.close()


def test_the_directory_binds_each_agency_to_its_suites(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    paths = DataPaths(tmp_path / "pq")
    directory = provision(paths, SPECS, passphrase=PASS.encode(), now=now, suites=("pq-hybrid",))
    ed, mldsa = (
        next(k for k in directory.agency(POLICE).keys if k.alg is alg)
        for alg in (KeyAlg.ED25519, KeyAlg.ML_DSA_65)
    )
    assert directory.signing_keys(POLICE, [ed.key_id, mldsa.key_id], suite=PQ_HYBRID, signed_at=now)
    with pytest.raises(VerificationError) as err:
        directory.signing_keys(POLICE, [ed.key_id], suite=CLASSIC, signed_at=now)
    assert err.value.code == "directory.suite-not-allowed"
    # The default is the classic suite alone: pq-hybrid needs the governance to say so.
    plain = provision(DataPaths(tmp_path / "plain"), SPECS, passphrase=PASS.encode(), now=now)
    assert plain.agency(POLICE).suites == ("classic",)
    with pytest.raises(VerificationError) as err:
        plain.signing_keys(POLICE, [ed.key_id, mldsa.key_id], suite=PQ_HYBRID, signed_at=now)
    assert err.value.code == "directory.suite-not-allowed"


async def test_an_agency_does_not_publish_in_a_suite_it_is_not_bound_to(
    tmp_path: Path, tansu_broker: Broker
) -> None:
    world = await build_world(tmp_path, tansu_broker)
    try:
        world.seed_case_team(PARTIES)
        police = world.gw(POLICE)
        police.ctx.settings = police.ctx.settings.model_copy(update={"suite": "pq-hybrid"})
        with pytest.raises(VerificationError) as err:
            await police.publish(risk_assessment(), purpose="risk management")
        assert err.value.code == "directory.suite-not-allowed"
    finally:
        await world.close()


# -- freshness -----------------------------------------------------------------------------------


async def test_an_expired_directory_is_refused_and_said(world: World) -> None:
    d = world.deployment
    past = datetime.now(UTC) - timedelta(minutes=1)
    d.paths.directory.write_bytes(
        resigned(
            d.paths,
            world.passphrase,
            version=d.directory.version + 1,
            issued_at=format_timestamp(past - timedelta(days=1)),
            valid_until=format_timestamp(past),
        )
    )
    d.refresh_trust()
    problem = world.gw(PROBATION).ctx.unready()
    assert problem is not None
    assert problem.code == "directory.expired"
    topic = d.topics.for_role(AREA, Role.PROBATION)
    await world.transport.send(topic, classic_from(world, POLICE, PROBATION), key=b"x")
    await world.pump(lambda: bool(world.of(PROBATION, Handling.REFUSED)))
    assert world.of(PROBATION, Handling.REFUSED)[-1].reason_code == "directory.expired"
    assert not world.gw(PROBATION).ctx.store.inbox()
    # Kept for a retry: a fresh directory lets it pass.
    assert world.gw(PROBATION).ctx.store.deadletters.pending()


def test_directory_verify_refuses_an_expired_directory_and_refresh_renews_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", PASS)
    data = tmp_path / "deployment"
    assert main(["keys", "--data-dir", str(data), "init", "--agencies", str(AGENCIES)]) == 0
    paths = DataPaths(data)
    past = datetime.now(UTC) - timedelta(minutes=1)
    paths.directory.write_bytes(
        resigned(
            paths,
            PASS.encode(),
            version=2,
            issued_at=format_timestamp(past - timedelta(days=1)),
            valid_until=format_timestamp(past),
        )
    )
    capsys.readouterr()
    assert main(["directory", "--data-dir", str(data), "verify"]) == 1
    err = capsys.readouterr().err
    assert "directory.expired" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["directory", "--data-dir", str(data), "refresh"]) == 0
    assert "version 3" in capsys.readouterr().out
    assert main(["directory", "--data-dir", str(data), "verify"]) == 0
    assert load_directory(paths).version == 3


# -- one version, one document -------------------------------------------------------------------


def test_another_document_with_the_accepted_version_is_refused(tmp_path: Path) -> None:
    paths = DataPaths(tmp_path)
    provision(paths, SPECS, passphrase=PASS.encode(), now=datetime.now(UTC))
    honest = load_directory(paths)
    other = resigned(paths, PASS.encode(), issued_at=format_timestamp(datetime.now(UTC)))
    assert json.loads(other)["document"]["version"] == honest.version
    # Installed next to the one in force (a restart reads it from disk)...
    paths.directory.write_bytes(other)
    with pytest.raises(VerificationError) as err:
        load_directory(paths)
    assert err.value.code == "directory.version-conflict"
    # ... or offered to a running deployment.
    with pytest.raises(VerificationError) as err:
        honest.update(other)
    assert err.value.code == "directory.version-conflict"


def test_verify_of_a_file_with_the_accepted_version_but_other_content_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", PASS)
    data = tmp_path / "deployment"
    assert main(["keys", "--data-dir", str(data), "init", "--agencies", str(AGENCIES)]) == 0
    other = tmp_path / "other.json"
    other.write_bytes(
        resigned(DataPaths(data), PASS.encode(), issued_at=format_timestamp(datetime.now(UTC)))
    )
    capsys.readouterr()
    assert main(["directory", "--data-dir", str(data), "verify", str(other)]) == 1
    assert "directory.version-conflict" in capsys.readouterr().err


def test_a_directory_without_expiry_or_suites_is_malformed(tmp_path: Path) -> None:
    paths = DataPaths(tmp_path)
    provision(paths, SPECS, passphrase=PASS.encode(), now=datetime.now(UTC))
    signed = json.loads(paths.directory.read_text())
    del signed["document"]["valid_until"]
    with pytest.raises(SchemaError, match="valid_until") as err:
        Directory.verify(json.dumps(signed).encode(), governance_key=load_governance_public(paths))
    assert err.value.code == "directory.malformed"


async def held_batch(world: World) -> VerificationError:
    """The error the ledger's poll fails with once it reads a batch."""
    for _ in range(50):
        try:
            await world.ledger.poll_once(timeout_ms=200)
        except VerificationError as exc:
            return exc
    raise AssertionError("the ledger never held a batch")


async def test_the_ledger_holds_its_batch_while_its_directory_is_expired(world: World) -> None:
    """Held, not refused: what it would refuse for good may pass once a newer directory
    is here, and an expired one may hide a revocation."""
    d = world.deployment
    good = d.paths.directory.read_bytes()
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired = resigned(
        d.paths,
        world.passphrase,
        version=d.directory.version + 1,
        issued_at=format_timestamp(past - timedelta(days=1)),
        valid_until=format_timestamp(past),
    )
    await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    d.paths.directory.write_bytes(expired)
    d.refresh_trust()
    size = world.ledger.store.size()
    held = await held_batch(world)
    assert held.code == "directory.expired"
    assert world.ledger.store.size() == size
    assert not world.ledger.store.rejected()
    # A newer, valid version: the same events are read again, and appended.
    assert json.loads(good)["document"]["version"] < d.directory.version
    now = datetime.now(UTC)
    d.paths.directory.write_bytes(
        resigned(
            d.paths,
            world.passphrase,
            version=d.directory.version + 1,
            issued_at=format_timestamp(now),
            valid_until=format_timestamp(now + timedelta(days=1)),
        )
    )
    d.refresh_trust()
    await world.sync_ledger()
    assert world.ledger.store.size() > size
    assert not world.ledger.store.rejected()


def test_refusals_of_the_directory_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", PASS)
    data = tmp_path / "deployment"
    assert main(["keys", "--data-dir", str(data), "init", "--agencies", str(AGENCIES)]) == 0
    paths = DataPaths(data)
    capsys.readouterr()
    assert main(["directory", "--data-dir", str(data), "refresh", "--days", "0"]) == 2
    assert "--days" in capsys.readouterr().err
    # A pending version that expired before it was signed is not put in force.
    past = datetime.now(UTC) - timedelta(minutes=1)
    document = load_directory(paths).document.model_copy(
        update={
            "version": 2,
            "issued_at": format_timestamp(past - timedelta(days=1)),
            "valid_until": format_timestamp(past),
        }
    )
    paths.pending_directory.write_text(document.model_dump_json())
    assert main(["directory", "--data-dir", str(data), "sign"]) == 1
    assert "expired" in capsys.readouterr().err
    assert load_directory(paths).version == 1
    # Suites: an agency bound to pq-hybrid, and never to none.
    agency = "police.staffordshire"
    assert (
        main(
            ["keys", "--data-dir", str(data), "suites", "--agency", agency, "--suite", "pq-hybrid"]
        )
        == 0
    )
    assert load_directory(paths).agency(agency).suites == ("pq-hybrid",)
    with pytest.raises(ConfigurationError):
        set_suites(load_directory(paths), agency, [], now=datetime.now(UTC))
    # A damaged guard file is said, not taken for version 1.
    paths.directory_accepted.write_text("not a version")
    with pytest.raises(ConfigurationError, match="damaged"):
        load_directory(paths)
