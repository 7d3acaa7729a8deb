"""Area transfers end to end on the real broker: workflow, routing, handover, audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.receive import Handling
from broker.transfer.rules import TransferRefused
from broker.transport import KafkaTransport
from schemas.common import ViewKind
from schemas.transfer import TransferState
from tests.transfer_world import (
    COORD_A,
    COORD_B,
    FROM,
    HOUSING_A,
    HOUSING_B,
    PNC,
    POLICE_A,
    POLICE_B,
    PRISON_A,
    PRISON_B,
    PROBATION_A,
    PROBATION_B,
    TO,
    TransferWorld,
    build_transfer_world,
    risk_assessment,
)

CASE_HOLDERS = (POLICE_A, PROBATION_A, PRISON_A, COORD_A, POLICE_B, PROBATION_B, PRISON_B, COORD_B)


@pytest.fixture
async def tworld(tmp_path: Path, transport: KafkaTransport) -> AsyncIterator[TransferWorld]:
    w = await build_transfer_world(tmp_path, transport)
    try:
        yield w
    finally:
        await w.close()


def state_everywhere(world: TransferWorld, transfer_id: str, state: TransferState) -> bool:
    return all(
        (r := world.desk(a).registry.get(transfer_id)) is not None and r.state is state
        for a in CASE_HOLDERS
    )


async def test_offender_moves_with_handover_and_routing(tworld: TransferWorld) -> None:
    w = tworld
    today = datetime.now(UTC).date()
    subject_ref = w.deployment.subject_ref(PNC)
    # Before: the case is managed in Staffordshire.
    await w.gw(POLICE_A).publish(risk_assessment(FROM), purpose="risk management")
    await w.pump(lambda: all(w.delivered(a) for a in (PROBATION_A, PRISON_A, HOUSING_A, COORD_A)))

    record = await w.desk(PROBATION_A).request(
        pnc_id=PNC,
        to_area=TO,
        move_date=today,
        reason="moving to live with family in Worcester",
        user="po.17",
        open_actions=["approve address", "hand over licence conditions"],
        registered_sex_offender=True,
    )
    tid = record.transfer_id
    await w.pump(lambda: state_everywhere(w, tid, TransferState.REQUESTED))

    # Mid-transfer: the sending area still owns the case; the receiving area may not
    # publish about it yet, and the sending area's message goes to its own agencies.
    with pytest.raises(TransferRefused) as not_yet:
        await w.gw(POLICE_B).publish(risk_assessment(TO), purpose="risk management")
    assert not_yet.value.code == "transfer.not-yet-owner"
    await w.gw(POLICE_A).publish(risk_assessment(FROM, "Updated mid-move."), purpose="review")
    await w.pump(lambda: len(w.delivered(HOUSING_A)) == 2 and len(w.delivered(PROBATION_A)) == 2)

    await w.desk(COORD_B).accept(tid, user="coord.wm.3", reason="address approved")
    await w.pump(lambda: state_everywhere(w, tid, TransferState.ACCEPTED))
    housing_a_before = len(w.delivered(HOUSING_A))
    await w.desk(COORD_B).complete(tid, user="coord.wm.3", address_notified_on=today)

    # Handover: both risk assessments the lead holds, at each receiving agency's view
    # under West Mercia's agreement.
    receivers = (POLICE_B, PROBATION_B, PRISON_B, COORD_B, HOUSING_B)
    await w.pump(
        lambda: (
            all(len(w.of(a, Handling.DELIVERED, ".transfers")) >= 2 for a in receivers)
            and state_everywhere(w, tid, TransferState.COMPLETED)
        )
    )
    for agency in (POLICE_B, PROBATION_B, PRISON_B):
        handover = [h for h in w.of(agency, Handling.DELIVERED, ".transfers") if h.sender]
        assert [h.view for h in handover if h.message_type == "risk-assessment"] == [
            ViewKind.FULL,
            ViewKind.FULL,
        ]
    housing_b = [
        h
        for h in w.of(HOUSING_B, Handling.DELIVERED, ".transfers")
        if h.message_type == "risk-assessment"
    ]
    assert [h.view for h in housing_b] == [ViewKind.REDACTED, ViewKind.REDACTED]
    assert all(h.sender == PROBATION_A for h in housing_b)
    # The receiving housing authority knows of the completion from a summary notice.
    assert w.desk(HOUSING_B).registry.owner(subject_ref) == TO
    assert w.desk(HOUSING_A).registry.get(tid) is None  # the old DtC agency is told nothing
    [item] = [i for i in w.gw(HOUSING_B).ctx.store.inbox() if i.view == "redacted"][:1]
    assert item.subject_ref == subject_ref

    # After: routing follows the case.
    with pytest.raises(TransferRefused) as moved:
        await w.gw(POLICE_A).publish(risk_assessment(FROM), purpose="risk management")
    assert moved.value.code == "transfer.case-moved"
    await w.gw(POLICE_B).publish(risk_assessment(TO, "First West Mercia review."), purpose="rm")
    await w.pump(
        lambda: all(
            len(w.of(a, Handling.DELIVERED, f".{TO}.")) == 1
            for a in (PROBATION_B, PRISON_B, HOUSING_B, COORD_B)
        )
    )
    await w.pump_quiet()
    assert len(w.delivered(HOUSING_A)) == housing_a_before
    assert not w.of(HOUSING_A, Handling.DELIVERED, f".{TO}.")

    # Deadlines were met: nothing overdue at either co-ordinator.
    rec = w.desk(COORD_A).registry.get(tid)
    assert rec is not None
    assert rec.completed_on == today.isoformat()

    # The ledger shows the chain in both areas.
    await w.sync_ledger()
    chain = w.ledger.store.entries(subject_ref=subject_ref)
    steps = {(e["area"], e["message_type"], e["act"], e["agency"]) for e in chain}
    for step, actor in (
        ("transfer-request", PROBATION_A),
        ("transfer-accept", COORD_B),
        ("transfer-complete", COORD_B),
    ):
        home = FROM if actor == PROBATION_A else TO
        assert (home, step, "collection", actor) in steps
        # Each other area's case holders recorded receiving it.
        assert any(
            e["area"] != home
            and e["message_type"] == step
            and e["act"] == "collection"
            and e["operation"] == "deliver"
            for e in chain
        )
    reshares = [e for e in chain if e["operation"] == "reshare"]
    assert {e["recipient"] for e in reshares} == {
        POLICE_B,
        PROBATION_B,
        PRISON_B,
        COORD_B,
        HOUSING_B,
    }
    assert all(e["act"] == "disclosure" and e["agency"] == PROBATION_A for e in reshares)
    refusals = {e["reason_code"] for e in chain if e["act"] == "refusal"}
    assert {"transfer.not-yet-owner", "transfer.case-moved"} <= refusals
