"""The transfer receiver's own refusals, on the real broker.

Each forged record below is sealed and signed by a real agency with the broker's own
``seal_for_transfers`` (as a faulty or compromised adapter could send it) and is wrong
in one respect only: a handover item not sent by the lead of a completed transfer into
the receiver's area, a case team handed over, a view richer than the receiver may
hold, a step whose body disagrees with its header or is no transfer step. Every agency
it reaches refuses it with the check's code, dead-letters it and audits the refusal,
and nothing is applied: no registry change, no inbox item, no case team.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from broker.crypto.encoding import jcs, strict_json
from broker.gateway.handled import Handling
from broker.gateway.sealing import ViewFor
from broker.transfer.envelopes import HANDOVER_PURPOSE, STEP_PURPOSE
from broker.transfer.rules import step_of
from schemas.common import ViewKind
from schemas.messages import MessageBody, derive_view
from schemas.messages.examples import example
from schemas.transfer import TransferRequest, TransferState
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
    PROBATION_A,
    PROBATION_B,
    TO,
    case_team,
    refused_everywhere,
    risk_assessment,
)

# What the receiving co-ordinator names at completion: housing is told, and may hold a
# redacted risk assessment under West Mercia's agreement.
RECEIVING_TEAM = (POLICE_B, PROBATION_B, HOUSING_B)
OTHER_PNC = "2015/0012345Q"

Refusal = tuple[bytes, str, tuple[str, ...]]


# -- forging ---------------------------------------------------------------------------------


def a_request(w: World) -> TransferRequest:
    """A request Staffordshire probation may make: applied wherever it is received."""
    today = datetime.now(UTC).date().isoformat()
    return TransferRequest(
        transfer_id=str(uuid.uuid4()),
        subject_ref=w.deployment.subject_ref(PNC),
        from_area=FROM,
        to_area=TO,
        move_date=today,
        reason="moving to live with family in Worcester",
        lead_agency=PROBATION_A,
        actor_agency=PROBATION_A,
        actor_user="po.17",
        requested_on=today,
        registered_sex_offender=False,
    )


def forge_step(
    w: World,
    message: TransferRequest,
    to: Sequence[str],
    *,
    kind: ViewKind = ViewKind.FULL,
    plaintext: bytes | None = None,
    **header: str,
) -> bytes:
    """``message`` sealed as its actor, as the desk would, but only for ``to`` at ``kind``,
    with ``plaintext`` in place of the step and ``header`` fields in place of its own."""
    fields = {
        "area": message.from_area,
        "message_type": step_of(message).message_type,
        "subject_ref": message.subject_ref,
        "purpose": f"{STEP_PURPOSE}{message.transfer_id}",
        **header,
    }
    body = jcs(message.model_dump(mode="json")) if plaintext is None else plaintext
    return w.seal(message.actor_agency, [ViewFor(kind, body, tuple(to))], **fields)


def seal_item(
    w: World,
    sender: str,
    body: MessageBody,
    to: Sequence[str],
    *,
    purpose: str,
    kind: ViewKind = ViewKind.FULL,
) -> bytes:
    """``body`` at ``kind`` for ``to`` on the transfer topic, as a lead's handover item
    is sealed (header area, type and subject from the body)."""
    return w.seal(
        sender,
        [ViewFor(kind, jcs(derive_view(body, kind)), tuple(to))],
        area=body.area,
        message_type=body.message_type,
        subject_ref=w.deployment.subject_ref(body.subject.pnc_id),
        purpose=purpose,
    )


# -- the workflow the handover depends on ------------------------------------------------------


def at(w: World, transfer_id: str, state: TransferState, agencies: Sequence[str]) -> bool:
    return all(
        (r := w.desk(a).registry.get(transfer_id)) is not None and r.state is state
        for a in agencies
    )


async def accepted_transfer(w: World) -> str:
    """Staffordshire probation asks to move the case to West Mercia, which accepts."""
    record = await w.desk(PROBATION_A).request(
        pnc_id=PNC,
        to_area=TO,
        move_date=datetime.now(UTC).date(),
        reason="moving to live with family in Worcester",
        user="po.17",
    )
    tid = record.transfer_id
    await w.pump(lambda: at(w, tid, TransferState.REQUESTED, CASE_HOLDERS))
    await w.desk(COORD_B).accept(tid, user="coord.wm.3", reason="address approved")
    await w.pump(lambda: at(w, tid, TransferState.ACCEPTED, CASE_HOLDERS))
    return tid


async def complete(w: World, transfer_id: str) -> None:
    """West Mercia's co-ordinator completes it, naming ``RECEIVING_TEAM``."""
    await w.desk(COORD_B).complete(transfer_id, user="coord.wm.3", case_team=RECEIVING_TEAM)
    ref = w.deployment.subject_ref(PNC)
    await w.pump(
        lambda: (
            at(w, transfer_id, TransferState.COMPLETED, (*CASE_HOLDERS, HOUSING_B))
            and all(w.gw(a).ctx.store.case_team(ref) for a in RECEIVING_TEAM)
        )
    )


# -- what every refusal leaves behind --------------------------------------------------------


def message_id_of(value: bytes) -> str:
    return str(strict_json(value)["header"]["message_id"])


async def refuse(w: World, value: bytes, code: str, agencies: tuple[str, ...]) -> Refusal:
    """Send ``value``; wait until each of ``agencies`` refused it with ``code``."""
    await refused_everywhere(w, value, code, agencies)
    return value, code, agencies


async def dead_lettered_and_audited(w: World, refusals: Sequence[Refusal]) -> None:
    """Each message was refused with its code by exactly its agencies and delivered
    nowhere, dead-lettered with that code by each, and audited as a refusal by each
    (and audited as nothing else: no delivery)."""
    dead = await w.read(w.deployment.topics.deadletter)
    await w.sync_ledger()
    for value, code, agencies in refusals:
        message_id = message_id_of(value)
        handled = [
            (agency, h.handling, h.reason_code)
            for agency, hs in w.handled.items()
            for h in hs
            if h.message_id == message_id and h.handling is not Handling.NOT_ADDRESSED
        ]
        assert sorted(handled) == sorted((a, Handling.REFUSED, code) for a in agencies)
        digest = hashlib.sha256(value).hexdigest().encode()
        mine = [dict(r.headers) for r in dead if dict(r.headers)["mappa-value-sha256"] == digest]
        assert sorted(h["mappa-refused-by"].decode() for h in mine) == sorted(agencies)
        assert {h["mappa-reason-code"].decode() for h in mine} == {code}
        audited = w.ledger.store.entries(message_id=message_id)
        assert sorted((e["agency"], e["act"], e["outcome"], e["reason_code"]) for e in audited) == (
            sorted((a, "refusal", "refused", code) for a in agencies)
        )


def inbox_ids(w: World, agency: str) -> set[str]:
    return {i.message_id for i in w.gw(agency).ctx.store.inbox()}


# -- transfer.handover-not-authorised ----------------------------------------------------------


async def test_handover_item_from_anyone_but_the_lead_of_a_completed_transfer_is_refused(
    tworld: World,
) -> None:
    w = tworld
    code = "transfer.handover-not-authorised"
    tid = await accepted_transfer(w)
    handover = f"{HANDOVER_PURPOSE}{tid}"
    ra_b = (POLICE_B, PROBATION_B)
    ra = risk_assessment(FROM)
    refusals = [
        # The lead, before the transfer completed.
        await refuse(w, seal_item(w, PROBATION_A, ra, ra_b, purpose=handover), code, ra_b)
    ]
    await complete(w, tid)
    other = risk_assessment(FROM)
    other = other.model_copy(
        update={"subject": other.subject.model_copy(update={"pnc_id": OTHER_PNC})}
    )
    forged = [
        # A signed party with no part in any transfer pushing case data onto the topic.
        seal_item(w, HOUSING_A, ra, ra_b, purpose="risk management"),
        # The lead, naming a transfer that never happened, or none.
        seal_item(w, PROBATION_A, ra, ra_b, purpose=f"{HANDOVER_PURPOSE}{uuid.uuid4()}"),
        seal_item(w, PROBATION_A, ra, ra_b, purpose="risk management"),
        # Another agency of the sending area, naming the completed transfer.
        seal_item(w, POLICE_A, ra, ra_b, purpose=handover),
        # The lead, handing over another subject under this transfer.
        seal_item(w, PROBATION_A, other, ra_b, purpose=handover),
    ]
    for value in forged:
        refusals.append(await refuse(w, value, code, ra_b))
    # The lead, handing over to agencies of the area the case left.
    to_a = (POLICE_A, COORD_A)
    refusals.append(
        await refuse(w, seal_item(w, PROBATION_A, ra, to_a, purpose=handover), code, to_a)
    )
    # The same item from the lead to the receiving area after completion is delivered.
    control = seal_item(w, PROBATION_A, ra, ra_b, purpose=handover)
    await w.post(control)
    control_id = message_id_of(control)
    await w.pump(
        lambda: all(
            any(h.message_id == control_id for h in w.of(a, Handling.DELIVERED)) for a in ra_b
        )
    )

    await dead_lettered_and_audited(w, refusals)
    for agency in ra_b:
        assert inbox_ids(w, agency) == {control_id}
    for agency in to_a:
        assert not inbox_ids(w, agency)
    for agency in CASE_HOLDERS:
        rec = w.desk(agency).registry.get(tid)
        assert rec is not None
        assert rec.state is TransferState.COMPLETED


async def test_a_case_team_is_never_handed_over(tworld: World) -> None:
    """Even from the lead of the completed transfer: the receiving area's team came with
    the completion, and a handed-over team would replace it with the old area's."""
    w = tworld
    tid = await accepted_transfer(w)
    await complete(w, tid)
    subject_ref = w.deployment.subject_ref(PNC)
    old_team = case_team(FROM, (POLICE_A, PROBATION_A, PRISON_A, HOUSING_A), PROBATION_A)
    value = seal_item(w, PROBATION_A, old_team, RECEIVING_TEAM, purpose=f"{HANDOVER_PURPOSE}{tid}")
    refused = await refuse(w, value, "transfer.handover-not-authorised", RECEIVING_TEAM)

    await dead_lettered_and_audited(w, [refused])
    for agency in RECEIVING_TEAM:
        assert w.gw(agency).ctx.store.case_team(subject_ref) == frozenset(RECEIVING_TEAM)
        assert not inbox_ids(w, agency)


# -- policy.breach-view-too-rich ---------------------------------------------------------------


async def test_handover_richer_than_the_receivers_agreement_allows_is_a_breach(
    tworld: World,
) -> None:
    """West Mercia housing may hold a redacted risk assessment, and no victim views."""
    w = tworld
    code = "policy.breach-view-too-rich"
    tid = await accepted_transfer(w)
    await complete(w, tid)
    handover = f"{HANDOVER_PURPOSE}{tid}"
    ra = risk_assessment(FROM)
    to = (HOUSING_B,)
    refusals = [
        await refuse(w, seal_item(w, PROBATION_A, ra, to, purpose=handover), code, to),
        await refuse(
            w,
            seal_item(
                w,
                PROBATION_A,
                example("victim-views", area=FROM),
                to,
                purpose=handover,
                kind=ViewKind.REDACTED,
            ),
            code,
            to,
        ),
    ]
    # The same assessment at the view housing's rule gives is delivered.
    control = seal_item(w, PROBATION_A, ra, to, purpose=handover, kind=ViewKind.REDACTED)
    await w.post(control)
    await w.pump(lambda: any(h.view is ViewKind.REDACTED for h in w.delivered(HOUSING_B)))

    await dead_lettered_and_audited(w, refusals)
    assert inbox_ids(w, HOUSING_B) == {message_id_of(control)}


async def test_full_transfer_step_to_an_agency_outside_the_case_holders_is_a_breach(
    tworld: World,
) -> None:
    """Only the co-ordinators and RA agencies of both areas may hold a step in full; the
    housing authorities would otherwise apply this request to their registries."""
    w = tworld
    housing = (HOUSING_A, HOUSING_B)
    value = forge_step(w, a_request(w), housing)
    refused = await refuse(w, value, "policy.breach-view-too-rich", housing)

    await dead_lettered_and_audited(w, [refused])
    for agency in housing:
        assert not w.desk(agency).registry.records()


# -- envelope.subject-mismatch and schema.invalid-body -------------------------------------------


async def test_transfer_step_that_disagrees_with_its_header_is_refused(
    tworld: World,
) -> None:
    w = tworld
    code = "envelope.subject-mismatch"
    other_ref = w.deployment.subject_ref(OTHER_PNC)
    forged = [
        forge_step(w, a_request(w), CASE_HOLDERS, subject_ref=other_ref),
        forge_step(w, a_request(w), CASE_HOLDERS, message_type="transfer-accept"),
        forge_step(w, a_request(w), CASE_HOLDERS, area=TO),
    ]
    refusals = [await refuse(w, value, code, CASE_HOLDERS) for value in forged]

    await dead_lettered_and_audited(w, refusals)
    for agency in CASE_HOLDERS:
        assert not w.desk(agency).registry.records()
    # The same request with a header that matches is applied everywhere.
    control = a_request(w)
    await w.post(forge_step(w, control, CASE_HOLDERS))
    await w.pump(lambda: at(w, control.transfer_id, TransferState.REQUESTED, CASE_HOLDERS))


async def test_transfer_step_with_an_invalid_body_is_refused(tworld: World) -> None:
    w = tworld
    code = "schema.invalid-body"
    same_areas = {**a_request(w).model_dump(mode="json"), "to_area": FROM}
    forged = [
        forge_step(w, a_request(w), CASE_HOLDERS, plaintext=b"not a transfer step"),
        forge_step(w, a_request(w), CASE_HOLDERS, plaintext=jcs(same_areas)),
    ]
    refusals = [await refuse(w, value, code, CASE_HOLDERS) for value in forged]

    await dead_lettered_and_audited(w, refusals)
    for agency in CASE_HOLDERS:
        assert not w.desk(agency).registry.records()
