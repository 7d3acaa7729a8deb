"""Delivery end to end: what becomes of an envelope at each of its recipients, as its
sender's tracking sees it (docs/receipts.md §5-6), on a real broker.

- a delivery takes the row queued -> sent -> delivered, and the receipt is audited;
- a refusal by the recipient settles the row as refused, with the code;
- a row nobody receipts is sent again, the wait doubling up to the cap; the receiver
  takes the copies once and receipts each; in the end the row is undeliverable, audited;
- a refusal for good is answered again, not refused again; one that can pass keeps the
  record and is judged afresh;
- a broker that loses its log: what was accepted before still arrives, and no reader
  skips records of the new log.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.gateway.handled import Handling
from broker.gateway.tracking import DELIVERED, QUEUED, REFUSED, SENT, UNDELIVERABLE, Tracked
from broker.kafka.transport import Record
from schemas.common import Role, format_timestamp, parse_timestamp
from schemas.receipt import DeliveryReceipt
from tests.brokers import Broker
from tests.support import (
    AREA,
    HOUSING,
    PARTIES,
    PNC,
    POLICE,
    PRISON,
    PROBATION,
    World,
    build_world,
    risk_assessment,
)

RECIPIENTS = (PROBATION, PRISON, HOUSING)


class Clock:
    """A deployment clock that moves only when told: waits pass without waiting."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


def row(world: World, message_id: str, recipient: str) -> Tracked:
    found = world.gw(POLICE).ctx.store.tracking.get(message_id, recipient)
    assert found is not None, (message_id, recipient)
    return found


def states(world: World, message_id: str) -> dict[str, str]:
    rows = world.gw(POLICE).ctx.store.tracking.of_message(message_id)
    return {r.recipient: r.state for r in rows}


async def pump_only(
    world: World, agencies: tuple[str, ...], until: Callable[[], bool], *, rounds: int = 400
) -> None:
    """Poll only ``agencies``' gateways until ``until()``."""
    for _ in range(rounds):
        if until():
            return
        for agency in agencies:
            await world.gw(agency).poll_once(timeout_ms=30)
    raise AssertionError(f"condition not met: {world.handled}")


def copies(records: list[Record], message_id: str) -> list[Record]:
    """The envelopes among ``records`` of publication ``message_id``."""
    return [r for r in records if json.loads(r.value)["header"]["message_id"] == message_id]


def receipts_on(records: list[Record], message_id: str, recipient: str) -> list[DeliveryReceipt]:
    found = []
    for r in records:
        receipt = json.loads(r.value)["receipt"]
        if receipt.get("message_id") == message_id and receipt.get("recipient") == recipient:
            found.append(DeliveryReceipt.model_validate_json(json.dumps(receipt)))
    return found


def topic_of(world: World, role: Role) -> str:
    return world.deployment.topics.for_role(AREA, role)


async def test_a_delivery_goes_queued_sent_delivered_and_its_receipt_is_audited(
    world: World,
) -> None:
    police = world.gw(POLICE)
    # Queued by the publisher, not yet relayed.
    result = police.publisher.publish(risk_assessment(), purpose="risk management")
    mid = result.message_id
    assert states(world, mid) == dict.fromkeys(RECIPIENTS, QUEUED)
    await police.relay.flush()
    assert states(world, mid) == dict.fromkeys(RECIPIENTS, SENT)
    assert all(row(world, mid, r).due_at is not None for r in RECIPIENTS)

    await world.pump(lambda: states(world, mid) == dict.fromkeys(RECIPIENTS, DELIVERED))
    receipted = {h.sender for h in world.receipts(POLICE) if h.message_id == mid}
    assert receipted == set(RECIPIENTS)
    assert all(row(world, mid, r).due_at is None for r in RECIPIENTS)

    await world.sync_ledger()
    audited = world.ledger.store.entries(agency=POLICE, operation="receipt", message_id=mid)
    assert sorted((e["recipient"], e["act"], e["outcome"], e["view"]) for e in audited) == [
        (HOUSING, "disclosure", "ok", "redacted"),
        (PRISON, "disclosure", "ok", "full"),
        (PROBATION, "disclosure", "ok", "full"),
    ]
    # The disclosure's own fields come with it: whose data, what, under which agreement.
    for entry in audited:
        assert entry["subject_ref"] == world.deployment.subject_ref(PNC)
        assert entry["message_type"] == "risk-assessment"
        assert entry["isa_id"] == police.ctx.policy.agreement.id
        assert entry["purpose"] == "risk management"


def leave_housing_off_its_own_case_team(world: World) -> None:
    """Housing's own record of the case team, newer than the one every agency holds,
    without housing: the police still shares with it, and housing refuses (for good)
    what only an agency active on the case may hold."""
    store = world.gw(HOUSING).ctx.store
    with store.transaction():
        store.record_case_team(
            world.deployment.subject_ref(PNC),
            [POLICE, PROBATION, PRISON],
            lead_agency=POLICE,
            set_at=format_timestamp(datetime.now(UTC)),
            message_id=str(uuid.uuid4()),
        )


NOT_ON_TEAM = "policy.breach-not-on-case-team"


async def refused_by_housing(world: World) -> str:
    leave_housing_off_its_own_case_team(world)
    result = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    mid = result.message_id
    settled = {PROBATION: DELIVERED, PRISON: DELIVERED, HOUSING: REFUSED}
    await world.pump(lambda: states(world, mid) == settled)
    return mid


async def test_a_refusal_by_the_recipient_settles_the_row_as_refused(world: World) -> None:
    mid = await refused_by_housing(world)
    assert states(world, mid) == {PROBATION: DELIVERED, PRISON: DELIVERED, HOUSING: REFUSED}
    assert row(world, mid, HOUSING).reason_code == NOT_ON_TEAM
    assert [h.reason_code for h in world.of(HOUSING, Handling.REFUSED)] == [NOT_ON_TEAM]
    await world.sync_ledger()
    [audited] = world.ledger.store.entries(
        agency=POLICE, operation="receipt", message_id=mid, recipient=HOUSING
    )
    assert (audited["act"], audited["outcome"], audited["reason_code"]) == (
        "disclosure",
        "refused",
        NOT_ON_TEAM,
    )


async def test_a_copy_of_an_envelope_refused_for_good_gets_the_same_receipt_again(
    world: World,
) -> None:
    mid = await refused_by_housing(world)
    housing_topic = topic_of(world, Role.HOUSING)
    [sent] = copies(await world.read(housing_topic, 1), mid)
    # The same envelope again (a copy re-sent because a receipt was lost, say).
    await world.transport.send(housing_topic, sent.value, key=sent.key)
    await world.pump(lambda: bool(world.of(HOUSING, Handling.DUPLICATE)))
    [again] = world.of(HOUSING, Handling.DUPLICATE)
    assert (again.message_id, again.reason_code) == (mid, NOT_ON_TEAM)

    receipts = world.deployment.topics.receipts
    answers = receipts_on(await world.read(receipts, 2), mid, HOUSING)
    assert len(answers) == 2
    assert {(a.outcome.value, a.reason_code, a.envelope_digest) for a in answers} == {
        ("refused", NOT_ON_TEAM, row(world, mid, HOUSING).digest)
    }
    # One refusal on record, one dead letter: the copy was answered, not judged again.
    await world.pump(lambda: len(world.receipts(POLICE)) == 4)
    await world.sync_ledger()
    store = world.ledger.store
    assert len(store.entries(agency=HOUSING, act="refusal", message_id=mid)) == 1
    dead = await world.read(world.deployment.topics.deadletter, 1)
    assert [dict(r.headers)["mappa-refused-by"] for r in dead] == [HOUSING.encode()]
    # The sender's row was settled by the first answer, and audited once.
    assert row(world, mid, HOUSING).state == REFUSED
    assert len(store.entries(agency=POLICE, operation="receipt", recipient=HOUSING)) == 1


async def test_a_refusal_that_can_pass_keeps_the_record_and_a_copy_is_judged_afresh(
    world: World,
) -> None:
    probation = world.gw(PROBATION).ctx
    skew = world.deployment.settings.clock_skew_seconds
    # Probation's clock runs slow, beyond the tolerance: the police's envelope is "from
    # the future" there (MAPPA_CLOCK_OFFSET_SECONDS does this to a whole process).
    probation.clock = lambda: datetime.now(UTC) - timedelta(seconds=skew + 300)
    mid = (await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")).message_id
    await world.pump(lambda: row(world, mid, PROBATION).state == REFUSED)
    assert row(world, mid, PROBATION).reason_code == "envelope.clock-skew"
    [kept] = probation.store.deadletters.pending()
    assert (kept.reason_code, kept.topic) == (
        "envelope.clock-skew",
        topic_of(world, Role.PROBATION),
    )
    assert json.loads(kept.value)["header"]["message_id"] == mid
    assert probation.store.inbox() == []

    # Its clock put right, a copy of the same envelope is judged afresh, and taken.
    probation.clock = world.deployment.clock
    await world.transport.send(kept.topic, kept.value, key=kept.key)
    await world.pump(lambda: row(world, mid, PROBATION).state == DELIVERED)
    assert [i.message_id for i in probation.store.inbox()] == [mid]


async def test_unreceipted_is_sent_again_waiting_longer_each_time_then_given_up(
    tmp_path: Path, tansu_broker: Broker
) -> None:
    clock = Clock()
    world = await build_world(
        tmp_path,
        tansu_broker,
        clock=clock,
        receipt_wait_seconds=5,
        resend_cap_seconds=12,
        undeliverable_after_seconds=100,
    )
    try:
        world.seed_case_team(PARTIES)
        police = world.gw(POLICE)
        mid = (await police.publish(risk_assessment(), purpose="risk management")).message_id
        # Nobody reads: each time the wait runs out the police sends the envelope again,
        # waiting twice as long, up to the cap.
        waits = [timedelta(seconds=s) for s in (5, 10, 12, 12)]
        for attempt, wait in enumerate(waits):
            sent = row(world, mid, PROBATION)
            assert (sent.state, sent.attempts) == (SENT, attempt)
            assert sent.due_at is not None
            assert parse_timestamp(sent.due_at) - parse_timestamp(sent.updated_at) == wait
            clock.advance(wait)
            await police.poll_once(timeout_ms=30)
        assert row(world, mid, PROBATION).attempts == len(waits)
        ra = await world.read(topic_of(world, Role.PROBATION), len(waits) + 1)
        assert len(copies(ra, mid)) == len(waits) + 1
        assert len({r.value for r in copies(ra, mid)}) == 1

        # Probation and the prison read at last: one delivery each, every copy receipted.
        readers = (POLICE, PROBATION, PRISON)

        def answered(recipient: str) -> int:
            return len([h for h in world.receipts(POLICE) if h.sender == recipient])

        await pump_only(world, readers, lambda: answered(PROBATION) == answered(PRISON) == 5)
        assert states(world, mid) == {PROBATION: DELIVERED, PRISON: DELIVERED, HOUSING: SENT}
        for agency in (PROBATION, PRISON):
            assert [i.message_id for i in world.gw(agency).ctx.store.inbox()] == [mid]
            assert len(world.of(agency, Handling.DELIVERED)) == 1
            assert len(world.of(agency, Handling.DUPLICATE)) == len(waits)
        answers = receipts_on(await world.read(world.deployment.topics.receipts), mid, PROBATION)
        assert [a.outcome.value for a in answers] == ["delivered"] * (len(waits) + 1)

        # Housing never reads: once the row is older than the limit, it is given up.
        clock.advance(timedelta(seconds=100))
        await police.poll_once(timeout_ms=30)
        assert row(world, mid, HOUSING).state == UNDELIVERABLE
        await police.poll_once(timeout_ms=30)  # nothing more goes to housing
        housing = await world.read(topic_of(world, Role.HOUSING), len(waits) + 1)
        assert len(copies(housing, mid)) == len(waits) + 1

        await world.sync_ledger()
        store = world.ledger.store
        [given_up] = store.entries(agency=POLICE, outcome="undeliverable", message_id=mid)
        assert (given_up["act"], given_up["recipient"], given_up["reason_code"]) == (
            "disclosure",
            HOUSING,
            "delivery.undeliverable",
        )
        # Each recipient's receipt audited once, however many copies it answered.
        receipted = store.entries(agency=POLICE, operation="receipt", message_id=mid)
        assert sorted(e["recipient"] for e in receipted) == [PRISON, PROBATION]

        # Housing comes back at last and reads the log: its receipt says more than the
        # given-up row, which turns delivered (and the receipt is audited).
        await pump_only(world, (POLICE, HOUSING), lambda: answered(HOUSING) >= 1)
        assert row(world, mid, HOUSING).state == DELIVERED
        await world.sync_ledger()
        receipted = store.entries(agency=POLICE, operation="receipt", message_id=mid)
        assert sorted(e["recipient"] for e in receipted) == [HOUSING, PRISON, PROBATION]
    finally:
        await world.close()


# -- broker loss ----------------------------------------------------------------------------------


def tansu_children() -> dict[int, str]:
    """This process's tansu children and their command lines."""
    found = {}
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"tansu" in cmdline:
                found[int(pid)] = cmdline.decode()
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc (Linux)")
async def test_a_broker_that_loses_its_log_loses_no_message(tmp_path: Path) -> None:
    # A deployment on an embedded broker of its own (supervised), not the session's.
    world = await build_world(tmp_path, Broker("own-embedded", {}))
    try:
        world.seed_case_team(PARTIES)
        police = world.gw(POLICE)
        earlier = [
            (await police.publish(risk_assessment(), purpose="risk management")).message_id
            for _ in range(3)
        ]
        await world.pump(
            lambda: all(states(world, m) == dict.fromkeys(RECIPIENTS, DELIVERED) for m in earlier)
        )
        ra = topic_of(world, Role.PROBATION)
        read_before = max(o for (t, _p), o in world.gw(PROBATION).ctx.store.offsets().items()
                          if t == ra)  # fmt: skip
        # Accepted by the broker, not yet read by anyone: then the broker dies.
        second = (await police.publish(risk_assessment(), purpose="risk management")).message_id
        assert states(world, second) == dict.fromkeys(RECIPIENTS, SENT)
        cluster = world.transport.cluster_id
        port = re.search(r"127\.0\.0\.1:(\d+)", world.running.broker)
        assert port is not None
        [pid] = [p for p, cmd in tansu_children().items() if f":{port[1]} " in cmd + " "]
        os.kill(pid, signal.SIGKILL)

        # The supervisor starts it again, empty, with a cluster id of its own; every
        # reader moves to the new log.
        def moved() -> bool:
            new = world.transport.cluster_id
            stores = [gw.ctx.store for gw in world.gateways.values()] + [world.ledger.store]
            return new != cluster and all(s.broker_cluster() == new for s in stores)

        for _ in range(300):
            if moved():
                break
            await asyncio.sleep(0.1)
        assert moved()

        # What the broker lost is sent again, unreceipted as it was, and arrives once.
        await world.pump(lambda: states(world, second) == dict.fromkeys(RECIPIENTS, DELIVERED))
        third = (await police.publish(risk_assessment(), purpose="risk management")).message_id
        await world.pump(lambda: states(world, third) == dict.fromkeys(RECIPIENTS, DELIVERED))
        for agency in RECIPIENTS:
            held = [i.message_id for i in world.gw(agency).ctx.store.inbox()]
            assert sorted(held) == sorted([*earlier, second, third])
        # Both sit in the new log below the offset the readers had reached in the old
        # one: a reader that kept its offsets would have skipped them.
        new_log = await world.read(ra, 2)
        offsets = [r.offset for r in copies(new_log, second) + copies(new_log, third)]
        assert len(offsets) == 2
        assert max(offsets) < read_before
        await world.sync_ledger()
    finally:
        await world.close()
