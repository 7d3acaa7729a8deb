"""The sending half of an adapter: authorise, derive views, seal, queue, audit.

One publication becomes one envelope per recipient topic. Each envelope carries
one view per view kind among its recipients, each view's data key wrapped only
for the agencies entitled to that view. A publication is decided and laid out
(``prepare``), sealed, and committed: its envelopes and audit events enter the store's
outbox in one transaction (``commit``; ``broker.gateway.sealing``), which the gateway
shares with concurrent publications (``broker.gateway.group_commit``); the relay sends
them. Between deciding and committing, only sealing happens: what was decided holds
as of ``prepare``, as if it had been published then.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from broker.agreements.policy import CASE_TEAM_TYPE, Disclosure, Team
from broker.crypto.encoding import jcs
from broker.errors import MappaError, SchemaError
from broker.gateway.agency import AgencyContext
from broker.gateway.cases import CaseRegistry
from broker.gateway.routing import follow_case
from broker.gateway.sealing import (
    Sealed,
    Sealing,
    ToSeal,
    ViewFor,
    publication_events,
    queue_signed,
    seal_here,
    to_seal,
)
from broker.gateway.store import InboxItem
from broker.observe.logs import Correlated, current_request_id, fields
from schemas.audit import AuditEvent, Operation
from schemas.common import Classification, Role, ViewKind, format_timestamp
from schemas.envelope import EnvelopeHeader
from schemas.isa import Agreement
from schemas.messages import CATALOGUE, CaseTeam, MessageBody, derive_view, type_name, type_version
from schemas.transfer import TransferRecord

log = logging.getLogger(__name__)
# Who keeps a sealed copy of what it publishes: the co-ordination unit, whose decisions
# (levels, minutes, case teams) are the record the annual statistics are made from.
KEEPS_OWN_RECORD = frozenset({Role.COORDINATOR})


@dataclass(frozen=True)
class PublishResult:
    """What one publication sent: its message id, subject and type, who gets which view,
    and the topics its envelopes were queued for."""

    message_id: str
    subject_ref: str
    message_type: str
    # (recipient agency id, the view wrapped for it), one pair per recipient.
    disclosures: tuple[tuple[str, ViewKind], ...]
    # Each once, in sorted order.
    topics: tuple[str, ...]


@dataclass(frozen=True)
class Grounds:
    """What a publication is decided on that other parts change: the case's transfer in
    progress and the area owning it after its last completed one (``follow_case``), its
    case team (who hears), and the agreement in force."""

    in_progress: TransferRecord | None
    owner: str | None
    team: Team
    agreement: Agreement


@dataclass(frozen=True)
class Prepared:
    """A publication decided and laid out, not yet sealed (``Publisher.prepare``)."""

    result: PublishResult
    # The message as published (followed to the area that owns its case).
    message: MessageBody
    envelopes: tuple[ToSeal, ...]
    # The audit events' common fields (area, subject, type, agreement, purpose, user).
    audit: dict[str, Any]
    # Its audit events, to be signed with the envelopes (``publication_events``).
    events: tuple[AuditEvent, ...]
    # When it was published (the envelopes' created_at).
    created_at: str
    # What it was decided on: the commit checks it still holds.
    grounds: Grounds
    # The co-ordination unit's own copy (docs/statistics.md §1): sealed to itself with
    # the publication, kept in its store, never sent.
    kept: ToSeal | None = None

    @property
    def sealable(self) -> tuple[ToSeal, ...]:
        """What sealing the publication seals: its envelopes, then any kept copy."""
        return self.envelopes if self.kept is None else (*self.envelopes, self.kept)

    def sent(self, sealing: Sealing) -> list[Sealed]:
        """The sealed envelopes that go to Kafka (not the kept copy)."""
        return sealing.envelopes[: len(self.envelopes)]


class GroundsChanged(MappaError):
    """Between a publication's decision and its commit, what it was decided on changed
    (a transfer step, a case team, the agreement): it must be decided again. The gateway
    does, a few times; a caller meets it only if the case keeps changing that fast."""

    code = "publish.changed-meanwhile"
    retriable = True


class Publisher:
    """The sending half of one agency's gateway (module docstring)."""

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
        on_queued: Callable[[PublishResult], None] | None = None,
    ) -> PublishResult:
        """Publish ``message`` in this process and in a transaction of its own (or the
        caller's): ``prepare``, seal, ``commit``; returns what was sent. The gateway's
        ``publish`` does the same with sealing in its worker pool and the commit shared
        with concurrent publications. Raises as ``prepare`` and ``commit`` do."""
        prepared = self.prepare(
            message,
            purpose=purpose,
            user=user,
            classification=classification,
            supersedes=supersedes,
        )
        sealing = seal_here(self._ctx, prepared.sealable, prepared.events)
        with self._ctx.store.transaction():
            result = self.commit(prepared, sealing, on_queued=on_queued)
        self.published(prepared, prepared.sent(sealing))
        return result

    def prepare(
        self,
        message: MessageBody,
        *,
        purpose: str,
        user: str | None = None,
        classification: Classification = Classification.OFFICIAL_SENSITIVE,
        supersedes: str | None = None,
    ) -> Prepared:
        """Everything a publication decides before sealing: follow the case to its owning
        area, authorise it under the agreement, and lay out one envelope per recipient
        topic (or redaction set), each recipient's encryption key resolved.

        Raises ``SchemaError`` (``schema.invalid``) if ``message`` is not of a registered
        message type. Raises, after recording a refusal (in its own transaction, or the
        caller's): ``TransferRefused`` (``transfer.not-yet-owner``,
        ``transfer.case-moved``), ``PolicyDenied`` (``policy.*``: agreement, area,
        publisher role, case load, case team), ``KeyUnavailable`` (no current signing key)
        and ``VerificationError`` (``envelope.unknown-suite``/``suite-not-allowed``: the
        configured suite). After those checks and with no refusal record, it raises
        ``VerificationError`` (``directory.no-encryption-key``: a recipient has no valid
        encryption key)."""
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
        grounds = self.grounds(subject_ref)
        try:
            message = follow_case(ctx, message, grounds.in_progress, grounds.owner)
            # A case that has moved is published, and so audited, in its new area.
            common["area"] = message.area
            ctx.policy.authorise_publish(ctx.entry, message_type, message.area, now.date())
            party = ctx.policy.party(ctx.agency_id)
            team = grounds.team
            ctx.policy.check_case_load(ctx.entry, message_type, team)
            if isinstance(message, CaseTeam):
                roles = {m.agency_id: m.role.value for m in message.members}
                ctx.policy.check_case_team(roles, message.area)
            disclosures = ctx.policy.recipients(
                ctx.entry, message_type, message.area, audience(message, team)
            )
            # Checked here, so that a missing or revoked signing key is an audited refusal.
            ctx.keys.signers_for(ctx.suite.signature_keys)
        except MappaError as exc:
            ctx.audit.refusal(Operation.PUBLISH, exc, **common)
            raise
        agreement = ctx.policy.agreement
        lawful_basis = f"{party.lawful_basis.value}: {party.basis_detail}"[:200]
        by_topic: dict[str, list[Disclosure]] = defaultdict(list)
        for d in disclosures:
            by_topic[ctx.topics.for_role(message.area, d.recipient.role)].append(d)

        # Each view's canonical bytes, derived once however many topics carry that view.
        plaintexts: dict[tuple[ViewKind, str], bytes] = {}

        def plaintext(kind: ViewKind, redaction: str) -> bytes:
            if (kind, redaction) not in plaintexts:
                plaintexts[(kind, redaction)] = jcs(derive_view(message, kind, redaction))
            return plaintexts[(kind, redaction)]

        def envelope(topic: str, views: Sequence[ViewFor]) -> ToSeal:
            return to_seal(
                ctx,
                now=now,
                topic=topic,
                area=message.area,
                message_type=message_type,
                schema_version=type_version(model),
                subject_ref=subject_ref,
                isa=(agreement.id, agreement.version),
                purpose=purpose,
                lawful_basis=lawful_basis,
                views=views,
                classification=classification,
                supersedes=supersedes,
                message_id=message_id,
            )

        envelopes: list[ToSeal] = []
        # One envelope per topic, or one per named redaction set where recipients on a topic
        # differ in it (an envelope holds one view of each kind).
        for topic, whole in sorted(by_topic.items()):
            for group in bundles(whole):
                views = [
                    ViewFor(
                        kind,
                        plaintext(kind, of_kind[0].redaction),
                        tuple(d.recipient.agency_id for d in of_kind),
                    )
                    for kind in sorted({d.view for d in group}, key=lambda k: -k.richness)
                    for of_kind in [[d for d in group if d.view is kind]]
                ]
                envelopes.append(envelope(topic, views))
        result = PublishResult(
            message_id=message_id,
            subject_ref=subject_ref,
            message_type=message_type,
            disclosures=tuple((d.recipient.agency_id, d.view) for d in disclosures),
            topics=tuple(dict.fromkeys(e.topic for e in envelopes)),
        )
        audit = {k: v for k, v in common.items() if k != "message_id"} | {
            "lawful_basis": lawful_basis,
            "isa_id": agreement.id,
            "isa_version": agreement.version,
        }
        events = publication_events(ctx, envelopes, operation=Operation.PUBLISH, **audit)
        kept = None
        rule = ctx.policy.rule_for(ctx.entry, message_type)
        if ctx.entry.role in KEEPS_OWN_RECORD and rule is not None and rule.access.view is not None:
            view = rule.access.view
            kept = envelope(
                ctx.topics.for_role(message.area, ctx.entry.role),
                [ViewFor(view, plaintext(view, rule.redaction_set), (ctx.agency_id,))],
            )
        return Prepared(
            result,
            message,
            tuple(envelopes),
            audit,
            tuple(events),
            format_timestamp(now),
            grounds,
            kept,
        )

    def grounds(self, subject_ref: str) -> Grounds:
        """What deciding a publication about ``subject_ref`` reads that another part can
        change meanwhile."""
        return Grounds(
            self._cases.open_for(subject_ref),
            self._cases.owner(subject_ref),
            self._ctx.store.case_team(subject_ref),
            self._ctx.policy.agreement,
        )

    def commit(
        self,
        prepared: Prepared,
        sealing: Sealing,
        *,
        on_queued: Callable[[PublishResult], None] | None = None,
    ) -> PublishResult:
        """Queue a prepared publication, sealed (its envelopes and signed audit events),
        inside the caller's transaction (or savepoint); returns what was sent.
        ``on_queued``, if given, is called with that result here: what it writes
        commits with the envelopes, and whatever it raises rolls them back and
        propagates. Raises ``GroundsChanged`` (queuing nothing) if what the publication
        was decided on has changed since, and ``RuntimeError`` outside a transaction."""
        ctx = self._ctx
        ctx.store.require_transaction()
        result = prepared.result
        if self.grounds(result.subject_ref) != prepared.grounds:
            raise GroundsChanged(result.message_id)
        queue_signed(
            ctx,
            prepared.sent(sealing),
            sealing.events,
            key=result.subject_ref.encode(),
            about=prepared.audit,
        )
        if prepared.kept is not None:
            self._keep(prepared.kept.header, sealing.envelopes[-1], at=prepared.created_at)
        message = prepared.message
        if isinstance(message, CaseTeam):
            # The co-ordinator's own record moves with what it sent, atomically.
            ctx.store.record_case_team(
                result.subject_ref,
                sorted(message.member_ids),
                lead_agency=message.lead_agency,
                set_at=prepared.created_at,
                message_id=result.message_id,
            )
        if on_queued is not None:
            on_queued(result)
        return result

    def _keep(self, header: EnvelopeHeader, own: Sealed, *, at: str) -> None:
        """Keep the unit's own copy of a publication in its store, taken ``at``."""
        ctx = self._ctx
        ctx.store.keep_own(
            InboxItem.taken(
                header,
                topic=own.topic,
                view=own.recipients[0][1].value,
                envelope=own.value,
                received_at=at,
                acknowledged_by=ctx.agency_id,
            )
        )

    def published(self, prepared: Prepared, envelopes: Sequence[Sealed]) -> None:
        """Once committed: remember the request behind the envelopes, for the relay's and
        the receipts' log lines, and log the publication."""
        ctx = self._ctx
        message_id = prepared.result.message_id
        published = Correlated(ctx.agency_id, message_id, current_request_id())
        ctx.correlation.published(published, (e.value for e in envelopes))
        log.info(
            "publish.accepted",
            extra=fields(agency=ctx.agency_id, message_id=message_id)
            | {"envelopes": len(envelopes)},
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
