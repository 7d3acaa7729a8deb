"""Revocation enforced everywhere (issue 16, finding 3): a running ``mappa serve`` picks up
``mappa keys revoke`` from its data directory; receivers and the ledger refuse what a
revoked key signed at or after its revocation, also after a restart; an agency whose only
signing key is revoked starts, receives, and answers a publish with a clear 4xx."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from broker.api.models import ARMS_EXAMPLE
from broker.cli.main import main
from broker.cli.serve import default_agreement
from broker.crypto.encoding import jcs, strict_json
from broker.crypto.envelope import Recipient, ViewToSeal, seal
from broker.crypto.keys import PrivateKey
from broker.crypto.suites import CLASSIC
from broker.deployment import Deployment
from broker.errors import KeyUnavailable, SchemaError, VerificationError
from broker.gateway.audit import sign_event, time_ordered_id, verify_event
from broker.gateway.handled import Handling
from broker.gateway.sealing import new_header
from broker.kafka.topics import Topics
from broker.kafka.transport import KafkaTransport, Record
from broker.trust import admin as trust_admin
from broker.trust.keystore import Keystore
from broker.trust.provision import DataPaths, load_directory
from schemas.audit import AuditAct, AuditEvent, Operation, Outcome
from schemas.common import Role, ViewKind, format_timestamp
from schemas.directory import KeyAlg
from schemas.messages import derive_view
from tests.served import SERVED, DataDir, provisioned, serve
from tests.support import AREA, PNC, POLICE, PROBATION, World, read_topic, risk_assessment

RECORD = {"record": ARMS_EXAMPLE, "purpose": "risk management"}


def held_signing_key(data_dir: Path, passphrase: bytes, agency: str) -> PrivateKey:
    """The agency's current Ed25519 private key, as a thief who copied the file has it."""
    directory = load_directory(DataPaths(data_dir))
    [entry] = [k for k in directory.agency(agency).keys if k.alg is KeyAlg.ED25519]
    return Keystore(DataPaths(data_dir).keys, passphrase).load(agency, entry.key_id)


def envelope(
    data: DataDir, sender: str, signer: PrivateKey, recipient: str, topic: str, *, area: str = AREA
) -> bytes:
    """A correctly sealed risk assessment from ``sender`` for ``recipient``, signed by
    ``signer``, built from the data directory alone (as anyone holding the key could)."""
    paths = DataPaths(data.path)
    directory = load_directory(paths)
    agreement = default_agreement(paths, area)
    now = datetime.now(UTC)
    subject = Keystore(paths.keys, data.passphrase.encode()).load_subject_key().reference(PNC)
    header = new_header(
        suite=CLASSIC,
        sender=sender,
        signers=[signer],
        now=now,
        topic=topic,
        area=area,
        message_type="risk-assessment",
        schema_version=1,
        subject_ref=subject,
        isa=(agreement.id, agreement.version),
        purpose="risk management",
        lawful_basis="DPA 2018 Part 3",
    )
    key = directory.encryption_key(recipient, suite=CLASSIC, at=now)
    view = ViewToSeal(
        ViewKind.FULL,
        jcs(derive_view(risk_assessment(), ViewKind.FULL)),
        (Recipient(recipient, key),),
    )
    return jcs(strict_json(seal(header=header, views=[view], signers=[signer], suite=CLASSIC)))


def mappa(data: DataDir, *args: str) -> int:
    return main([args[0], "--data-dir", str(data.path), *args[1:]])


def reason_code(record: Record) -> str | None:
    return next((v.decode() for k, v in record.headers if k == "mappa-reason-code"), None)


async def refusals(
    transport: KafkaTransport, namespace: str, by: str, code: str, *, within: float = 30.0
) -> tuple[list[Record], list[dict[str, object]]]:
    """The dead letters ``by`` wrote with ``code``, and its audited refusals with that
    code, once there is at least one of each (or whatever there is after ``within``)."""
    topics = Topics(namespace)
    deadline = time.monotonic() + within
    while True:
        dead = [
            r
            for r in await read_topic(transport, topics.deadletter, within=2)
            if reason_code(r) == code
            and dict(r.headers).get("mappa-refused-by", b"").decode() == by
        ]
        events = [
            json.loads(r.value)["event"]
            for r in await read_topic(transport, topics.audit, within=2)
        ]
        audited = [
            e
            for e in events
            if e["agency"] == by and e["act"] == "refusal" and e.get("reason_code") == code
        ]
        if (dead and audited) or time.monotonic() > deadline:
            return dead, audited
        await asyncio.sleep(0.5)


async def test_revoking_while_serve_runs_refuses_the_key_and_stops_its_publishing(
    tmp_path: Path, kafka_bootstrap: str, transport: KafkaTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = provisioned(tmp_path)
    thief = held_signing_key(data.path, data.passphrase.encode(), POLICE)
    probation_topic = Topics(data.namespace).for_role(AREA, Role.PROBATION)
    async with (
        serve(tmp_path, "--bootstrap", kafka_bootstrap, *SERVED, data=data) as served,
        httpx.AsyncClient(base_url=served.url, timeout=10) as client,
    ):
        url = f"/v1/agencies/{POLICE}/records"
        before = await client.post(url, json=RECORD, headers=served.auth(POLICE))
        assert before.status_code == 201, before.text
        monkeypatch.setenv("MAPPA_KEY_PASSPHRASE", data.passphrase)
        reason = ("--reason", "laptop stolen")
        assert (
            mappa(data, "keys", "revoke", "--agency", POLICE, "--key", thief.key_id, *reason) == 0
        )
        # The running server takes the new directory within a few seconds: from then on
        # police cannot publish (a clear 4xx, not a 5xx and not a success).
        deadline = time.monotonic() + 20
        while (
            after := await client.post(url, json=RECORD, headers=served.auth(POLICE))
        ).status_code == 201:
            assert time.monotonic() < deadline, "still publishing with a revoked key"
            await asyncio.sleep(0.5)
        assert after.status_code == 403, after.text
        assert after.json()["error"] == "key.revoked"
        # The thief's envelope, signed after the revocation, is refused and audited.
        forged = envelope(data, POLICE, thief, PROBATION, probation_topic)
        await transport.send(probation_topic, forged, key=b"x")
        dead, audited = await refusals(
            transport, data.namespace, PROBATION, "directory.key-revoked"
        )
        assert dead, "no dead letter for the revoked key's envelope"
        assert audited, "no audited refusal for the revoked key's envelope"
        inbox = await client.get(f"/v1/agencies/{PROBATION}/inbox", headers=served.auth(PROBATION))
        assert json.loads(forged)["header"]["message_id"] not in inbox.text
    assert "Traceback" not in served.log.decode()


async def test_serve_starts_after_a_revocation_without_rotation(
    tmp_path: Path, kafka_bootstrap: str, transport: KafkaTransport
) -> None:
    data = provisioned(tmp_path)
    paths = DataPaths(data.path)
    keystore = Keystore(paths.keys, data.passphrase.encode())
    key_id = held_signing_key(data.path, data.passphrase.encode(), POLICE).key_id
    now = datetime.now(UTC)
    doc = trust_admin.revoke(
        load_directory(paths), POLICE, key_id, at=now, reason="device lost", now=now
    )
    trust_admin.publish(paths, keystore, doc)
    police_topic = Topics(data.namespace).for_role(AREA, Role.POLICE)
    probation_key = held_signing_key(data.path, data.passphrase.encode(), PROBATION)
    async with (
        serve(tmp_path, "--bootstrap", kafka_bootstrap, *SERVED, data=data) as served,
        httpx.AsyncClient(base_url=served.url, timeout=10) as client,
    ):
        refused = await client.post(
            f"/v1/agencies/{POLICE}/records", json=RECORD, headers=served.auth(POLICE)
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "key.revoked"
        assert "mappa keys rotate" in refused.json()["detail"]
        # Readiness names the agency that cannot work, and why; the others are fine.
        ready = await client.get("/readyz")
        assert ready.status_code == 503, ready.text
        states = {a["agency"]: (a["state"], a.get("reason_code")) for a in ready.json()["agencies"]}
        assert states[POLICE] == ("unavailable", "key.revoked")
        assert states[PROBATION] == ("ok", None)
        # It still receives: what probation sends it reaches its inbox.
        sent = envelope(data, PROBATION, probation_key, POLICE, police_topic)
        await transport.send(police_topic, sent, key=b"x")
        message_id = json.loads(sent)["header"]["message_id"]
        url = f"/v1/agencies/{POLICE}/inbox/{message_id}"
        deadline = time.monotonic() + 20
        while (got := await client.get(url, headers=served.auth(POLICE))).status_code == 404:
            assert time.monotonic() < deadline, served.log.decode()
            await asyncio.sleep(0.2)
        assert got.status_code == 200, got.text
    assert "Traceback" not in served.log.decode()


async def test_a_revoked_agency_says_so_and_refuses_to_publish(world: World) -> None:
    d = world.deployment
    police = world.gw(POLICE)
    assert police.ctx.unready() is None
    key_id = police.ctx.keys.signing[KeyAlg.ED25519].key_id
    now = datetime.now(UTC)
    doc = trust_admin.revoke(d.directory, POLICE, key_id, at=now, reason="lost", now=now)
    trust_admin.publish(d.paths, d.keystore, doc)
    d.refresh_trust()
    problem = police.ctx.unready()
    assert problem is not None
    assert problem.code == "key.revoked"
    with pytest.raises(KeyUnavailable) as err:
        await police.publish(risk_assessment(), purpose="risk management")
    assert err.value.code == "key.revoked"
    assert "mappa keys rotate" in err.value.reason
    # A rotation puts it right.
    doc = trust_admin.rotate(
        d.directory, d.keystore, POLICE, now=datetime.now(UTC), algs=[KeyAlg.ED25519]
    )
    trust_admin.publish(d.paths, d.keystore, doc)
    d.refresh_trust()
    assert police.ctx.unready() is None
    await police.publish(risk_assessment(), purpose="risk management")
    await world.pump(lambda: bool(world.of(PROBATION, Handling.DELIVERED)))


def audit_record(signer: PrivateKey, at: datetime) -> bytes:
    """A well-formed audit event of police, signed by ``signer``, claiming time ``at``."""
    event = AuditEvent(
        event_id=time_ordered_id(),
        time=format_timestamp(at),
        act=AuditAct.DISCLOSURE,
        operation=Operation.PUBLISH,
        agency=POLICE,
        outcome=Outcome.OK,
    )
    return sign_event(event, signer).model_dump_json().encode()


async def test_the_ledger_refuses_events_signed_by_a_revoked_key_also_after_a_restart(
    world: World,
) -> None:
    d = world.deployment
    thief = d.keystore.load(POLICE, world.gw(POLICE).ctx.keys.signing[KeyAlg.ED25519].key_id)
    revoked_at = datetime.now(UTC)
    doc = trust_admin.revoke(
        d.directory, POLICE, thief.key_id, at=revoked_at, reason="x", now=revoked_at
    )
    trust_admin.publish(d.paths, d.keystore, doc)
    d.refresh_trust()
    topic = d.topics.audit
    size = world.ledger.store.size()
    # Signed after the revocation, and backdated to before it (the broker's append time,
    # after the revocation, gives the backdated one away).
    await world.transport.send(topic, audit_record(thief, datetime.now(UTC)), key=b"x")
    await world.transport.send(
        topic, audit_record(thief, revoked_at - timedelta(minutes=5)), key=b"x"
    )
    deadline = time.monotonic() + 20
    while len(world.ledger.store.rejected()) < 2 and time.monotonic() < deadline:
        await world.ledger.poll_once(timeout_ms=100)
    codes = [r["reason_code"] for r in world.ledger.store.rejected()]
    assert codes == ["directory.key-revoked"] * 2, codes
    assert world.ledger.store.size() == size

    # After a restart, the directory on disk says the same.
    settings, agreement = d.settings, d.agreement
    await world.close()
    again = Deployment(settings=settings, passphrase=world.passphrase, agreements=[agreement])
    async with again.running([], ledger=True) as running:
        assert running.ledger is not None
        ledger = running.ledger
        await running.transport.send(topic, audit_record(thief, datetime.now(UTC)), key=b"x")
        deadline = time.monotonic() + 20
        while len(ledger.store.rejected()) < 3 and time.monotonic() < deadline:
            await ledger.poll_once(timeout_ms=100)
        codes = [r["reason_code"] for r in ledger.store.rejected()]
        assert codes == ["directory.key-revoked"] * 3, codes


def test_an_audit_event_is_judged_by_its_key_at_its_time(world: World) -> None:
    """The ledger's checks on one event, without a broker: a key used outside its validity
    is refused, and so is an event whose time is no real time."""
    d = world.deployment
    signer = world.gw(POLICE).ctx.keys.signing[KeyAlg.ED25519]
    good = audit_record(signer, datetime.now(UTC))
    assert verify_event(good, d.directory).event.agency == POLICE
    with pytest.raises(VerificationError) as err:
        verify_event(audit_record(signer, datetime.now(UTC) - timedelta(days=30)), d.directory)
    assert err.value.code == "directory.key-expired"
    # A revocation dated after the event's time still catches it by its append time.
    revoked_at = datetime.now(UTC) - timedelta(minutes=1)
    doc = trust_admin.revoke(
        d.directory, POLICE, signer.key_id, at=revoked_at, reason="x", now=revoked_at
    )
    trust_admin.publish(d.paths, d.keystore, doc)
    d.refresh_trust()
    early = audit_record(signer, revoked_at - timedelta(minutes=1))
    assert verify_event(early, d.directory).event.agency == POLICE
    with pytest.raises(VerificationError) as err:
        verify_event(early, d.directory, received_ms=int(time.time() * 1000))
    assert err.value.code == "directory.key-revoked"
    impossible = json.loads(good)
    impossible["event"]["time"] = "2026-13-01T00:00:00.000Z"
    with pytest.raises(SchemaError) as malformed:
        verify_event(json.dumps(impossible).encode(), d.directory)
    assert malformed.value.code == "audit.malformed"


async def test_a_running_deployment_takes_a_newer_directory_and_leaves_a_bad_one(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    d = world.deployment
    in_force = d.directory.version
    good = d.paths.directory.read_bytes()
    # A directory nobody signed: said in the log, and version in force unchanged.
    d.paths.directory.write_bytes(good.replace(b"Staffordshire Police", b"Staffordshire Polise"))
    await d.watch_trust()
    assert d.directory.version == in_force
    assert "verification.signature-invalid" in caplog.text
    # A newer signed one is put in force, and police's revoked key with it.
    key_id = world.gw(POLICE).ctx.keys.signing[KeyAlg.ED25519].key_id
    now = datetime.now(UTC)
    d.paths.directory.write_bytes(good)
    doc = trust_admin.revoke(d.directory, POLICE, key_id, at=now, reason="lost", now=now)
    trust_admin.publish(d.paths, d.keystore, doc)
    await d.watch_trust()
    assert d.directory.version == in_force + 1
    problem = world.gw(POLICE).ctx.unready()
    assert problem is not None
    assert problem.code == "key.revoked"
