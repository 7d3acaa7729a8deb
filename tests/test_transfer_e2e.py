"""Area transfers end to end on the real broker: workflow, routing, handover, audit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from broker.crypto.encoding import strict_json
from broker.errors import SchemaError, TransferRefused
from broker.gateway.handled import Handled, Handling
from schemas.common import ViewKind
from schemas.transfer import TransferAccept, TransferRequest, TransferState
from tests.brokers import Broker
from tests.support import World
from tests.two_areas import (
    CASE_HOLDERS,
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
    case_team,
    refused_everywhere,
    risk_assessment,
)


@pytest.fixture
def world_broker(any_broker: Broker) -> Broker:
    """This module's worlds run on each broker: tansu, and the secured Apache cluster."""
    return any_broker


def ras(w: World, agency: str, topic_part: str) -> list[Handled]:
    """Risk assessments delivered to ``agency`` on topics containing ``topic_part``."""
    got = w.of(agency, Handling.DELIVERED, topic_part)
    return [h for h in got if h.message_type == "risk-assessment"]


def handed_over(w: World, agency: str) -> list[Handled]:
    got = w.of(agency, Handling.DELIVERED, ".transfers")
    return [h for h in got if h.message_type == "risk-assessment"]


def state_everywhere(world: World, transfer_id: str, state: TransferState) -> bool:
    return all(
        (r := world.desk(a).registry.get(transfer_id)) is not None and r.state is state
        for a in CASE_HOLDERS
    )


async def test_offender_moves_with_handover_and_routing(tworld: World) -> None:
    w = tworld
    today = datetime.now(UTC).date()
    subject_ref = w.deployment.subject_ref(PNC)
    # Before: the case is managed in Staffordshire, housing on its case team.
    team_a = (POLICE_A, PROBATION_A, PRISON_A, HOUSING_A)
    await w.gw(COORD_A).publish(case_team(FROM, team_a, PROBATION_A), purpose="MAPPA")
    # Every member, the sender included: the sender addresses only the team it has seen.
    await w.pump(lambda: all(w.gw(a).ctx.store.case_team(subject_ref) for a in team_a))
    await w.gw(POLICE_A).publish(risk_assessment(FROM), purpose="risk management")
    await w.pump(
        lambda: all(ras(w, a, f".{FROM}.") for a in (PROBATION_A, PRISON_A, HOUSING_A, COORD_A))
    )

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
    await w.pump(lambda: all(len(ras(w, a, f".{FROM}.")) == 2 for a in (HOUSING_A, PROBATION_A)))

    await w.desk(COORD_B).accept(tid, user="coord.wm.3", reason="address approved")
    await w.pump(lambda: state_everywhere(w, tid, TransferState.ACCEPTED))
    await w.desk(COORD_B).complete(
        tid,
        user="coord.wm.3",
        address_notified_on=today,
        case_team=(POLICE_B, PROBATION_B, HOUSING_B),
    )
    lead = w.desk(PROBATION_A)
    for _ in range(200):
        if lead.reshared:
            break
        await w.gw(PROBATION_A).poll_once(timeout_ms=50)
    assert len(lead.reshared) == 2  # the package: what the lead held at completion
    # In flight at completion: Staffordshire police have not read the completion yet, so
    # for them their area still owns the case; the item reaches the lead after it has
    # applied the completion and sent the package, and goes in its catch-up re-share.
    await w.gw(POLICE_A).publish(risk_assessment(FROM, "In flight."), purpose="review")

    # Handover: the package, then the late item by the lead's catch-up, each at the
    # receiving agency's view under West Mercia's agreement.
    receivers = (POLICE_B, PROBATION_B, PRISON_B, COORD_B, HOUSING_B)
    await w.pump(
        lambda: (
            all(len(handed_over(w, a)) == 3 for a in receivers)
            and state_everywhere(w, tid, TransferState.COMPLETED)
        )
    )
    assert len(lead.reshared) == 3
    for agency in (POLICE_B, PROBATION_B, PRISON_B):
        handover = [h for h in w.of(agency, Handling.DELIVERED, ".transfers") if h.sender]
        assert [h.view for h in handover if h.message_type == "risk-assessment"] == [
            ViewKind.FULL
        ] * 3
    housing_b = [
        h
        for h in w.of(HOUSING_B, Handling.DELIVERED, ".transfers")
        if h.message_type == "risk-assessment"
    ]
    assert [h.view for h in housing_b] == [ViewKind.REDACTED] * 3
    assert all(h.sender == PROBATION_A for h in housing_b)
    # The receiving housing authority knows of the completion from a summary notice.
    assert w.desk(HOUSING_B).registry.owner(subject_ref) == TO
    assert w.desk(HOUSING_A).registry.get(tid) is None  # the old DtC agency is told nothing
    [item] = [i for i in w.gw(HOUSING_B).ctx.store.inbox() if i.view == "redacted"][:1]
    assert item.subject_ref == subject_ref
    # The receiving agencies can open what was handed over, at their own view.
    opened = await w.gw(HOUSING_B).consult(
        item.message_id, user="wh.2", justification="tenancy allocation for a new arrival"
    )
    assert opened.body.area == FROM
    assert "victims" not in opened.body.model_dump()
    [full_item] = w.gw(PROBATION_B).ctx.store.inbox()[:1]
    full = await w.gw(PROBATION_B).consult(
        full_item.message_id, user="po.wm.4", justification="taking over supervision"
    )
    assert full.view is ViewKind.FULL
    assert full.body.model_dump()["victims"][0]["name"] == "Jane Witness"

    # After: routing follows the case.
    with pytest.raises(TransferRefused) as moved:
        await w.gw(POLICE_A).publish(risk_assessment(FROM), purpose="risk management")
    assert moved.value.code == "transfer.case-moved"
    await w.gw(POLICE_B).publish(risk_assessment(TO, "First West Mercia review."), purpose="rm")
    await w.pump(
        lambda: all(
            len(ras(w, a, f".{TO}.")) == 1 for a in (PROBATION_B, PRISON_B, HOUSING_B, COORD_B)
        )
    )
    await w.pump_quiet()
    assert len(ras(w, HOUSING_A, f".{FROM}.")) == 3
    assert not w.of(HOUSING_A, Handling.DELIVERED, f".{TO}.")

    # The old area cannot move the case again; the new owner can, history and all.
    with pytest.raises(TransferRefused) as not_owner:
        await w.desk(PROBATION_A).request(
            pnc_id=PNC, to_area=TO, move_date=today, reason="again", user="po.17"
        )
    assert not_owner.value.code == "transfer.not-owner"
    back = await w.desk(PROBATION_B).request(
        pnc_id=PNC, to_area=FROM, move_date=today, reason="returning home", user="po.wm.4"
    )
    await w.pump(lambda: state_everywhere(w, back.transfer_id, TransferState.REQUESTED))
    await w.desk(COORD_A).accept(back.transfer_id, user="c.st.1", reason="known to us")
    await w.pump(lambda: state_everywhere(w, back.transfer_id, TransferState.ACCEPTED))
    await w.desk(COORD_A).complete(back.transfer_id, user="c.st.1", case_team=team_a)

    # Staffordshire housing gets the whole history back: the three items first handed over
    # (re-verified as handover items by West Mercia probation) and West Mercia's own.
    def returned() -> list[Handled]:
        got = w.of(HOUSING_A, Handling.DELIVERED, ".transfers")
        return [h for h in got if h.message_type == "risk-assessment"]

    await w.pump(lambda: len(returned()) == 4)
    assert {(h.sender, h.view) for h in returned()} == {(PROBATION_B, ViewKind.REDACTED)}
    assert w.desk(POLICE_A).registry.owner(subject_ref) == FROM
    await w.gw(POLICE_A).publish(risk_assessment(FROM, "Back home."), purpose="rm")
    await w.pump(lambda: len(ras(w, HOUSING_A, f".{FROM}.")) == 4)

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
    assert all(e["act"] == "disclosure" for e in reshares)
    by_lead = {
        lead: {e["recipient"] for e in reshares if e["agency"] == lead}
        for lead in (PROBATION_A, PROBATION_B)
    }
    assert by_lead[PROBATION_A] == {POLICE_B, PROBATION_B, PRISON_B, COORD_B, HOUSING_B}
    assert by_lead[PROBATION_B] == {POLICE_A, PROBATION_A, PRISON_A, COORD_A, HOUSING_A}
    refusals = {e["reason_code"] for e in chain if e["act"] == "refusal"}
    assert {"transfer.not-yet-owner", "transfer.case-moved"} <= refusals


async def test_bad_transfer_steps_are_refused_and_audited(tworld: World) -> None:
    w = tworld
    today = datetime.now(UTC).date()
    subject_ref = w.deployment.subject_ref(PNC)
    others = tuple(a for a in CASE_HOLDERS if a not in (COORD_B, POLICE_A))

    # A PNC id with digits of another script is not a PNC id (the subject key would
    # otherwise fail to encode it).
    with pytest.raises(SchemaError) as not_pnc:
        await w.desk(PROBATION_A).request(
            pnc_id="\u0661\u0661/1A", to_area=TO, move_date=today, reason="moving", user="po.1"
        )
    assert not_pnc.value.code == "transfer.invalid"

    # Accepting a transfer never requested: refused where it is sent...
    with pytest.raises(TransferRefused) as unknown:
        await w.desk(COORD_B).accept(str(uuid.uuid4()), user="c.1", reason="accepting")
    assert unknown.value.code == "transfer.unknown"
    # ...and, sent anyway by a faulty adapter, where it is received.
    forged = TransferAccept(
        transfer_id=str(uuid.uuid4()),
        subject_ref=subject_ref,
        from_area=FROM,
        to_area=TO,
        move_date=today.isoformat(),
        reason="accepting",
        lead_agency=PROBATION_A,
        actor_agency=COORD_B,
        actor_user="c.1",
    )
    await refused_everywhere(w, w.seal_step(COORD_B, forged), "transfer.unknown", others)

    # A transfer to an unknown area.
    with pytest.raises(TransferRefused) as nowhere:
        await w.desk(PROBATION_A).request(
            pnc_id=PNC, to_area="atlantis", move_date=today, reason="moving", user="po.1"
        )
    assert nowhere.value.code == "transfer.unknown-area"

    # A real request, then a second one while it is open.
    record = await w.desk(PROBATION_A).request(
        pnc_id=PNC, to_area=TO, move_date=today, reason="moving", user="po.1"
    )
    await w.pump(lambda: all(w.desk(a).registry.get(record.transfer_id) for a in others))
    with pytest.raises(TransferRefused) as twice:
        await w.desk(POLICE_A).request(
            pnc_id=PNC, to_area=TO, move_date=today, reason="again", user="pc.1"
        )
    assert twice.value.code == "transfer.already-open"
    second = TransferRequest(
        transfer_id=str(uuid.uuid4()),
        subject_ref=subject_ref,
        from_area=FROM,
        to_area=TO,
        move_date=today.isoformat(),
        reason="again",
        lead_agency=POLICE_A,
        actor_agency=POLICE_A,
        actor_user="pc.1",
        requested_on=today.isoformat(),
        registered_sex_offender=False,
    )
    await refused_everywhere(
        w,
        w.seal_step(POLICE_A, second),
        "transfer.already-open",
        tuple(a for a in CASE_HOLDERS if a != POLICE_A),
    )

    # An agency of the wrong area accepting: the sending area's co-ordinator.
    with pytest.raises(TransferRefused) as wrong:
        await w.desk(COORD_A).accept(record.transfer_id, user="c.9", reason="accepting")
    assert wrong.value.code == "transfer.wrong-actor"
    wrong_accept = TransferAccept(
        transfer_id=record.transfer_id,
        subject_ref=subject_ref,
        from_area=FROM,
        to_area=TO,
        move_date=today.isoformat(),
        reason="accepting",
        lead_agency=PROBATION_A,
        actor_agency=COORD_A,
        actor_user="c.9",
    )
    await refused_everywhere(
        w,
        w.seal_step(COORD_A, wrong_accept),
        "transfer.wrong-actor",
        tuple(a for a in CASE_HOLDERS if a != COORD_A),
    )

    # A duplicate: the real request delivered again (as its sender does until it has
    # every receipt) is applied once: skipped, and receipted again.
    [original] = [
        r
        for r in await w.read(w.deployment.topics.transfers)
        if r.value
        and strict_json(r.value)["header"]["message_type"] == "transfer-request"
        and strict_json(r.value)["header"]["sender"] == PROBATION_A
    ]
    copies = {a: len(w.of(a, Handling.DUPLICATE, ".transfers")) for a in CASE_HOLDERS}
    await w.post(original.value)
    await w.pump(
        lambda: all(
            len(w.of(a, Handling.DUPLICATE, ".transfers")) > copies[a] for a in CASE_HOLDERS
        )
    )
    # None of it moved the transfer on.
    for agency in CASE_HOLDERS:
        rec = w.desk(agency).registry.get(record.transfer_id)
        assert rec is not None
        assert rec.state is TransferState.REQUESTED

    # Every refusal is dead-lettered and audited, on both sides.
    await w.sync_ledger()
    refusals = w.ledger.store.entries(act="refusal")
    by_code = {(e["reason_code"], e["agency"]) for e in refusals}
    for code in (
        "transfer.unknown",
        "transfer.already-open",
        "transfer.wrong-actor",
    ):
        assert (code, COORD_A if code != "transfer.wrong-actor" else COORD_B) in by_code
    assert ("transfer.unknown-area", PROBATION_A) in by_code
    dead = await w.read(w.deployment.topics.deadletter)
    codes = {dict(r.headers)["mappa-reason-code"].decode() for r in dead}
    assert {
        "transfer.unknown",
        "transfer.already-open",
        "transfer.wrong-actor",
    } <= codes
