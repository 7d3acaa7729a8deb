"""Rotation, revocation, key retention, replays and freshness, on a real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.crypto.encoding import jcs
from broker.deployment import Deployment
from broker.errors import DecryptionError, KeyUnavailable, VerificationError
from broker.gateway.handled import Handling
from broker.kafka.transport import KafkaTransport
from broker.trust import admin as trust_admin
from schemas.common import Role, format_timestamp
from schemas.directory import KeyAlg
from tests.brokers import tansu
from tests.support import (
    HOUSING,
    POLICE,
    PROBATION,
    World,
    build_world,
    resign,
    risk_assessment,
    seal_as,
)

WHY = "reviewing the case before a MAPP meeting"


def rotate(world: World, agency: str, *algs: KeyAlg, at: datetime | None = None) -> None:
    d = world.deployment
    doc = trust_admin.rotate(
        d.directory, d.keystore, agency, now=at or datetime.now(UTC), algs=algs
    )
    trust_admin.publish(d.paths, d.keystore, doc)
    d.refresh_trust()


def revoke(world: World, agency: str, key_id: str, at: datetime) -> None:
    d = world.deployment
    doc = trust_admin.revoke(
        d.directory, agency, key_id, at=at, reason="laptop stolen", now=datetime.now(UTC)
    )
    trust_admin.publish(d.paths, d.keystore, doc)
    d.refresh_trust()


def current(world: World, agency: str, alg: KeyAlg) -> str:
    ctx = world.gw(agency).ctx
    if alg.use.value == "sign":
        return ctx.keys.signing[alg].key_id
    return world.deployment.directory.encryption_key(
        agency, suite=ctx.suite, at=datetime.now(UTC)
    ).key_id


async def test_rotation_keeps_old_messages_readable_and_moves_new_ones(world: World) -> None:
    old_sig = current(world, POLICE, KeyAlg.ED25519)
    old_enc = current(world, HOUSING, KeyAlg.X25519)
    before = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    # Rotate while the first message is still in flight: it was wrapped for the key
    # housing is now retiring, and signed with the key police are retiring.
    rotate(world, POLICE, KeyAlg.ED25519)
    rotate(world, HOUSING, KeyAlg.X25519)
    assert current(world, POLICE, KeyAlg.ED25519) != old_sig
    assert current(world, HOUSING, KeyAlg.X25519) != old_enc
    after = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    await world.pump(lambda: len(world.of(HOUSING, Handling.DELIVERED)) == 2)
    for result in (before, after):
        opened = await world.gw(HOUSING).consult(result.message_id, user="ho.1", justification=WHY)
        assert opened.view.value == "redacted"
    stored = {i.message_id: i.envelope for i in world.gw(HOUSING).ctx.store.inbox()}
    assert old_sig.encode() in stored[before.message_id]
    assert old_enc.encode() in stored[before.message_id]
    assert current(world, POLICE, KeyAlg.ED25519).encode() in stored[after.message_id]
    assert current(world, HOUSING, KeyAlg.X25519).encode() in stored[after.message_id]
    # Audit events are signed with the new key, and the ledger still accepts them.
    await world.sync_ledger()
    assert not world.ledger.store.rejected()


async def test_pruned_key_makes_its_messages_unreadable(world: World) -> None:
    old_enc = current(world, HOUSING, KeyAlg.X25519)
    result = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    await world.pump(lambda: bool(world.of(HOUSING, Handling.DELIVERED)))
    rotate(world, HOUSING, KeyAlg.X25519)
    d = world.deployment
    with pytest.raises(Exception, match="still current"):
        trust_admin.prune(
            d.directory,
            d.keystore,
            HOUSING,
            current(world, HOUSING, KeyAlg.X25519),
            now=datetime.now(UTC),
        )
    trust_admin.prune(d.directory, d.keystore, HOUSING, old_enc, now=datetime.now(UTC))
    d.refresh_trust()
    with pytest.raises(DecryptionError) as err:
        await world.gw(HOUSING).consult(result.message_id, user="ho.1", justification=WHY)
    assert err.value.code == "envelope.unknown-recipient-key"
    with pytest.raises(KeyUnavailable):
        trust_admin.prune(d.directory, d.keystore, HOUSING, old_enc, now=datetime.now(UTC))


async def test_revoked_key_is_refused_for_what_it_signed_after_revocation(world: World) -> None:
    early = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    await world.pump(lambda: bool(world.of(PROBATION, Handling.DELIVERED)))
    compromised = current(world, POLICE, KeyAlg.ED25519)
    # The thief signs a message; the compromise is found and the key revoked from a
    # moment between the legitimate message and the thief's.
    await asyncio.sleep(0.01)
    revoked_from = datetime.now(UTC)
    await asyncio.sleep(0.01)
    stolen = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    revoke(world, POLICE, compromised, at=revoked_from)
    await world.pump(lambda: bool(world.of(PROBATION, Handling.REFUSED)))
    refusal = world.of(PROBATION, Handling.REFUSED)[-1]
    assert refusal.reason_code == "directory.key-revoked"
    assert stolen.message_id not in {i.message_id for i in world.gw(PROBATION).ctx.store.inbox()}
    # What it signed before revocation stays valid.
    opened = await world.gw(PROBATION).consult(early.message_id, user="po.1", justification=WHY)
    assert opened.view.value == "full"
    # With its only Ed25519 key revoked, police cannot sign until they rotate.
    with pytest.raises(KeyUnavailable, match="ed25519"):
        await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    rotate(world, POLICE, KeyAlg.ED25519)
    await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    await world.pump(lambda: len(world.of(PROBATION, Handling.DELIVERED)) == 2)


async def test_backdated_message_from_a_revoked_key_is_still_refused(world: World) -> None:
    """The thief backdates created_at to before the revocation; the broker's append time
    gives it away."""
    compromised = current(world, POLICE, KeyAlg.ED25519)
    thief = world.deployment.keystore.load(POLICE, compromised)
    revoke(world, POLICE, compromised, at=datetime.now(UTC) - timedelta(seconds=1))
    rotate(world, POLICE, KeyAlg.ED25519)
    topic = world.deployment.topics.for_role("staffordshire", Role.PROBATION)
    backdated = format_timestamp(datetime.now(UTC) - timedelta(minutes=2))
    doc = seal_as(world, POLICE, (PROBATION,), topic, signers=[thief], created_at=backdated)
    await world.transport.send(topic, jcs(doc), key=b"x")
    await world.pump(lambda: bool(world.of(PROBATION, Handling.REFUSED)))
    assert world.of(PROBATION, Handling.REFUSED)[-1].reason_code == "directory.key-revoked"


async def test_rollback_to_an_older_directory_is_refused(world: World) -> None:
    d = world.deployment
    v1 = d.paths.directory.read_bytes()
    rotate(world, POLICE, KeyAlg.ED25519)
    with pytest.raises(VerificationError) as err:
        d.directory.update(v1)
    assert err.value.code == "directory.rollback"
    assert d.directory.version == 2


# -- replay and freshness ------------------------------------------------------------------------


async def test_same_id_other_content_is_refused_as_an_attack(world: World) -> None:
    topic = world.deployment.topics.for_role("staffordshire", Role.PROBATION)
    doc = seal_as(world, POLICE, (PROBATION,), topic)
    await world.transport.send(topic, jcs(doc), key=b"x")
    await world.pump(lambda: bool(world.of(PROBATION, Handling.DELIVERED)))
    doc["header"]["purpose"] = "a different purpose, same message id"
    await world.transport.send(topic, resign(world, doc, POLICE), key=b"x")
    await world.pump(lambda: bool(world.of(PROBATION, Handling.REFUSED)))
    assert world.of(PROBATION, Handling.REFUSED)[-1].reason_code == "envelope.replay-conflict"
    assert len(world.gw(PROBATION).ctx.store.inbox()) == 1


async def test_message_from_the_future_is_refused(world: World) -> None:
    topic = world.deployment.topics.for_role("staffordshire", Role.PROBATION)
    ahead = datetime.now(UTC) + timedelta(seconds=world.deployment.settings.clock_skew_seconds + 60)
    doc = seal_as(world, POLICE, (PROBATION,), topic, created_at=format_timestamp(ahead))
    await world.transport.send(topic, resign(world, doc, POLICE), key=b"x")
    await world.pump(lambda: bool(world.of(PROBATION, Handling.REFUSED)))
    assert world.of(PROBATION, Handling.REFUSED)[-1].reason_code == "envelope.clock-skew"


async def test_message_older_than_the_replay_window_is_refused(
    tmp_path: Path, transport: KafkaTransport
) -> None:
    world = await build_world(tmp_path, tansu(transport.bootstrap), replay_window_seconds=3600)
    try:
        topic = world.deployment.topics.for_role("staffordshire", Role.PROBATION)
        # Signed two hours ago by a key valid then (worlds provision keys a day back).
        old = datetime.now(UTC) - timedelta(hours=2)
        doc = seal_as(world, POLICE, (PROBATION,), topic, created_at=format_timestamp(old))
        await world.transport.send(topic, resign(world, doc, POLICE), key=b"x")
        await world.pump(lambda: bool(world.of(PROBATION, Handling.REFUSED)))
        assert world.of(PROBATION, Handling.REFUSED)[-1].reason_code == "envelope.stale"
    finally:
        await world.close()


def test_an_agency_with_no_signing_key_valid_now_is_one_clear_error(world: World) -> None:
    """A clock running days slow (or every key expired or revoked): no Ed25519 key is
    valid now, so nothing the agency did could be audited. It says so, and why."""
    d = world.deployment
    slow = Deployment(
        settings=d.settings,
        passphrase=world.passphrase,
        agreements=[d.agreement],
        clock=lambda: datetime.now(UTC) - timedelta(days=3),
    )
    try:
        with pytest.raises(KeyUnavailable, match="no Ed25519 signing key valid at") as err:
            slow.context(POLICE)
        assert "check this machine's clock" in str(err.value)
    finally:
        slow.close()
