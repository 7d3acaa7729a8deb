"""The agreement enforced on both ends, on the real broker: case teams (need to know),
named redaction sets, expiry, and what a sender may not publish."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.agreements import save_agreement, sign_agreement
from broker.crypto.encoding import jcs, strict_json
from broker.errors import PolicyDenied, VerificationError
from broker.gateway.handled import Handling
from broker.gateway.publish import PublishResult
from broker.kafka.transport import KafkaTransport
from broker.trust.admin import governance_key
from broker.trust.provision import AgencySpec, load_governance_public
from schemas.audit import AuditAct, Operation
from schemas.common import Role, ViewKind, from_data
from schemas.isa import Access, Agreement, PublishRule, ShareRule
from schemas.messages import CaseTeam, derive_view
from tests.brokers import tansu
from tests.support import (
    AREA,
    HOUSING,
    PARTIES,
    PNC,
    POLICE,
    PRISON,
    PROBATION,
    SPECS,
    World,
    build_world,
    release_scheduled,
    risk_assessment,
    seal_as,
)

COORD = "coord.staffordshire"
WITH_COORD = (
    *SPECS,
    AgencySpec(COORD, "Staffordshire MAPPA Co-ordination Unit", Role.COORDINATOR, (AREA,)),
)
PARTIES_WITH_COORD = (*PARTIES, COORD)


def with_rules(agreement: Agreement, *rules: ShareRule, **fields: Any) -> Agreement:
    """The agreement with ``rules`` replacing those for the same type and role."""
    keys = {(r.message_type, r.role) for r in rules}
    kept = tuple(r for r in agreement.rules if (r.message_type, r.role) not in keys)
    return agreement.model_copy(update={"rules": kept + rules, **fields})


# Housing sees a risk assessment only while it is on the case team (DOMAIN: C-R).
NEED_TO_KNOW = ShareRule(
    message_type="risk-assessment",
    role=Role.HOUSING,
    access=Access.REDACTED,
    active_role_required=True,
)


async def make_world(
    tmp_path: Path, transport: KafkaTransport, tailor: Callable[[Agreement], Agreement], **kw: Any
) -> World:
    return await build_world(
        tmp_path,
        tansu(transport.bootstrap),
        specs=WITH_COORD,
        parties=PARTIES_WITH_COORD,
        tailor=tailor,
        **kw,
    )


@pytest.fixture
async def team_world(tmp_path: Path, transport: KafkaTransport) -> AsyncIterator[World]:
    w = await make_world(tmp_path, transport, lambda a: with_rules(a, NEED_TO_KNOW))
    try:
        yield w
    finally:
        await w.close()


def case_team(*members: tuple[str, Role], lead: str = PROBATION) -> CaseTeam:
    return from_data(
        CaseTeam,
        {
            "subject": {"pnc_id": PNC, "name": "Alex Sample", "date_of_birth": "1980-03-14"},
            "area": AREA,
            "category": 1,
            "level": 2,
            "effective_from": "2026-11-23",
            "lead_agency": lead,
            "members": [{"agency_id": a, "role": r.value} for a, r in members],
        },
    )


CORE = ((POLICE, Role.POLICE), (PROBATION, Role.PROBATION), (COORD, Role.COORDINATOR))


async def set_team(
    world: World, *members: tuple[str, Role], hear: tuple[str, ...]
) -> PublishResult:
    """The co-ordinator publishes a case team; wait until ``hear`` have recorded it."""
    msg = case_team(*members)
    result = await world.gw(COORD).publish(msg, purpose="MAPPA case management")
    ref = world.deployment.subject_ref(PNC)
    want = msg.member_ids
    await world.pump(lambda: all(world.gw(a).ctx.store.case_team(ref) == want for a in hear))
    return result


def delivered_types(world: World, agency: str) -> list[tuple[str | None, ViewKind | None]]:
    return [(h.message_type, h.view) for h in world.of(agency, Handling.DELIVERED)]


async def test_joining_and_leaving_the_case_team_takes_effect_for_the_next_message(
    team_world: World,
) -> None:
    w = team_world
    police = w.gw(POLICE)
    # Only the co-ordination unit sets case teams.
    with pytest.raises(PolicyDenied) as err:
        await police.publish(case_team(*CORE), purpose="MAPPA case management")
    assert err.value.code == "policy.publish-not-allowed"
    # The Responsible Authority hears of every team; housing is not on this one, nor told.
    core = await set_team(w, *CORE, hear=(POLICE, PROBATION))
    assert set(dict(core.disclosures)) == {POLICE, PROBATION, PRISON}
    # Not on the team: housing is not wrapped for.
    first = await police.publish(risk_assessment(), purpose="risk management")
    assert HOUSING not in dict(first.disclosures)
    assert dict(first.disclosures)[PROBATION] is ViewKind.FULL

    # Housing joins: it hears of the team and receives the next assessment, redacted.
    await set_team(w, *CORE, (HOUSING, Role.HOUSING), hear=(POLICE, PROBATION, HOUSING))
    joined = await police.publish(risk_assessment(), purpose="risk management")
    assert dict(joined.disclosures)[HOUSING] is ViewKind.REDACTED
    await w.pump(lambda: ("risk-assessment", ViewKind.REDACTED) in delivered_types(w, HOUSING))

    # Housing leaves: it hears that it left (its record updates) and gets nothing more.
    leave = await set_team(w, *CORE, hear=(POLICE, PROBATION, HOUSING))
    assert HOUSING in dict(leave.disclosures)
    left = await police.publish(risk_assessment(), purpose="risk management")
    assert HOUSING not in dict(left.disclosures)
    await w.pump(lambda: len(w.of(PROBATION, Handling.DELIVERED)) >= 3)
    await w.pump_quiet()
    assert delivered_types(w, HOUSING).count(("risk-assessment", ViewKind.REDACTED)) == 1
    assert delivered_types(w, HOUSING).count(("case-team", ViewKind.FULL)) == 2
    assert not w.of(HOUSING, Handling.REFUSED)
    # What housing lawfully received while on the team it may still open (audited).
    opened = await w.gw(HOUSING).consult(
        joined.message_id, user="ho.3", justification="closing the tenancy risk file"
    )
    assert "victims" not in opened.body.model_dump()
    # Education (a non-party) never heard of any team.
    assert (
        w.gw("education.staffordshire").ctx.store.case_team(w.deployment.subject_ref(PNC)) is None
    )


async def test_receiver_refuses_need_to_know_message_when_not_on_its_own_team(
    team_world: World,
) -> None:
    """A sender that wraps for an agency off the case team is caught by that agency."""
    w = team_world
    topic = w.deployment.topics.for_role(AREA, Role.HOUSING)
    doc = seal_as(w, POLICE, (HOUSING,), topic, view_kind=ViewKind.REDACTED)
    await w.transport.send(topic, jcs(doc), key=b"x")
    await w.pump(lambda: bool(w.of(HOUSING, Handling.REFUSED)))
    [refusal] = w.of(HOUSING, Handling.REFUSED)
    assert refusal.reason_code == "policy.breach-not-on-case-team"
    assert POLICE in (refusal.reason or "")
    assert not w.gw(HOUSING).ctx.store.inbox()
    await w.sync_ledger()
    [audited] = w.ledger.store.entries(act="refusal", reason_code="policy.breach-not-on-case-team")
    assert audited["agency"] == HOUSING
    dead = await w.read(w.deployment.topics.deadletter, 1)
    assert [dict(r.headers)["mappa-reason-code"] for r in dead] == [
        b"policy.breach-not-on-case-team"
    ]

    # A case team naming a non-party is refused by the sender, and by a receiver if a
    # sender skips that check.
    bad_team = case_team(*CORE, ("education.staffordshire", Role.EDUCATION))
    with pytest.raises(PolicyDenied) as err:
        await w.gw(COORD).publish(bad_team, purpose="MAPPA case management")
    assert err.value.code == "policy.case-team-invalid"
    police_topic = w.deployment.topics.for_role(AREA, Role.POLICE)
    forced = seal_as(
        w,
        COORD,
        (POLICE,),
        police_topic,
        body=derive_view(bad_team, ViewKind.FULL),
        message_type="case-team",
    )
    await w.transport.send(police_topic, jcs(forced), key=b"x")
    await w.pump(lambda: bool(w.of(POLICE, Handling.REFUSED)))
    assert w.of(POLICE, Handling.REFUSED)[0].reason_code == "policy.case-team-invalid"
    assert w.gw(POLICE).ctx.store.case_team(w.deployment.subject_ref(PNC)) is None

    # A message shared under an agreement this agency does not hold is refused too.
    ra_topic = w.deployment.topics.for_role(AREA, Role.PROBATION)
    other = seal_as(w, POLICE, (PROBATION,), ra_topic, isa_id="some-other-isa.staffordshire")
    await w.transport.send(ra_topic, jcs(other), key=b"x")
    await w.pump(lambda: bool(w.of(PROBATION, Handling.REFUSED)))
    assert w.of(PROBATION, Handling.REFUSED)[0].reason_code == "policy.no-agreement"


# -- named redaction sets --------------------------------------------------------------------


def victim_set_for_probation(a: Agreement) -> Agreement:
    # Probation and prison share the RA topic but differ in what their redacted view keeps.
    return with_rules(
        a,
        ShareRule(
            message_type="risk-assessment",
            role=Role.PROBATION,
            access=Access.REDACTED,
            redaction="victim",
        ),
        ShareRule(message_type="risk-assessment", role=Role.PRISON, access=Access.REDACTED),
    )


async def test_each_recipient_gets_its_named_field_set(
    tmp_path: Path, transport: KafkaTransport
) -> None:
    w = await make_world(tmp_path, transport, victim_set_for_probation)
    try:
        result = await w.gw(POLICE).publish(risk_assessment(), purpose="risk management")
        ra_topic = w.deployment.topics.for_role(AREA, Role.PROBATION)
        on_ra = await w.read(ra_topic, 2)
        assert len(on_ra) == 2  # one envelope per field set on the shared RA topic
        assert {strict_json(r.value)["header"]["message_id"] for r in on_ra} == {result.message_id}
        await w.pump(lambda: all(w.of(a, Handling.DELIVERED) for a in (PROBATION, PRISON)))
        probation = await w.gw(PROBATION).consult(
            result.message_id, user="po.1", justification="case review meeting"
        )
        prison = await w.gw(PRISON).consult(
            result.message_id, user="om.2", justification="release planning board"
        )
        p_body, s_body = probation.body.model_dump(), prison.body.model_dump()
        assert "victims" not in p_body
        assert "victims" not in s_body
        assert p_body["health_notes"] == "Community mental health team."
        assert p_body["intelligence_source"] == "CHIS 4411"
        assert "health_notes" not in s_body
        assert "intelligence_source" not in s_body
        assert not w.of(PROBATION, Handling.REFUSED)
        assert not w.of(PRISON, Handling.REFUSED)
    finally:
        await w.close()


async def test_redacted_view_with_the_wrong_field_set_is_a_breach(team_world: World) -> None:
    """Housing's rule names the standard set; a 'redacted' view that kept health detail
    (the narrower victim set) carries a field housing's set removes."""
    w = team_world
    await set_team(w, *CORE, (HOUSING, Role.HOUSING), hear=(HOUSING,))
    topic = w.deployment.topics.for_role(AREA, Role.HOUSING)
    too_much = derive_view(risk_assessment(), ViewKind.REDACTED, "victim")
    assert "health_notes" in too_much
    doc = seal_as(w, POLICE, (HOUSING,), topic, view_kind=ViewKind.REDACTED, body=too_much)
    await w.transport.send(topic, jcs(doc), key=b"x")
    await w.pump(lambda: bool(w.of(HOUSING, Handling.REFUSED)))
    [refusal] = w.of(HOUSING, Handling.REFUSED)
    assert refusal.reason_code == "policy.breach-view-too-rich"
    assert "health_notes" in (refusal.reason or "")
    assert not [i for i in w.gw(HOUSING).ctx.store.inbox() if i.message_type == "risk-assessment"]
    await w.sync_ledger()
    assert w.ledger.store.entries(act="refusal", reason_code="policy.breach-view-too-rich")


# -- the sending side refuses, audits, and writes nothing else --------------------------------


def housing_may_publish_release(a: Agreement) -> Agreement:
    publishers = tuple(p for p in a.publishers if p.message_type != "release-scheduled")
    return with_rules(
        a,
        publishers=(
            *publishers,
            PublishRule(
                message_type="release-scheduled", roles=(Role.PRISON, Role.PROBATION, Role.HOUSING)
            ),
        ),
    )


async def test_sender_refusals_are_audited_and_leave_nothing_half_written(
    tmp_path: Path, transport: KafkaTransport
) -> None:
    # Police also work in Derbyshire, where this deployment has no agreement.
    specs = tuple(
        AgencySpec(s.agency_id, s.name, s.role, (AREA, "derbyshire"))
        if s.agency_id == POLICE
        else s
        for s in WITH_COORD
    )
    w = await build_world(
        tmp_path,
        tansu(transport.bootstrap),
        specs=specs,
        parties=PARTIES_WITH_COORD,
        tailor=housing_may_publish_release,
    )
    try:
        elsewhere = release_scheduled().model_copy(update={"area": "derbyshire"})
        cases = [
            # A type its agency may not publish.
            (POLICE, release_scheduled(), "policy.publish-not-allowed"),
            # A DtC agency about a subject whose case team it is not on.
            (HOUSING, release_scheduled(), "policy.outside-case-load"),
            # An area the agency does not cover.
            (HOUSING, elsewhere, "policy.area-not-covered"),
            # An area the agency covers but no agreement does.
            (POLICE, risk_assessment(area="derbyshire"), "policy.no-agreement"),
        ]
        for sender, message, code in cases:
            store = w.gw(sender).ctx.store
            before = store.outbox_counts()
            with pytest.raises(PolicyDenied) as err:
                await w.gw(sender).publish(message, purpose="risk management")
            assert err.value.code == code
            after = store.outbox_counts()
            # Exactly one new outbox row: the refusal's audit event, no envelope.
            assert {t: n - before.get(t, 0) for t, n in after.items() if n != before.get(t, 0)} == {
                w.deployment.topics.audit: 1
            }
            assert w.gw(sender).ctx.audit.emitted == after[w.deployment.topics.audit]
        # An event emitted in a unit of work that rolls back was never kept: not counted.
        ctx = w.gw(POLICE).ctx
        kept = ctx.audit.emitted

        def failing_unit() -> None:
            with ctx.store.transaction():
                ctx.audit.emit(AuditAct.CONSULTATION, Operation.CONSULT, user="ppu.officer.1")
                raise RuntimeError("the unit of work fails after the event")

        with pytest.raises(RuntimeError):
            failing_unit()
        assert ctx.audit.emitted == kept
        # On the team, the same housing message goes out.
        await set_team(w, *CORE, (HOUSING, Role.HOUSING), hear=(HOUSING,))
        sent = await w.gw(HOUSING).publish(release_scheduled(), purpose="tenancy planning")
        assert dict(sent.disclosures)[PROBATION] is ViewKind.FULL
        await w.sync_ledger()
        refused = {e["reason_code"] for e in w.ledger.store.entries(act="refusal")}
        assert refused == {c for _, _, c in cases}
    finally:
        await w.close()


# -- expiry stops sharing at once, on both ends -----------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_expired_agreement_stops_sharing_at_once(
    tmp_path: Path, transport: KafkaTransport
) -> None:
    clock = Clock()
    today = clock.now.date()

    def ends_today(a: Agreement) -> Agreement:
        return a.model_copy(
            update={
                "valid_from": (today - timedelta(days=30)).isoformat(),
                "valid_until": today.isoformat(),
                "review_date": today.isoformat(),
            }
        )

    w = await make_world(tmp_path, transport, ends_today, clock=clock)
    try:
        await w.gw(POLICE).publish(risk_assessment(), purpose="risk management")
        # Midnight passes before anyone reads: the receivers refuse what is in flight.
        clock.now += timedelta(days=1)
        await w.pump(lambda: all(w.of(a, Handling.REFUSED) for a in (PROBATION, PRISON)))
        for agency in (PROBATION, PRISON):
            assert w.of(agency, Handling.REFUSED)[0].reason_code == "policy.agreement-expired"
            assert not w.gw(agency).ctx.store.inbox()
        with pytest.raises(PolicyDenied) as err:
            await w.gw(POLICE).publish(risk_assessment(), purpose="risk management")
        assert err.value.code == "policy.agreement-expired"
        assert "stopped" in err.value.reason
        assert date.fromisoformat(w.deployment.agreement.valid_until) < clock.now.date()
    finally:
        await w.close()


def housing_may_publish_assessments(a: Agreement) -> Agreement:
    publishers = tuple(p for p in a.publishers if p.message_type != "risk-assessment")
    extra = PublishRule(message_type="risk-assessment", roles=(Role.POLICE, Role.HOUSING))
    return with_rules(a, publishers=(*publishers, extra))


async def test_receiver_refuses_a_sender_outside_its_case_load(
    tmp_path: Path, transport: KafkaTransport
) -> None:
    """A DtC sender that bypasses its own case-load check is caught by a recipient that
    knows the case team; once the sender is on the team, the same kind of message passes."""
    w = await make_world(tmp_path, transport, housing_may_publish_assessments)
    try:
        await set_team(w, *CORE, hear=(PROBATION,))
        topic = w.deployment.topics.for_role(AREA, Role.PROBATION)
        await w.transport.send(topic, jcs(seal_as(w, HOUSING, (PROBATION,), topic)), key=b"x")
        await w.pump(lambda: bool(w.of(PROBATION, Handling.REFUSED)))
        [refusal] = w.of(PROBATION, Handling.REFUSED)
        assert refusal.reason_code == "policy.breach-outside-case-load"
        assert HOUSING in (refusal.reason or "")

        await set_team(w, *CORE, (HOUSING, Role.HOUSING), hear=(PROBATION,))
        await w.transport.send(topic, jcs(seal_as(w, HOUSING, (PROBATION,), topic)), key=b"x")
        await w.pump(lambda: ("risk-assessment", ViewKind.FULL) in delivered_types(w, PROBATION))
        assert len(w.of(PROBATION, Handling.REFUSED)) == 1
    finally:
        await w.close()


async def test_a_newer_signed_agreement_takes_effect_for_the_next_message(world: World) -> None:
    d = world.deployment
    signer = governance_key(d.keystore)
    assert signer is not None
    anchor = load_governance_public(d.paths)
    v1 = d.agreement
    save_agreement(d.paths, sign_agreement(v1, signer), anchor)
    assert d.refresh_agreement() is False
    # Version 2 withdraws housing's view of risk assessments.
    withdrawn = ShareRule(message_type="risk-assessment", role=Role.HOUSING, access=Access.NONE)
    v2 = with_rules(v1, withdrawn, version=2)
    save_agreement(d.paths, sign_agreement(v2, signer), anchor)
    assert d.refresh_agreement() is True
    result = await world.gw(POLICE).publish(risk_assessment(), purpose="risk management")
    assert HOUSING not in dict(result.disclosures)
    assert world.gw(HOUSING).ctx.policy.agreement.version == 2
    # Putting the old signed file back does not bring the withdrawn rule back.
    (d.paths.agreements / f"{v1.id}.json").write_text(sign_agreement(v1, signer).model_dump_json())
    with pytest.raises(VerificationError) as err:
        d.refresh_agreement()
    assert err.value.code == "isa.rollback"


async def test_a_breach_names_the_types_fields_and_never_a_key_the_sender_made_up(
    team_world: World,
) -> None:
    """A key the type does not have is the sender's input (here a PNC id used as a key):
    the refusal counts it and names only the type's own fields."""
    w = team_world
    await set_team(w, *CORE, (HOUSING, Role.HOUSING), hear=(HOUSING,))
    topic = w.deployment.topics.for_role(AREA, Role.HOUSING)
    too_much = derive_view(risk_assessment(), ViewKind.REDACTED, "victim")
    too_much["2001/0123456A"] = "held"
    doc = seal_as(w, POLICE, (HOUSING,), topic, view_kind=ViewKind.REDACTED, body=too_much)
    await w.transport.send(topic, jcs(doc), key=b"x")
    await w.pump(lambda: bool(w.of(HOUSING, Handling.REFUSED)))
    [refusal] = w.of(HOUSING, Handling.REFUSED)
    assert refusal.reason_code == "policy.breach-view-too-rich"
    assert "health_notes" in (refusal.reason or "")
    assert "1 field(s) the type does not have" in (refusal.reason or "")
    await w.sync_ledger()
    [entry] = w.ledger.store.entries(act="refusal", reason_code="policy.breach-view-too-rich")
    assert "0123456A" not in json.dumps(entry)
