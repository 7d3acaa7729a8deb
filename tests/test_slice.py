"""The walking skeleton end to end on a real Kafka-protocol broker: no mocks."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from broker.crypto.encoding import b64decode, b64encode, jcs, strict_json
from broker.crypto.envelope import signed_bytes
from broker.crypto.keys import PrivateKey
from broker.gateway.handled import Handling
from broker.gateway.store import InboxItem
from schemas.common import Role, ViewKind
from schemas.directory import KeyAlg
from tests.brokers import Broker
from tests.support import (
    EDUCATION,
    HOUSING,
    PNC,
    POLICE,
    PRISON,
    PROBATION,
    World,
    resign,
    risk_assessment,
    seal_as,
)


@pytest.fixture
def world_broker(any_broker: Broker) -> Broker:
    """This module's worlds run on each broker: tansu, and the secured Apache cluster."""
    return any_broker


RA_RECIPIENTS = (PROBATION, PRISON)
# Every reader of a topic verifies every record on it, addressed to it or not: an
# envelope stripped of a recipient is then still caught by that recipient.
RA_READERS = (POLICE, PROBATION, PRISON)


async def publish_and_deliver(world: World) -> Any:
    result = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    await world.pump(
        lambda: all(world.of(a, Handling.DELIVERED) for a in (PROBATION, PRISON, HOUSING))
    )
    return result


async def test_views_follow_the_agreement(world: World) -> None:
    result = await publish_and_deliver(world)
    assert dict(result.disclosures) == {
        PROBATION: ViewKind.FULL,
        PRISON: ViewKind.FULL,
        HOUSING: ViewKind.REDACTED,
    }
    topics = world.deployment.topics
    assert sorted(result.topics) == sorted(
        {
            topics.for_role("staffordshire", Role.PROBATION),
            topics.for_role("staffordshire", Role.HOUSING),
        }
    )
    for agency, view in (
        (PROBATION, ViewKind.FULL),
        (PRISON, ViewKind.FULL),
        (HOUSING, ViewKind.REDACTED),
    ):
        [delivered] = world.of(agency, Handling.DELIVERED)
        assert delivered.view is view
        assert delivered.sender == POLICE

    full = await world.gw(PROBATION).consult(
        result.message_id, user="po.1", justification="case review meeting"
    )
    assert full.body.model_dump()["victims"][0]["name"] == "Jane Witness"
    redacted = await world.gw(HOUSING).consult(
        result.message_id, user="ho.7", justification="tenancy allocation check"
    )
    body = redacted.body.model_dump()
    assert "victims" not in body
    assert "health_notes" not in body
    assert "intelligence_source" not in body
    assert body["risk_of_serious_harm"] == "high"


async def test_non_party_receives_nothing_it_can_read(world: World) -> None:
    await publish_and_deliver(world)
    await world.pump_quiet()
    assert not world.of(EDUCATION, Handling.DELIVERED)
    # Every envelope on the wire names its recipients; the non-party is in none of them.
    on_wire = [
        record
        for topic in world.deployment.topics.area_topics("staffordshire")
        for record in await world.read(topic)
    ]
    assert len(on_wire) == 2  # the RA envelope and the housing envelope
    for record in on_wire:
        doc = strict_json(record.value)
        assert EDUCATION not in {r["agency"] for r in doc["recipients"]}
        assert PNC.encode() not in record.value
        assert b"Jane Witness" not in record.value


async def test_sender_and_unaddressed_agencies_skip_silently(world: World) -> None:
    await publish_and_deliver(world)
    await world.pump_quiet()
    assert world.of(POLICE, Handling.NOT_ADDRESSED)  # police read the RA topic they published to
    assert not world.of(POLICE, Handling.REFUSED)


async def test_every_act_is_audited_without_content(world: World) -> None:
    result = await publish_and_deliver(world)
    await world.gw(HOUSING).consult(
        result.message_id, user="ho.7", justification="tenancy allocation check"
    )
    # The police audit each recipient's receipt too: wait for all three.
    await world.pump(
        lambda: len([h for h in world.receipts(POLICE) if h.message_id == result.message_id]) == 3
    )
    expected = await world.sync_ledger()
    entries = world.ledger.store.entries()
    assert len(entries) == expected == 1 + 3 + 3 + 1 + 3
    receipts = {(e["agency"], e["recipient"]) for e in entries if e["operation"] == "receipt"}
    assert receipts == {(POLICE, a) for a in (PROBATION, PRISON, HOUSING)}
    by = {(e["act"], e["agency"], e["recipient"]) for e in entries}
    assert ("collection", POLICE, None) in by
    assert {("disclosure", POLICE, a) for a in (PROBATION, PRISON, HOUSING)} <= by
    assert {("collection", a, a) for a in (PROBATION, PRISON, HOUSING)} <= by
    consultation = next(e for e in entries if e["act"] == "consultation")
    assert consultation["user"] == "ho.7"
    assert consultation["justification"] == "tenancy allocation check"
    subject_ref = world.deployment.subject_ref(PNC)
    for e in entries:
        assert e["subject_ref"] == subject_ref
        assert e["isa_id"] == world.deployment.agreement.id
        row = json.dumps(e)
        assert PNC not in row
        assert "Jane Witness" not in row
        assert "Sample" not in row


async def test_redelivery_is_delivered_once(world: World) -> None:
    await publish_and_deliver(world)
    ra_topic = world.deployment.topics.for_role("staffordshire", Role.PROBATION)
    [original] = await world.read(ra_topic, 1)
    await world.transport.send(ra_topic, original.value, key=original.key)
    await world.pump(lambda: bool(world.of(PROBATION, Handling.DUPLICATE)))
    assert len(world.of(PROBATION, Handling.DELIVERED)) == 1
    assert len(world.gw(PROBATION).ctx.store.inbox()) == 1
    assert not world.of(PROBATION, Handling.REFUSED)


# -- bad input: refused with a specific error, dead-lettered, audited --------------------------


async def inject_and_expect_refusal(
    world: World, topic: str, value: bytes, agencies: tuple[str, ...], code: str
) -> None:
    before = {a: len(world.of(a, Handling.REFUSED)) for a in agencies}
    await world.transport.send(topic, value, key=b"x")
    await world.pump(lambda: all(len(world.of(a, Handling.REFUSED)) > before[a] for a in agencies))
    for agency in agencies:
        refusal = world.of(agency, Handling.REFUSED)[-1]
        assert refusal.reason_code == code, refusal
        assert refusal.reason
    # Dead-lettered with the reason, by each refusing agency.
    dead = await world.read(
        world.deployment.topics.deadletter, sum(before.values()) + len(agencies)
    )
    # Bounded: the first bytes of the record, with the digest of the whole.
    digest = hashlib.sha256(value).hexdigest().encode()
    mine = [r for r in dead if dict(r.headers)["mappa-value-sha256"] == digest]
    assert all(value.startswith(r.value) and len(r.value) <= 1024 for r in mine)
    assert {dict(r.headers)["mappa-refused-by"].decode() for r in mine} == set(agencies)
    assert {dict(r.headers)["mappa-reason-code"].decode() for r in mine} == {code}
    # And audited as refused; nothing already delivered was lost.
    await world.sync_ledger()
    refusals = world.ledger.store.entries(act="refusal", reason_code=code)
    assert {e["agency"] for e in refusals} >= set(agencies)
    assert all(e["outcome"] == "refused" for e in refusals)
    assert len(world.gw(PROBATION).ctx.store.inbox()) == 1


async def original_ra_envelope(world: World) -> tuple[str, dict[str, Any]]:
    await publish_and_deliver(world)
    topic = world.deployment.topics.for_role("staffordshire", Role.PROBATION)
    [record] = await world.read(topic, 1)
    return topic, strict_json(record.value)


async def test_tampered_ciphertext_in_transit_is_refused(world: World) -> None:
    topic, doc = await original_ra_envelope(world)
    ct = bytearray(b64decode(doc["views"][0]["ciphertext"]))
    ct[5] ^= 0x01
    doc["views"][0]["ciphertext"] = b64encode(bytes(ct))
    await inject_and_expect_refusal(
        world, topic, jcs(doc), RA_READERS, "verification.signature-invalid"
    )


async def test_tampered_ciphertext_signed_by_the_sender_fails_decryption(world: World) -> None:
    topic = world.deployment.topics.for_role("staffordshire", Role.PROBATION)
    doc = seal_as(world, POLICE, RA_RECIPIENTS, topic)
    ct = bytearray(b64decode(doc["views"][0]["ciphertext"]))
    ct[-1] ^= 0x80  # the GCM tag
    doc["views"][0]["ciphertext"] = b64encode(bytes(ct))
    await publish_and_deliver(world)
    await inject_and_expect_refusal(
        # Only addressees hold a key that can detect a bad tag; police skip it.
        world,
        topic,
        resign(world, doc, POLICE),
        RA_RECIPIENTS,
        "decryption.failed",
    )


async def test_correctly_sealed_injection_is_delivered(world: World) -> None:
    """The control for the test above: without the flip, the same path delivers."""
    topic = world.deployment.topics.for_role("staffordshire", Role.PROBATION)
    doc = seal_as(world, POLICE, RA_RECIPIENTS, topic)
    await world.transport.send(topic, jcs(doc), key=b"x")
    await world.pump(lambda: all(world.of(a, Handling.DELIVERED) for a in RA_RECIPIENTS))
    assert not world.of(PROBATION, Handling.REFUSED)


async def test_tampered_header_field_is_refused(world: World) -> None:
    topic, doc = await original_ra_envelope(world)
    doc["header"]["purpose"] = "something else entirely"
    await inject_and_expect_refusal(
        world, topic, jcs(doc), RA_READERS, "verification.signature-invalid"
    )


async def test_message_signed_by_the_wrong_agency_is_refused(world: World) -> None:
    topic, doc = await original_ra_envelope(world)
    # Claims to be from police, but signed (validly) by housing.
    housing_key = world.gw(HOUSING).ctx.keys.signing[KeyAlg.ED25519]
    doc["header"]["sender_keys"] = [housing_key.key_id]
    doc["header"]["message_id"] = "00000000-0000-4000-8000-000000000002"
    await inject_and_expect_refusal(
        world, topic, resign(world, doc, HOUSING), RA_READERS, "envelope.sender-key-mismatch"
    )


async def test_message_from_an_unknown_agency_is_refused(world: World) -> None:
    topic, doc = await original_ra_envelope(world)
    rogue = PrivateKey.generate(KeyAlg.ED25519)
    doc["header"]["sender"] = "police.rogue"
    doc["header"]["sender_keys"] = [rogue.key_id]
    doc["signatures"] = [
        {
            "alg": "ed25519",
            "key_id": rogue.key_id,
            "signature": b64encode(rogue.sign(signed_bytes(doc))),
        }
    ]
    await inject_and_expect_refusal(world, topic, jcs(doc), RA_READERS, "directory.unknown-agency")


async def test_garbage_on_a_topic_is_refused_not_fatal(world: World) -> None:
    await publish_and_deliver(world)
    topic = world.deployment.topics.for_role("staffordshire", Role.HOUSING)
    await inject_and_expect_refusal(world, topic, b"\x00not json", (HOUSING,), "schema.not-json")
    # The adapter keeps working after bad input.
    await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    await world.pump(lambda: len(world.of(HOUSING, Handling.DELIVERED)) == 2)


async def test_an_unexpected_fault_on_a_record_refuses_it_and_keeps_it(world: World) -> None:
    """An unexpected fault while storing (here: a conflicting inbox row, as a damaged
    database would have) refuses that record as ``record.unprocessable``, undoing what
    it wrote, and keeps it for a retry: the queue moves on, never reading one batch
    again and again (issue 16). A database that cannot be used just now is still read
    again (tests/hostile/test_poison_records.py)."""
    result = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    store = world.gw(PROBATION).ctx.store
    # The police's own id: only the same sender's message with it conflicts.
    conflict = InboxItem(
        result.message_id, "t", POLICE, "x", "x", "x", "x", 1, "x", "x", None, b"x"
    )
    with store.transaction():
        store.add_to_inbox(conflict)
    await world.pump(lambda: bool(world.of(PROBATION, Handling.REFUSED)))
    [refusal] = world.of(PROBATION, Handling.REFUSED)
    assert (refusal.message_id, refusal.reason_code) == (
        result.message_id,
        "record.unprocessable",
    )
    assert refusal.reason == "the record could not be processed (IntegrityError)"
    [kept] = store.deadletters.pending()
    assert kept.reason_code == "record.unprocessable"
    # Nothing of the refused delivery stayed: the inbox holds only the conflicting row.
    assert [i.message_type for i in store.inbox()] == ["x"]
    assert store.seen_digest(POLICE, result.message_id) is None


async def test_the_producer_is_idempotent_where_the_broker_gives_producer_ids(
    world: World, world_broker: Broker
) -> None:
    """Probed, not configured: Apache Kafka gives every agency's producer an id, tansu
    refuses (and duplicates are then caught by message id at the receiver)."""
    expected = world_broker.name == "apache"
    assert {gw.transport.idempotent for gw in world.gateways.values()} == {expected}
    assert world.ledger is not None
