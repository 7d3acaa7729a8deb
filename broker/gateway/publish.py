"""The sending half of an adapter: authorise, derive views, seal, queue, audit.

One publication becomes one envelope per recipient topic. Each envelope carries
one view per view kind among its recipients, each view's data key wrapped only
for the agencies entitled to that view. Envelopes and audit events enter the
store's outbox in one transaction; the relay sends them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from broker.agreements.policy import CASE_TEAM_TYPE, Disclosure, Team
from broker.crypto.encoding import jcs
from broker.crypto.envelope import PAYLOAD_TYPE, Recipient, ViewToSeal, seal
from broker.errors import MappaError, SchemaError
from broker.gateway.agency import AgencyContext
from broker.gateway.cases import CaseRegistry
from broker.gateway.routing import follow_case
from schemas.audit import AuditAct, Operation, Outcome
from schemas.common import Classification, ViewKind, format_timestamp
from schemas.envelope import EnvelopeHeader
from schemas.messages import CATALOGUE, CaseTeam, MessageBody, derive_view, type_name, type_version

CONTENT_TYPE_HEADER = ("content-type", PAYLOAD_TYPE.encode())


@dataclass(frozen=True)
class PublishResult:
    message_id: str
    subject_ref: str
    message_type: str
    disclosures: tuple[tuple[str, ViewKind], ...]
    topics: tuple[str, ...]


class Publisher:
    def __init__(self, ctx: AgencyContext) -> None:
        self._ctx = ctx
        # Built once: every publish asks it where the case is.
        self._cases = CaseRegistry(ctx.store)

    def publish(
        self,
        message: MessageBody,
        *,
        purpose: str,
        user: str | None = None,
        classification: Classification = Classification.OFFICIAL_SENSITIVE,
        supersedes: str | None = None,
    ) -> PublishResult:
        ctx = self._ctx
        model = type(message)
        message_type = type_name(model)
        if CATALOGUE.get(message_type) is not model:
            raise SchemaError(f"{model.__name__} is not a registered message type")
        now = ctx.clock()
        subject_ref = ctx.subject_key.reference(message.subject.pnc_id)
        message_id = str(uuid.uuid4())
        common: dict[str, Any] = {
            "user": user,
            "area": message.area,
            "subject_ref": subject_ref,
            "message_id": message_id,
            "message_type": message_type,
            "purpose": purpose,
        }
        try:
            message = follow_case(ctx, self._cases, message, subject_ref)
            # A case that has moved is published, and so audited, in its new area.
            common["area"] = message.area
            ctx.policy.authorise_publish(ctx.entry, message_type, message.area, now.date())
            party = ctx.policy.party(ctx.agency_id)
            team = ctx.store.case_team(subject_ref)
            ctx.policy.check_case_load(ctx.entry, message_type, team)
            if isinstance(message, CaseTeam):
                roles = {m.agency_id: m.role.value for m in message.members}
                ctx.policy.check_case_team(roles, message.area)
            disclosures = ctx.policy.recipients(
                ctx.entry, message_type, message.area, audience(message, team)
            )
            suite = ctx.suite
            signers = ctx.keys.signers_for(suite.signature_keys)
        except MappaError as exc:
            with ctx.store.transaction():
                ctx.audit.emit(
                    AuditAct.REFUSAL,
                    Operation.PUBLISH,
                    Outcome.REFUSED,
                    reason_code=exc.code,
                    reason=exc.reason,
                    **common,
                )
            raise
        agreement = ctx.policy.agreement
        lawful_basis = f"{party.lawful_basis.value}: {party.basis_detail}"[:200]
        by_topic: dict[str, list[Disclosure]] = defaultdict(list)
        for d in disclosures:
            by_topic[ctx.topics.for_role(message.area, d.recipient.role)].append(d)

        envelopes: list[tuple[str, bytes]] = []
        # Each view's canonical bytes, derived once however many topics carry that view.
        plaintexts: dict[tuple[ViewKind, str], bytes] = {}
        # One envelope per topic, or one per named redaction set where recipients on a topic
        # differ in it (an envelope holds one view of each kind).
        sealed_groups = [(t, g) for t, whole in sorted(by_topic.items()) for g in bundles(whole)]
        for topic, group in sealed_groups:
            header = EnvelopeHeader(
                envelope_version=1,
                suite=suite.name,
                message_id=message_id,
                created_at=format_timestamp(now),
                sender=ctx.agency_id,
                sender_keys=tuple(k.key_id for k in signers),
                area=message.area,
                topic=topic,
                message_type=message_type,
                schema_version=type_version(model),
                subject_ref=subject_ref,
                isa_id=agreement.id,
                isa_version=agreement.version,
                purpose=purpose,
                lawful_basis=lawful_basis,
                classification=classification,
                supersedes=supersedes,
            )
            views = []
            for kind in sorted({d.view for d in group}, key=lambda k: -k.richness):
                of_kind = [d for d in group if d.view is kind]
                recipients = tuple(
                    Recipient(
                        d.recipient.agency_id,
                        ctx.directory.encryption_key(d.recipient.agency_id, suite=suite, at=now),
                    )
                    for d in of_kind
                )
                key = (kind, of_kind[0].redaction)
                if key not in plaintexts:
                    plaintexts[key] = jcs(derive_view(message, kind, key[1]))
                views.append(ViewToSeal(kind, plaintexts[key], recipients))
            envelopes.append(
                (topic, seal(header=header, views=views, signers=signers, suite=suite))
            )

        basis: dict[str, Any] = {"isa_id": agreement.id, "isa_version": agreement.version}
        with ctx.store.transaction():
            for topic, value in envelopes:
                ctx.store.enqueue(
                    topic, value, key=subject_ref.encode(), headers=[CONTENT_TYPE_HEADER]
                )
            if isinstance(message, CaseTeam):
                # The co-ordinator's own record moves with what it sent, atomically.
                ctx.store.record_case_team(
                    subject_ref,
                    sorted(message.member_ids),
                    lead_agency=message.lead_agency,
                    set_at=format_timestamp(now),
                    message_id=message_id,
                )
            ctx.audit.emit(
                AuditAct.COLLECTION,
                Operation.PUBLISH,
                lawful_basis=lawful_basis,
                **basis,
                **common,
            )
            for d in disclosures:
                ctx.audit.emit(
                    AuditAct.DISCLOSURE,
                    Operation.PUBLISH,
                    recipient=d.recipient.agency_id,
                    view=d.view,
                    lawful_basis=lawful_basis,
                    **basis,
                    **common,
                )
        return PublishResult(
            message_id=message_id,
            subject_ref=subject_ref,
            message_type=message_type,
            disclosures=tuple((d.recipient.agency_id, d.view) for d in disclosures),
            topics=tuple(dict.fromkeys(t for t, _ in envelopes)),
        )


def audience(message: MessageBody, team: Team) -> Team:
    """Whose case-team membership counts for ``message``: the team on record, and for a
    new case team also its members, so that joiners and leavers both hear of it."""
    if message.message_type == CASE_TEAM_TYPE and isinstance(message, CaseTeam):
        return (team or frozenset()) | message.member_ids
    return team


def bundles(group: list[Disclosure]) -> list[list[Disclosure]]:
    """Split one topic's recipients so each envelope holds one view per kind: recipients
    of redacted views under different named field sets need envelopes of their own."""
    redacted_sets = sorted({d.redaction for d in group if d.view is ViewKind.REDACTED})
    if len(redacted_sets) <= 1:
        return [group]
    first, *rest = redacted_sets
    out = [[d for d in group if d.view is not ViewKind.REDACTED or d.redaction == first]]
    out += [[d for d in group if d.view is ViewKind.REDACTED and d.redaction == r] for r in rest]
    return out
