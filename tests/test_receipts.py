"""Receipts on the running system (docs/receipts.md §5): each check a reader makes, on a
real broker, and what a receipt that fails it leaves behind: a dead letter and an audited
refusal, and the sender's tracking as it was.

The recipients' gateways do not read here unless a test says so: the police's rows stay
``sent``, so any receipt that slipped through a check would visibly settle one.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from broker.crypto.keys import PrivateKey
from broker.gateway.handled import Handling
from broker.gateway.receipts import (
    MAX_RECEIPT_BYTES,
    addressee,
    delivery_receipt_record,
    ledger_receipt_record,
)
from broker.gateway.tracking import DELIVERED, LEDGER, SENT
from broker.kafka.transport import Record
from broker.trust.provision import load_ledger_key
from schemas.audit import SignedAuditEvent
from schemas.common import format_timestamp
from schemas.directory import KeyAlg
from schemas.receipt import MAX_SAFE_INTEGER, DeliveryReceipt, LedgerReceipt, ReceiptOutcome
from tests.support import (
    AREA,
    EDUCATION,
    HOUSING,
    POLICE,
    PRISON,
    PROBATION,
    World,
    risk_assessment,
)


def signer(world: World, agency: str) -> PrivateKey:
    """The agency's current Ed25519 key: what it signs receipts with."""
    return world.gw(agency).ctx.keys.signing[KeyAlg.ED25519]


def receipt_for(
    world: World, message_id: str, recipient: str, /, **changes: Any
) -> DeliveryReceipt:
    """A true receipt from ``recipient`` for the police's ``message_id`` (the digest the
    police tracks for it), with ``changes``."""
    row = world.gw(POLICE).ctx.store.tracking.get(message_id, recipient)
    assert row is not None
    ctx = world.gw(recipient).ctx
    fields: dict[str, Any] = {
        "message_id": message_id,
        "envelope_digest": row.digest,
        "sender": POLICE,
        "recipient": recipient,
        "topic": ctx.topics.for_role(AREA, ctx.entry.role),
        "outcome": ReceiptOutcome.DELIVERED,
        "reason_code": None,
        "time": format_timestamp(datetime.now(UTC)),
    }
    return DeliveryReceipt(**(fields | changes))


async def post_receipt(world: World, value: bytes, key: str = POLICE) -> None:
    """Put a record on the receipts topic, as any agency that may write there could."""
    await world.transport.send(world.deployment.topics.receipts, value, key=key.encode())


async def pump_only(world: World, agencies: tuple[str, ...], until: Any) -> None:
    """Poll only ``agencies``' gateways until ``until()``."""
    for _ in range(400):
        if until():
            return
        for agency in agencies:
            await world.gw(agency).poll_once(timeout_ms=30)
    raise AssertionError(f"condition not met: {world.handled}")


def states(world: World, message_id: str) -> dict[str, str]:
    rows = world.gw(POLICE).ctx.store.tracking.of_message(message_id)
    return {r.recipient: r.state for r in rows}


async def police_events(world: World) -> list[str]:
    """The ids of the audit events the police has sent so far."""
    records = await world.read(world.deployment.topics.audit, 1)
    events = [SignedAuditEvent.model_validate_json(r.value).event for r in records]
    return [e.event_id for e in events if e.agency == POLICE]


def refused_by(records: list[Record], agency: str) -> list[str]:
    """The reason codes of the dead letters ``agency`` wrote."""
    return [
        dict(r.headers)["mappa-reason-code"].decode()
        for r in records
        if dict(r.headers).get("mappa-refused-by") == agency.encode()
    ]


async def test_each_failed_check_is_refused_dead_lettered_audited_and_changes_nothing(
    world: World,
) -> None:
    police = world.gw(POLICE)
    result = await police.publish(risk_assessment(), purpose="risk management")
    mid = result.message_id
    events = await police_events(world)
    assert states(world, mid) == {PROBATION: SENT, PRISON: SENT, HOUSING: SENT}
    true_receipt = receipt_for(world, mid, PROBATION)
    valid = delivery_receipt_record(true_receipt, signer(world, PROBATION))
    document = json.loads(valid)
    flipped = bytearray(base64.b64decode(document["signature"]))
    flipped[0] ^= 1
    missing = json.loads(valid)
    del missing["receipt"]["outcome"]
    # A ledger receipt of the police's own events, with a tree size JCS cannot write: a
    # reader that signed it anyway would fail every poll on this record, for good.
    unsafe = json.loads(
        ledger_receipt_record(
            LedgerReceipt(agency=POLICE, held=tuple(events), tree_size=1, time=true_receipt.time),
            load_ledger_key(world.deployment.paths, world.deployment.keystore),
        )
    )
    unsafe["receipt"]["tree_size"] = MAX_SAFE_INTEGER + 1
    bad = {
        # Signed by housing, in probation's name.
        "receipt.wrong-signer": delivery_receipt_record(true_receipt, signer(world, HOUSING)),
        "verification.signature-invalid": json.dumps(
            document | {"signature": base64.b64encode(bytes(flipped)).decode()}
        ).encode(),
        "receipt.unknown-message": delivery_receipt_record(
            receipt_for(world, mid, PROBATION, message_id=str(uuid.uuid4())),
            signer(world, PROBATION),
        ),
        "receipt.digest-mismatch": delivery_receipt_record(
            receipt_for(world, mid, PROBATION, envelope_digest="ab" * 32),
            signer(world, PROBATION),
        ),
        "receipt.malformed": json.dumps(missing).encode(),
        # A true receipt, but no receipt is that large.
        "receipt.too-large": valid + b" " * (MAX_RECEIPT_BYTES + 1 - len(valid)),
    }
    for value in bad.values():
        await post_receipt(world, value)
    # Signed by the police's own key, not the ledger's: it would settle its events.
    by_an_agency = ledger_receipt_record(
        LedgerReceipt(agency=POLICE, held=tuple(events), tree_size=1, time=true_receipt.time),
        signer(world, POLICE),
    )
    await post_receipt(world, by_an_agency, key="x")
    await post_receipt(world, json.dumps(unsafe).encode(), key="x")
    # And after all of them the true receipt, which still counts.
    await post_receipt(world, valid)

    expected = [*bad, "receipt.wrong-signer", "receipt.malformed"]
    await pump_only(
        world,
        (POLICE,),
        lambda: (
            bool(world.receipts(POLICE))
            and len(world.receipts(POLICE, Handling.REFUSED)) == len(expected)
        ),
    )
    refused = [h.reason_code for h in world.receipts(POLICE, Handling.REFUSED)]
    assert Counter(refused) == Counter(expected)
    # Nothing but the true receipt settled anything.
    assert states(world, mid) == {PROBATION: DELIVERED, PRISON: SENT, HOUSING: SENT}
    tracking = police.ctx.store.tracking
    assert {tracking.get(e, LEDGER).state for e in events} == {SENT}  # type: ignore[union-attr]

    dead = await world.read(world.deployment.topics.deadletter, len(expected))
    assert Counter(refused_by(dead, POLICE)) == Counter(expected)
    await world.sync_ledger()
    audited = world.ledger.store.entries(agency=POLICE, act="refusal")
    assert Counter(e["reason_code"] for e in audited) == Counter(expected)
    assert {e["outcome"] for e in audited} == {"refused"}


async def test_a_receipt_for_another_agency_is_passed_over(world: World) -> None:
    police = world.gw(POLICE)
    mid = (await police.publish(risk_assessment(), purpose="risk management")).message_id
    # For education: a true receipt of the police's message, but addressed to education
    # (the police would settle its row with it if it read it), and a forged one (the
    # police would refuse it if it read it).
    for_other = receipt_for(world, mid, PROBATION, sender=EDUCATION)
    true = delivery_receipt_record(for_other, signer(world, PROBATION))
    forged = delivery_receipt_record(for_other, signer(world, HOUSING))
    await post_receipt(world, true, EDUCATION)
    await post_receipt(world, forged, EDUCATION)

    await pump_only(
        world, (POLICE, EDUCATION), lambda: len(world.receipts(EDUCATION, Handling.REFUSED)) == 2
    )
    # Education read both, and refused them: it never sent that message.
    assert [h.reason_code for h in world.receipts(EDUCATION, Handling.REFUSED)] == [
        "receipt.unknown-message",
        "receipt.wrong-signer",
    ]
    await pump_only(
        world, (POLICE,), lambda: len(world.receipts(POLICE, Handling.NOT_ADDRESSED)) == 2
    )
    assert world.receipts(POLICE, Handling.REFUSED) == []
    assert world.receipts(POLICE) == []
    assert states(world, mid) == {PROBATION: SENT, PRISON: SENT, HOUSING: SENT}


async def test_audit_events_are_settled_by_the_ledgers_receipt(world: World) -> None:
    police = world.gw(POLICE)
    await police.publish(risk_assessment(), purpose="risk management")
    events = await police_events(world)
    assert len(events) == 4  # a collection, and a disclosure to each of three recipients
    tracking = police.ctx.store.tracking

    def settled() -> set[str]:
        return {tracking.get(e, LEDGER).state for e in events}  # type: ignore[union-attr]

    assert settled() == {SENT}
    await world.sync_ledger()
    # The ledger holds them and says so; the police's reader settles them.
    await pump_only(world, (POLICE,), lambda: settled() == {DELIVERED})
    ledger_receipts = world.receipts(POLICE)
    assert {h.message_type for h in ledger_receipts} == {"mappa.ledger-receipt"}


def test_routing_reads_utf8_only_with_one_byte_order_mark_skipped() -> None:
    # docs/receipts.md §5: which records a reader refuses, and which it passes over, must
    # not depend on its JSON library (json.loads alone would also read UTF-16 and UTF-32).
    claim = {"receipt": {"kind": "mappa.delivery-receipt", "sender": POLICE}}
    text = json.dumps(claim)
    assert addressee(text.encode()) == ("mappa.delivery-receipt", POLICE)
    assert addressee(b"\xef\xbb\xbf" + text.encode()) == ("mappa.delivery-receipt", POLICE)
    assert addressee(b"\xef\xbb\xbf\xef\xbb\xbf" + text.encode()) is None
    for encoding in ("utf-16", "utf-16-le", "utf-32"):
        assert addressee(text.encode(encoding)) is None, encoding
    # An encoded surrogate is not UTF-8.
    assert addressee(text.replace("}}", ',"x":"\ud800"}}').encode("utf-8", "surrogatepass")) is None


def test_routing_passes_over_nesting_deeper_than_512() -> None:
    def nested(arrays: int) -> bytes:
        claim = json.dumps({"receipt": {"kind": "mappa.delivery-receipt", "sender": POLICE}})
        return (claim[:-1] + ',"n":' + "[" * arrays + "]" * arrays + "}").encode()

    # The record's object is 1 deep: 511 arrays in it reach 512, 512 reach 513.
    assert addressee(nested(511)) == ("mappa.delivery-receipt", POLICE)
    assert addressee(nested(512)) is None
