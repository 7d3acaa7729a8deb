"""Poison records (issue 16, findings 1, 2 and 4): one record anyone with write access to a
topic can put there must never stop an agency, a transfer desk or the ledger.

Each case writes a hostile record straight onto a topic of a real deployment (the
session's broker), then a legitimate message right behind it, and checks: the hostile
record is refused with a clear code, dead-lettered in bounded form and audited in the
ledger (without its value), and the legitimate message is delivered. A record that
cannot be handled for a reason nobody foresaw is refused the same way
(``record.unprocessable``), while a database that cannot be used just now still rolls
the batch back and reads it again.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from broker.crypto.encoding import jcs
from broker.errors import StoreUnavailable
from broker.gateway.deadletters import DEAD_LETTER_HEAD_BYTES
from broker.gateway.handled import Handled, Handling
from broker.gateway.store import InboxItem
from broker.kafka.topics import RECORD_LIMIT_BYTES
from broker.kafka.transport import Record
from schemas.audit import AuditAct, Operation
from schemas.common import Role
from schemas.transfer import TransferState
from tests.support import (
    AREA,
    POLICE,
    PROBATION,
    World,
    risk_assessment,
    seal_as,
    signed_audit_event,
)
from tests.two_areas import COORD_B, PNC, PROBATION_A, TO

# The first millisecond of the year 10000: no datetime can hold it.
YEAR_10000_MS = 253402300800000
HUGE_DIGITS = b"1" * 5000


def probation_topic(world: World) -> str:
    return world.deployment.topics.for_role(AREA, Role.PROBATION)


async def write_raw(
    world: World,
    topic: str,
    value: bytes,
    *,
    key: bytes = b"x",
    timestamp_ms: int | None = None,
    headers: list[tuple[str, bytes | None]] | None = None,
) -> None:
    """Put ``value`` on ``topic`` as anyone with write access could: no signature, any
    timestamp, any headers."""
    await world.transport.producer.send_and_wait(
        topic, value, key=key, timestamp_ms=timestamp_ms, headers=headers or []
    )


def refused_by(world: World, agency: str, code: str) -> list[Handled]:
    return [h for h in world.of(agency, Handling.REFUSED) if h.reason_code == code]


async def legitimate_message_arrives(world: World) -> str:
    """A police risk assessment published after the poison; returns its message id once
    probation has taken it."""
    result = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    mid = result.message_id
    await world.pump(lambda: any(h.message_id == mid for h in world.delivered(PROBATION)))
    return mid


async def refusal_audited(world: World, agency: str, code: str) -> list[dict[str, Any]]:
    """The ledger's refusal events of ``agency`` with ``code`` (at least one)."""
    await world.sync_ledger()
    found = world.ledger.store.entries(agency=agency, act="refusal", reason_code=code)
    assert found, f"no refusal {code} by {agency} in the ledger"
    return found


async def dead_letters_from(world: World, agency: str, code: str) -> list[Record]:
    dead = await world.read(world.deployment.topics.deadletter, 1)
    return [
        r
        for r in dead
        if dict(r.headers)["mappa-refused-by"] == agency.encode()
        and dict(r.headers)["mappa-reason-code"] == code.encode()
    ]


async def poison_then_legitimate(
    world: World, write: Callable[[], Any], code: str
) -> list[dict[str, Any]]:
    """Write the poison, then a legitimate message: probation refuses the one with
    ``code`` and takes the other; the refusal is dead-lettered and audited. Returns the
    audited refusals."""
    await write()
    await legitimate_message_arrives(world)
    assert refused_by(world, PROBATION, code)
    assert await dead_letters_from(world, PROBATION, code)
    return await refusal_audited(world, PROBATION, code)


async def test_a_number_of_5000_digits_is_refused_and_the_queue_moves_on(world: World) -> None:
    value = b'{"header": {"isa_version": ' + HUGE_DIGITS + b"}}"

    async def write() -> None:
        await write_raw(world, probation_topic(world), value)

    audited = await poison_then_legitimate(world, write, "schema.integer-range")
    # Bad input never reaches the ledger in clear.
    assert all("1111111111" not in (e["reason"] or "") for e in audited)


async def test_an_envelope_with_isa_version_2_to_the_60_is_refused(world: World) -> None:
    document = seal_as(world, POLICE, (PROBATION,), probation_topic(world))
    document["header"]["isa_version"] = 2**60
    # Not re-signed (JCS cannot canonicalise it, so no signature can be made over it).
    value = json.dumps(document).encode()

    async def write() -> None:
        await write_raw(world, probation_topic(world), value)

    await poison_then_legitimate(world, write, "schema.integer-range")


async def test_a_record_timestamped_in_the_year_10000_is_refused(world: World) -> None:
    # A genuine envelope, written again with an impossible Kafka timestamp.
    value = jcs(seal_as(world, POLICE, (PROBATION,), probation_topic(world)))

    async def write() -> None:
        await write_raw(world, probation_topic(world), value, timestamp_ms=YEAR_10000_MS)

    await poison_then_legitimate(world, write, "record.timestamp-invalid")


async def test_a_receipt_timestamped_in_the_year_10000_is_refused(world: World) -> None:
    # What routing reads says "for the police"; the time is checked before the rest.
    receipt = {
        "receipt": {"kind": "mappa.delivery-receipt", "sender": POLICE, "recipient": PROBATION}
    }
    receipts = world.deployment.topics.receipts
    await write_raw(world, receipts, json.dumps(receipt).encode(), timestamp_ms=YEAR_10000_MS)
    await legitimate_message_arrives(world)
    # Its receipts still reach the police behind the poison.
    await world.pump(lambda: bool(world.receipts(POLICE)))
    assert world.receipts(POLICE, Handling.REFUSED)
    await refusal_audited(world, POLICE, "record.timestamp-invalid")


async def test_a_header_without_a_value_is_read_past(world: World) -> None:
    async def write() -> None:
        await write_raw(world, probation_topic(world), b"{}", headers=[("h", None)])

    await poison_then_legitimate(world, write, "envelope.malformed")


def fail_first_inbox_add(
    world: World, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> list[str]:
    """Make PROBATION's first inbox write raise ``error``; the list names the message it
    failed on (empty until then), and later writes go through."""
    store = world.gw(PROBATION).ctx.store
    real = store.add_to_inbox
    failed: list[str] = []

    def fail_once(item: InboxItem) -> None:
        if not failed:
            failed.append(item.message_id)
            raise error
        real(item)

    monkeypatch.setattr(store, "add_to_inbox", fail_once)
    return failed


async def test_an_unexpected_failure_is_refused_rolled_back_and_kept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any exception on a record, not only ours, is a refusal: what the record had written
    before it failed is undone, and the record is kept for a retry (the cause, a bug,
    can be fixed)."""
    store = world.gw(PROBATION).ctx.store
    failed = fail_first_inbox_add(
        world, monkeypatch, ZeroDivisionError("a bug, with secret 2011/0456789K in its message")
    )
    first = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    await world.pump(lambda: bool(refused_by(world, PROBATION, "record.unprocessable")))
    [refusal] = refused_by(world, PROBATION, "record.unprocessable")
    assert refusal.message_id == first.message_id == failed[0]
    assert refusal.reason is not None
    assert "ZeroDivisionError" in refusal.reason
    assert "2011" not in refusal.reason
    # Undone: not remembered as taken, not in the inbox; kept for `mappa deadletter retry`.
    assert store.seen_digest(POLICE, first.message_id) is None
    assert store.inbox_item(first.message_id) is None
    [kept] = store.deadletters.pending()
    assert kept.reason_code == "record.unprocessable"

    await legitimate_message_arrives(world)
    audited = await refusal_audited(world, PROBATION, "record.unprocessable")
    assert all("2011" not in (e["reason"] or "") for e in audited)


async def test_a_database_that_cannot_be_used_rolls_the_batch_back_and_reads_it_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = world.gw(PROBATION).ctx.store
    failures = fail_first_inbox_add(
        world, monkeypatch, StoreUnavailable("the database cannot be used just now (SQLITE_BUSY)")
    )
    mid = (await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")).message_id
    raised = 0
    for _ in range(200):
        if store.inbox_item(mid) is not None:
            break
        for gw in world.gateways.values():
            try:
                await gw.poll_once(timeout_ms=30)
            except StoreUnavailable:
                raised += 1
    # Raised out of the batch (not refused), and the record read again and taken.
    assert raised == 1
    assert failures == [mid]
    assert store.inbox_item(mid) is not None
    assert not world.of(PROBATION, Handling.REFUSED)


async def test_an_oversize_record_is_dead_lettered_in_bounded_form(world: World) -> None:
    """A record the broker takes, but whose whole copy with the dead letter's headers
    the producer could not send (finding 4): the dead letter carries its digest, size
    and first bytes, and the outbox keeps flowing."""
    value = b"{" + b" " * (RECORD_LIMIT_BYTES - 256) + b"}"

    async def write() -> None:
        await write_raw(world, probation_topic(world), value)

    await poison_then_legitimate(world, write, "envelope.too-large")
    [dead] = await dead_letters_from(world, PROBATION, "envelope.too-large")
    headers = dict(dead.headers)
    assert dead.value == value[:DEAD_LETTER_HEAD_BYTES]
    assert headers["mappa-value-sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["mappa-value-bytes"] == str(len(value)).encode()


async def test_an_outbox_row_the_broker_refuses_for_good_is_set_aside(world: World) -> None:
    """A row queued by an earlier version (a whole oversize copy) must not block the rows
    behind it: it is set aside, logged and audited, and the rest go."""
    ctx = world.gw(PROBATION).ctx
    with ctx.store.transaction():
        seq = ctx.store.enqueue(ctx.topics.deadletter, b"x" * (RECORD_LIMIT_BYTES + 1))
    # Only the audit event about it goes, and the flush does not fail.
    assert await world.gw(PROBATION).relay.flush() == 1
    assert [r.seq for r in ctx.store.unsent()] == []
    assert seq in ctx.store.set_aside_rows()
    await legitimate_message_arrives(world)
    await refusal_audited(world, PROBATION, "transport.record-rejected")


async def test_the_ledger_takes_a_good_event_behind_an_unsigned_one_it_cannot_canonicalise(
    world: World,
) -> None:
    """Finding 2: an unsigned audit record with isa_version 2^60, then a validly signed
    event: the good one reaches the ledger, the other is kept as rejected."""
    ctx = world.gw(POLICE).ctx
    poison = signed_audit_event(ctx)
    # Its signature no longer matches, and no signature could: JCS has no form for it.
    poison["event"]["isa_version"] = 2**60
    await write_raw(world, world.deployment.topics.audit, json.dumps(poison).encode())
    with ctx.store.transaction():
        good = ctx.audit.emit(
            AuditAct.COLLECTION,
            Operation.DELIVER,
            reason="a genuine event behind the poison",
        )
    await world.gw(POLICE).relay.flush()
    await world.sync_ledger()
    assert world.ledger.store.entries(event_id=good.event_id)
    digest = hashlib.sha256(json.dumps(poison).encode()).hexdigest()
    rejected = [r for r in world.ledger.store.rejected() if r["digest"] == digest]
    assert [r["reason_code"] for r in rejected] in (
        ["schema.integer-range"],
        ["audit.malformed"],
    )
    assert all("1152921504606846976" not in r["reason"] for r in rejected)


async def test_a_poison_record_on_the_transfers_topic_stops_no_desk(tworld: World) -> None:
    w = tworld
    topic = w.deployment.topics.transfers
    await write_raw(w, topic, b"{}", timestamp_ms=YEAR_10000_MS)
    await write_raw(w, topic, b'{"a": ' + HUGE_DIGITS + b"}", key=uuid.uuid4().bytes)
    record = await w.desk(PROBATION_A).request(
        pnc_id=PNC,
        to_area=TO,
        move_date=datetime.now(UTC).date(),
        reason="moving to live with family",
        user="po.17",
    )
    poisons = {"record.timestamp-invalid", "schema.integer-range"}

    def refused(agency: str) -> set[str | None]:
        return {h.reason_code for h in w.of(agency, Handling.REFUSED, "transfers")}

    # The poison records and the request may sit on different partitions, read in any
    # order: each desk must take the request and refuse both, whatever the order.
    await w.pump(
        lambda: all(
            (r := w.desk(a).registry.get(record.transfer_id)) is not None
            and r.state is TransferState.REQUESTED
            and poisons <= refused(a)
            for a in (PROBATION_A, COORD_B)
        )
    )
    await w.sync_ledger()
    for agency in (PROBATION_A, COORD_B):
        for code in ("record.timestamp-invalid", "schema.integer-range"):
            assert w.ledger.store.entries(agency=agency, act="refusal", reason_code=code)


async def test_a_failing_after_batch_step_does_not_hold_the_batch_back(world: World) -> None:
    """A step run after every batch (the transfer desk's handover) that fails undoes only
    itself: the batch's records stand, and are not read again and again."""
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        raise ZeroDivisionError

    world.gw(PROBATION).after_each_batch(failing)
    await legitimate_message_arrives(world)
    assert calls
    assert not world.of(PROBATION, Handling.DUPLICATE)
