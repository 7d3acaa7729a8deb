"""The receiving half of an adapter: every check, then deliver or refuse.

Order of checks for each record (the first failure decides the refusal):

 1. size and shape (``parse_envelope``)            envelope.too-large / malformed / schema.*
 2. suite known and allowed                        envelope.unknown-suite / suite-not-allowed
 3. sender and signing keys in the directory       directory.unknown-agency / unknown-key /
                                                   envelope.sender-key-mismatch / key-revoked
 4. signatures                                     verification.signature-invalid
 5. bound to this topic and area                   envelope.topic-mismatch
 6. fresh                                          envelope.stale / envelope.clock-skew
 7. addressed to us                                (otherwise skipped: not ours to read)
 8. not a replay                                   duplicate: delivered once / replay-conflict
 9. the agreement allows this view for us          policy.*
10. unwrap, commitment, decrypt                    decryption.failed / unknown-recipient-key
11. body matches its view model and the header     policy.breach-view-too-rich / schema.* /
                                                   envelope.subject-mismatch

A refusal is dead-lettered with its reason and audited, and the offset moves on
in the same transaction: nothing is silently dropped, nothing blocks the queue.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from broker.agreements.policy import CASE_TEAM_TYPE
from broker.crypto.envelope import (
    VerifiedEnvelope,
    open_view,
)
from broker.crypto.suites import suite_named
from broker.errors import (
    MappaError,
    PolicyDenied,
    ReplayError,
    SchemaError,
    VerificationError,
)
from broker.gateway.agency import AgencyContext
from broker.gateway.store import InboxItem
from broker.kafka.transport import Record
from schemas.audit import AuditAct, Operation, Outcome
from schemas.common import ViewKind, format_timestamp
from schemas.isa import Access
from schemas.messages import CATALOGUE, MessageBody, view_model
from schemas.messages.base import STANDARD_REDACTION


def case_team_of(body: MessageBody) -> tuple[frozenset[str], str] | None:
    """Members and lead of a case-team body in any view (every view keeps both)."""
    if body.message_type != CASE_TEAM_TYPE:
        return None
    data = body.model_dump(mode="json")
    return frozenset(m["agency_id"] for m in data["members"]), str(data["lead_agency"])


def case_team_roles(body: MessageBody) -> dict[str, str]:
    """Each member of a case-team body and the role it is listed under."""
    return {m["agency_id"]: m["role"] for m in body.model_dump(mode="json")["members"]}


class Handling(enum.StrEnum):
    DELIVERED = "delivered"
    DUPLICATE = "duplicate"
    NOT_ADDRESSED = "not-addressed"
    REFUSED = "refused"


@dataclass(frozen=True)
class Handled:
    handling: Handling
    topic: str
    message_id: str | None = None
    sender: str | None = None
    message_type: str | None = None
    view: ViewKind | None = None
    reason_code: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Opened:
    verified: VerifiedEnvelope
    view: ViewKind
    body: MessageBody


class Receiver:
    def __init__(self, ctx: AgencyContext) -> None:
        self._ctx = ctx

    # -- the checks ---------------------------------------------------------------------------
    def verify(self, value: bytes, *, topic: str, record_time: datetime) -> VerifiedEnvelope:
        """Checks 1-5: shape, suite, directory keys, signatures, topic binding."""
        return self._ctx.verifier.verify(value, topic=topic, record_time=record_time)

    def _check_replay(self, verified: VerifiedEnvelope) -> bool:
        """True if this exact message was delivered before (a redelivery)."""
        seen = self._ctx.store.seen_digest(verified.header.message_id)
        if seen is None:
            return False
        if seen == verified.digest:
            return True
        raise ReplayError(
            f"message id {verified.header.message_id} was delivered before with other content",
            code="envelope.replay-conflict",
        )

    def open_verified(
        self, verified: VerifiedEnvelope, *, today_from: datetime, at_consultation: bool = False
    ) -> Opened:
        """Policy, decryption and body checks for an envelope addressed to us. At a later
        consultation the case-team checks are not run again: they judged the delivery."""
        ctx = self._ctx
        header = verified.header
        entry = next(r for r in verified.recipients if r.agency == ctx.agency_id)
        view_kind = next(v.kind for v in verified.views if v.view_id == entry.view_id)
        team = ctx.store.case_team(header.subject_ref)
        rule = ctx.policy.check_inbound(
            recipient=ctx.entry,
            sender=ctx.directory.agency(header.sender),
            message_type=header.message_type,
            area=header.area,
            view=view_kind,
            today=today_from.date(),
            team=team,
            isa_id=header.isa_id,
            judge_team=not at_consultation,
        )
        opened = open_view(
            verified,
            agency=ctx.agency_id,
            keys=ctx.keys.decryption,
            suite=suite_named(header.suite),
        )
        # A redacted view is read against the field set this agency's own rule names:
        # a field that set removes is a breach by the sender, not a field to keep.
        redaction = rule.redaction_set if rule.access is Access.REDACTED else STANDARD_REDACTION
        body = self._parse_body(verified, opened.kind, opened.plaintext, redaction)
        new_team = case_team_of(body)
        if new_team is not None and not at_consultation:
            ctx.policy.check_case_team(case_team_roles(body), header.area)
            # A joiner is on the new team, a leaver on its own record of the old one.
            ctx.policy.check_team(
                ctx.entry, rule, (team or frozenset()) | new_team[0], sender=header.sender
            )
        return Opened(verified=verified, view=opened.kind, body=body)

    def _parse_body(
        self,
        verified: VerifiedEnvelope,
        kind: ViewKind,
        plaintext: bytes,
        redaction: str = STANDARD_REDACTION,
    ) -> MessageBody:
        header = verified.header
        model = CATALOGUE.get(header.message_type)
        if model is None:
            raise SchemaError(
                f"unknown message type {header.message_type!r}", code="schema.unknown-type"
            )
        try:
            body = view_model(model, kind, redaction).model_validate_json(plaintext)
        except ValidationError as exc:
            extra = [e for e in exc.errors() if e["type"] == "extra_forbidden"]
            if extra and kind is not ViewKind.FULL:
                fields = sorted({str(e["loc"][0]) for e in extra})
                raise PolicyDenied(
                    f"{kind.value} view of {header.message_type} from {header.sender} carries "
                    f"{', '.join(fields)}, which that view must not: breach by the sender",
                    code="policy.breach-view-too-rich",
                ) from None
            first = exc.errors()[0]
            raise SchemaError(
                f"{header.message_type} body invalid at "
                f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}",
                code="schema.invalid-body",
            ) from None
        if (
            body.area != header.area
            or self._ctx.subject_key.reference(body.subject.pnc_id) != header.subject_ref
            or body.schema_version != header.schema_version
        ):
            raise VerificationError(
                "body does not match its header (subject, area or schema version)",
                code="envelope.subject-mismatch",
            )
        return body

    # -- one record ---------------------------------------------------------------------------
    def handle(self, record: Record) -> Handled:
        ctx = self._ctx
        now = ctx.clock()
        record_time = datetime.fromtimestamp(record.timestamp_ms / 1000, tz=now.tzinfo)
        verified: VerifiedEnvelope | None = None
        try:
            verified = self.verify(record.value, topic=record.topic, record_time=record_time)
            ctx.verifier.check_fresh(verified, now)
            if not verified.addressed_to(ctx.agency_id):
                return self._skip(record, Handling.NOT_ADDRESSED, verified)
            if self._check_replay(verified):
                return self._skip(record, Handling.DUPLICATE, verified)
            opened = self.open_verified(verified, today_from=now)
        except MappaError as exc:
            return self._refuse(record, verified, exc, now)
        self._deliver(record, opened, now)
        header = verified.header
        return Handled(
            Handling.DELIVERED,
            record.topic,
            header.message_id,
            header.sender,
            header.message_type,
            opened.view,
        )

    def _skip(self, record: Record, handling: Handling, verified: VerifiedEnvelope) -> Handled:
        """Not ours, or ours already: move past it, record nothing."""
        with self._ctx.store.transaction():
            self._ctx.store.advance(record.topic, record.partition, record.offset)
        h = verified.header
        return Handled(handling, record.topic, h.message_id, h.sender, h.message_type)

    def _deliver(self, record: Record, opened: Opened, now: datetime) -> None:
        ctx = self._ctx
        header = opened.verified.header
        received_at = format_timestamp(now)
        with ctx.store.transaction():
            ctx.store.remember(
                header.message_id,
                opened.verified.digest,
                record.topic,
                header.created_at,
                received_at,
            )
            ctx.store.add_to_inbox(
                InboxItem(
                    message_id=header.message_id,
                    topic=record.topic,
                    sender=header.sender,
                    message_type=header.message_type,
                    subject_ref=header.subject_ref,
                    view=opened.view.value,
                    isa_id=header.isa_id,
                    isa_version=header.isa_version,
                    created_at=header.created_at,
                    received_at=received_at,
                    acknowledged_at=None,
                    envelope=record.value,
                )
            )
            ctx.store.advance(record.topic, record.partition, record.offset)
            new_team = case_team_of(opened.body)
            if new_team is not None:
                ctx.store.record_case_team(
                    header.subject_ref,
                    sorted(new_team[0]),
                    lead_agency=new_team[1],
                    set_at=header.created_at,
                    message_id=header.message_id,
                )
            ctx.audit.emit(
                AuditAct.COLLECTION,
                Operation.DELIVER,
                area=header.area,
                subject_ref=header.subject_ref,
                message_id=header.message_id,
                message_type=header.message_type,
                isa_id=header.isa_id,
                isa_version=header.isa_version,
                purpose=header.purpose,
                lawful_basis=header.lawful_basis,
                recipient=ctx.agency_id,
                view=opened.view,
                reason=f"from {header.sender}",
            )

    def _refuse(
        self, record: Record, verified: VerifiedEnvelope | None, exc: MappaError, now: datetime
    ) -> Handled:
        ctx = self._ctx
        # Only what verified goes into the audit trail as fact; an unverified claim
        # (sender, subject) is never recorded as if it were true.
        about = {}
        if verified is not None:
            h = verified.header
            about = {
                "area": h.area,
                "subject_ref": h.subject_ref,
                "message_id": h.message_id,
                "message_type": h.message_type,
                "isa_id": h.isa_id,
                "isa_version": h.isa_version,
                "purpose": h.purpose,
            }
        where = f"{record.topic}/{record.partition}@{record.offset}"
        reason = f"{exc.reason} [record {where}]"
        with ctx.store.transaction():
            ctx.store.enqueue(
                ctx.topics.deadletter,
                record.value,
                key=record.key,
                headers=[
                    ("mappa-reason-code", exc.code.encode()),
                    ("mappa-reason", exc.reason.encode()[:1000]),
                    ("mappa-refused-by", ctx.agency_id.encode()),
                    ("mappa-refused-at", format_timestamp(now).encode()),
                    (
                        "mappa-origin",
                        json.dumps([record.topic, record.partition, record.offset]).encode(),
                    ),
                ],
            )
            ctx.store.advance(record.topic, record.partition, record.offset)
            ctx.audit.emit(
                AuditAct.REFUSAL,
                Operation.DELIVER,
                Outcome.REFUSED,
                recipient=ctx.agency_id,
                reason_code=exc.code,
                reason=reason[:4000],
                **about,
            )
        return Handled(
            Handling.REFUSED,
            record.topic,
            message_id=about.get("message_id"),  # type: ignore[arg-type]
            sender=verified.header.sender if verified else None,
            message_type=verified.header.message_type if verified else None,
            reason_code=exc.code,
            reason=exc.reason,
        )
