"""The receiving half of an adapter: every check, then deliver or refuse.

Order of checks for each record (the first failure decides the refusal):

 1. size, shape and publication proof              envelope.too-large / malformed / schema.*
    (``parse_envelope``)
 2. suite known and allowed                        envelope.unknown-suite / suite-not-allowed
 3. sender and signing keys in the directory       directory.expired / unknown-agency /
                                                   suite-not-allowed / unknown-key /
                                                   envelope.sender-key-mismatch / key-revoked
    claimed time against the broker's append time  envelope.clock-skew / stale / backdated
 4. signatures: over the envelope, or over the     verification.signature-invalid
    root its inclusion path leads to (docs/envelope.md §3.6)
 5. bound to this topic and area                   envelope.topic-mismatch
 6. fresh                                          envelope.stale / envelope.clock-skew
 7. addressed to us                                (otherwise skipped: not ours to read)
    refused for good before, this very envelope    skipped, its refusal receipted again
 8. not a replay                                   duplicate: skipped, its receipt sent
                                                   again / envelope.replay-conflict
 9. the agreement allows this view for us          policy.* (agreement-version: a newer
                                                   one not here yet; agreement-superseded)
10. unwrap, commitment, decrypt                    decryption.failed / unknown-recipient-key
11. body matches its view model and the header     policy.breach-view-too-rich / schema.* /
                                                   envelope.subject-mismatch

One receiving path serves every topic a gateway reads. Checks 1-8, delivery and refusal
are the ``Receiver``'s public steps (``admit``, ``is_redelivery``, ``deliver``,
``refuse``), written once here. What differs between topics is plugged in as
``TopicRules``: which topics an envelope may be bound to (check 5), what an exact
redelivery means, and checks 9-11 with what is recorded. The area topics' rules are
``AreaRules`` below: an exact redelivery is skipped, and a message is opened against
the agreement and delivered to the inbox. The transfer topic's rules are in
``broker.transfer.receiver``.

A refusal is dead-lettered with its reason and audited, and the offset moves on
in the same transaction: nothing is silently dropped, nothing blocks the queue.

``Receiver.handle`` is the one boundary of every record a gateway reads: whatever a
record makes any step raise, not only ``MappaError``, undoes what that record wrote
(a savepoint) and refuses it; an exception nobody foresaw is refused as
``record.unprocessable``, its reason naming the exception's type and never a value of
the input, and the record is kept for a retry (the cause, a fault of ours, can be
fixed). Only a database that cannot be used just now (``INFRASTRUCTURE_FAILURES``) is
raised, so the batch is rolled back and read again. A record whose Kafka timestamp is
no time at all (anyone who writes to a topic sets it) is refused before check 1
(``record.timestamp-invalid``).

Every envelope addressed to us whose sender verified gets a signed receipt on
``<ns>.receipts`` in the same transaction as its delivery or refusal
(``broker.gateway.receipts``): the sender keeps it, and sends it again, until it has
one. A re-sent copy gets the same receipt again. A refusal whose cause can pass
(``can_pass``: a clock out of step, a directory or agreement version not yet here) is
remembered as such: a re-sent copy is judged afresh, and the record is kept for
``mappa deadletter retry``. The receipts topic itself is read here too, and its records
go to ``ReceiptReader``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import ValidationError

from broker.agreements.policy import CASE_TEAM_TYPE
from broker.crypto.envelope import OpenedView, VerifiedEnvelope, open_view
from broker.crypto.suites import suite_named
from broker.errors import (
    INFRASTRUCTURE_FAILURES,
    MappaError,
    PolicyDenied,
    ReplayError,
    SchemaError,
    Unprocessable,
    VerificationError,
    invalid,
)
from broker.gateway.agency import AgencyContext
from broker.gateway.audit import MAX_REASON_CHARS, header_fields
from broker.gateway.deadletters import dead_letter
from broker.gateway.handled import Handled, Handling
from broker.gateway.preparing import Prepared
from broker.gateway.receipts import ReceiptReader, delivery_receipt_record
from broker.gateway.store import InboxItem
from broker.gateway.verification import EnvelopeVerifier
from broker.kafka.transport import Record
from schemas.audit import AuditAct, Operation
from schemas.common import ViewKind, format_timestamp, parse_timestamp
from schemas.isa import Access
from schemas.messages import CATALOGUE, MessageBody, view_model
from schemas.messages.base import STANDARD_REDACTION
from schemas.receipt import DeliveryReceipt, ReceiptOutcome

log = logging.getLogger(__name__)
# Refusals whose cause can pass without the sender doing anything: the receiver's clock
# out of step, a directory or agreement version the sender already has and we do not,
# a fault of ours on a record that a fixed version processes.
RETRIABLE_REFUSALS = frozenset(
    {
        Unprocessable.code,
        "envelope.clock-skew",
        # Our directory ran out before a new version reached us.
        "directory.expired",
        "directory.unknown-agency",
        "directory.unknown-key",
        "envelope.unknown-recipient-key",
        "policy.no-agreement",
        "policy.agreement-version",
        "policy.not-a-party",
    }
)


def can_pass(exc: MappaError) -> bool:
    """Whether the refusal ``exc`` may not hold later, once its cause is fixed."""
    return exc.retriable or exc.code in RETRIABLE_REFUSALS


def case_team_of(body: MessageBody) -> tuple[frozenset[str], str] | None:
    """Members and lead of a case-team body in any view (every view keeps both); None
    for any other message type."""
    if body.message_type != CASE_TEAM_TYPE:
        return None
    data = body.model_dump(mode="json")
    return frozenset(m["agency_id"] for m in data["members"]), str(data["lead_agency"])


def case_team_roles(body: MessageBody) -> dict[str, str]:
    """Each member of a case-team body and the role it is listed under."""
    return {m["agency_id"]: m["role"] for m in body.model_dump(mode="json")["members"]}


@dataclass(frozen=True)
class Opened:
    """A message opened for this agency: its verified envelope, the view it holds, and
    the body checked against that view and the header."""

    verified: VerifiedEnvelope
    view: ViewKind
    body: MessageBody


class TopicRules(Protocol):
    """What one topic's records must satisfy beyond checks 1-8, and where they go."""

    @property
    def verifier(self) -> EnvelopeVerifier:
        """Checks 1-6, with this topic's binding rule (check 5)."""
        ...

    def redelivered(self, verified: VerifiedEnvelope) -> None:
        """An exact redelivery of a message already taken: return to skip it silently,
        or raise ``MappaError`` to refuse it."""
        ...

    def accept(self, record: Record, verified: VerifiedEnvelope, now: datetime) -> ViewKind:
        """Checks 9 and on for a fresh envelope addressed to us, then record it (through
        ``Receiver.collecting`` or ``Receiver.deliver``); returns the view taken. Raises
        ``MappaError`` to refuse."""
        ...

    def open_verified(
        self, verified: VerifiedEnvelope, *, today_from: datetime, at_consultation: bool
    ) -> Opened:
        """Open an envelope of this topic again, from the stored copy (a consultation,
        a handover). Raises ``MappaError`` if it no longer passes."""
        ...


def parse_body(
    ctx: AgencyContext,
    verified: VerifiedEnvelope,
    kind: ViewKind,
    plaintext: bytes,
    redaction: str = STANDARD_REDACTION,
) -> MessageBody:
    """Check 11: the plaintext is a valid ``kind`` view of the header's message type
    under the named ``redaction`` set, about the header's subject, area and schema
    version. Raises ``SchemaError`` (``schema.unknown-type``, ``schema.invalid-body``),
    ``PolicyDenied`` (``policy.breach-view-too-rich``: a field the view must not carry)
    or ``VerificationError`` (``envelope.subject-mismatch``)."""
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
            # Name only the message type's own fields: a key the type does not have is
            # the sender's input and may be a value (a PNC id as a key), so it is counted.
            keys = {str(e["loc"][0]) for e in extra}
            fields = sorted(keys & set(model.model_fields))
            if unknown := len(keys) - len(fields):
                fields.append(f"{unknown} field(s) the type does not have")
            raise PolicyDenied(
                f"{kind.value} view of {header.message_type} from {header.sender} carries "
                f"{', '.join(fields)}, which that view must not: breach by the sender",
                code="policy.breach-view-too-rich",
            ) from None
        raise invalid(exc, f"{header.message_type} body", code="schema.invalid-body") from None
    if (
        body.area != header.area
        or ctx.subject_key.reference(body.subject.pnc_id) != header.subject_ref
        or body.schema_version != header.schema_version
    ):
        raise VerificationError(
            "body does not match its header (subject, area or schema version)",
            code="envelope.subject-mismatch",
        )
    return body


def view_for(verified: VerifiedEnvelope, agency_id: str) -> ViewKind:
    """The kind of view wrapped for ``agency_id`` (the envelope is addressed to it)."""
    entry = next(r for r in verified.recipients if r.agency == agency_id)
    return next(v.kind for v in verified.views if v.view_id == entry.view_id)


class AreaRules:
    """The area topics (``<ns>.<area>.<scope>``): checks 9-11 against this agency's own
    copy of the agreement and its record of the case team, then the inbox."""

    def __init__(self, ctx: AgencyContext, receiver: Receiver) -> None:
        self._ctx = ctx
        self._receiver = receiver

    @property
    def verifier(self) -> EnvelopeVerifier:
        """Area topics bind an envelope to a topic of its own area."""
        return self._ctx.verifier

    def redelivered(self, verified: VerifiedEnvelope) -> None:
        """Kafka delivers at least once: an exact copy is skipped without a record."""

    def accept(self, record: Record, verified: VerifiedEnvelope, now: datetime) -> ViewKind:
        """Checks 9-11, then into the inbox (see ``Receiver.deliver``); returns the view
        taken. Raises as ``open_verified`` does."""
        opened = self.open_verified(verified, today_from=now, at_consultation=False)
        self._receiver.deliver(record, opened, now)
        return opened.view

    def open_verified(
        self, verified: VerifiedEnvelope, *, today_from: datetime, at_consultation: bool
    ) -> Opened:
        """Policy, decryption and body checks for an envelope addressed to us. At a later
        consultation the case-team checks are not run again: they judged the delivery.
        Returns the opened message. Raises ``PolicyDenied`` (``policy.*`` from the
        agreement; for a case team also ``policy.case-team-invalid`` and
        ``policy.breach-not-on-case-team``), ``NotAddressed``, ``DecryptionError``
        (``decryption.failed``, ``envelope.unknown-recipient-key``), ``VerificationError``
        (``directory.unknown-agency``) and ``parse_body``'s errors (check 11)."""
        ctx = self._ctx
        header = verified.header
        view_kind = view_for(verified, ctx.agency_id)
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
            # At a consultation the version judged the delivery; a newer agreement since
            # must not lock away what was lawfully taken (its rules still apply).
            isa_version=None if at_consultation else header.isa_version,
            judge_team=not at_consultation,
        )
        opened = open_view(
            verified,
            agency=ctx.agency_id,
            keys=ctx.keys.decryption,
            suite=suite_named(header.suite),
            opened=self._receiver.opened_ahead(verified),
        )
        # A redacted view is read against the field set this agency's own rule names:
        # a field that set removes is a breach by the sender, not a field to keep.
        redaction = rule.redaction_set if rule.access is Access.REDACTED else STANDARD_REDACTION
        body = parse_body(ctx, verified, opened.kind, opened.plaintext, redaction)
        new_team = case_team_of(body)
        if new_team is not None and not at_consultation:
            ctx.policy.check_case_team(case_team_roles(body), header.area)
            # A joiner is on the new team, a leaver on its own record of the old one.
            ctx.policy.check_team(
                ctx.entry, rule, (team or frozenset()) | new_team[0], sender=header.sender
            )
        return Opened(verified=verified, view=opened.kind, body=body)


def _where(record: Record) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)


class Receiver:
    """Handles each record of every topic the gateway reads, by that topic's rules."""

    def __init__(self, ctx: AgencyContext) -> None:
        self._ctx = ctx
        # One batch's records as the workers prepared them (``preparing``).
        self._prepared: dict[tuple[str, int, int], Prepared] = {}
        self._opened: dict[str, OpenedView] = {}
        # Records admitted with what the workers prepared, since start.
        self.prepared_ahead = 0
        self.area_rules = AreaRules(ctx, self)
        self._rules: dict[str, TopicRules] = {}
        self.receipts = ReceiptReader(ctx, self.refuse)

    def add_rules(self, topic: str, rules: TopicRules) -> None:
        """Read ``topic`` by ``rules`` instead of the area topics' rules."""
        self._rules[topic] = rules

    @property
    def topics_with_rules(self) -> list[str]:
        """The topics that have rules of their own, besides the area topics."""
        return sorted(self._rules)

    def rules_for(self, topic: str) -> TopicRules:
        """The rules of ``topic``: its own if it has some, else the area topics'."""
        return self._rules.get(topic, self.area_rules)

    # -- the steps ----------------------------------------------------------------------------
    def admit(self, record: Record, rules: TopicRules, now: datetime) -> VerifiedEnvelope:
        """Checks 1-5 on a record, by ``rules``' verifier (freshness, check 6, comes after
        a refusal remembered for good, so that a stale re-sent copy is answered as
        before), with what the workers prepared for it, if anything. Raises the check's
        ``MappaError``."""
        prepared = self._prepared.get(_where(record))
        if prepared is not None:
            self.prepared_ahead += 1
        return rules.verifier.verify(
            record.value, topic=record.topic, record_time=record.appended_at(), prepared=prepared
        )

    @contextmanager
    def preparing(
        self, records: Sequence[Record], prepared: Sequence[Prepared | None]
    ) -> Iterator[None]:
        """Handle ``records`` (one batch, inside the ``with``) with what the workers
        prepared for each (``broker.gateway.preparing``), then forget it: nothing
        decrypted outlives its batch."""
        self._prepared = {
            _where(r): p for r, p in zip(records, prepared, strict=True) if p is not None
        }
        self._opened = {
            p.unverified.digest: p.opened for p in self._prepared.values() if p.opened is not None
        }
        try:
            yield
        finally:
            self._prepared = {}
            self._opened = {}

    def opened_ahead(self, verified: VerifiedEnvelope) -> OpenedView | None:
        """The view of ``verified`` a worker decrypted for this batch, if one did."""
        return self._opened.get(verified.digest)

    def is_redelivery(self, verified: VerifiedEnvelope) -> bool:
        """Check 8: True if this exact message was taken before. Raises ``ReplayError``
        (``envelope.replay-conflict``) if its id was taken with other content."""
        # Keyed by sender too: another agency's message with this id is not this one, and
        # must not make the genuine message look like a replay.
        seen = self._ctx.store.seen_digest(verified.header.sender, verified.header.message_id)
        if seen is None:
            return False
        if seen == verified.digest:
            return True
        raise ReplayError(
            f"message id {verified.header.message_id} was delivered before with other content",
            code="envelope.replay-conflict",
        )

    @contextmanager
    def collecting(
        self,
        record: Record,
        verified: VerifiedEnvelope,
        view: ViewKind,
        now: datetime,
        *,
        reason: str,
        area: str | None = None,
    ) -> Iterator[None]:
        """One transaction that takes a message: the caller's own writes (inside the
        ``with``), the message id remembered against replays, the offset moved past the
        record and a ``collection`` audit event (in ``area``, else the header's)."""
        ctx = self._ctx
        h = verified.header
        with ctx.store.transaction():
            ctx.store.remember(
                h.sender,
                h.message_id,
                verified.digest,
                topic=record.topic,
                created_at=h.created_at,
                seen_at=format_timestamp(now),
            )
            ctx.store.deadletters.forget(h.sender, h.message_id, verified.digest)
            self.receipt(record, verified, now, ReceiptOutcome.DELIVERED)
            yield
            ctx.store.advance(record.topic, record.partition, record.offset)
            ctx.audit.emit(
                AuditAct.COLLECTION,
                Operation.DELIVER,
                **{**header_fields(h), "area": area or h.area},
                lawful_basis=h.lawful_basis,
                recipient=ctx.agency_id,
                view=view,
                reason=reason,
            )

    def deliver(self, record: Record, opened: Opened, now: datetime) -> None:
        """Into the inbox (and, for a case team, into the agency's record of it), in one
        transaction with everything ``collecting`` records."""
        ctx = self._ctx
        header = opened.verified.header
        with self.collecting(
            record, opened.verified, opened.view, now, reason=f"from {header.sender}"
        ):
            ctx.store.add_to_inbox(
                InboxItem.taken(
                    header,
                    topic=record.topic,
                    view=opened.view.value,
                    envelope=record.value,
                    received_at=format_timestamp(now),
                )
            )
            new_team = case_team_of(opened.body)
            if new_team is not None:
                ctx.store.record_case_team(
                    header.subject_ref,
                    sorted(new_team[0]),
                    lead_agency=new_team[1],
                    set_at=header.created_at,
                    message_id=header.message_id,
                )

    def receipt(
        self,
        record: Record,
        verified: VerifiedEnvelope,
        now: datetime,
        outcome: ReceiptOutcome,
        reason_code: str | None = None,
    ) -> None:
        """Queue our signed receipt of ``verified`` for its sender. Call inside the
        store's transaction, with the delivery or refusal it reports."""
        ctx = self._ctx
        h = verified.header
        receipt = DeliveryReceipt(
            message_id=h.message_id,
            envelope_digest=verified.digest,
            sender=h.sender,
            recipient=ctx.agency_id,
            topic=record.topic,
            outcome=outcome,
            reason_code=reason_code,
            time=format_timestamp(now),
        )
        ctx.store.enqueue(
            ctx.topics.receipts,
            delivery_receipt_record(receipt, ctx.audit.signing_key),
            key=h.sender.encode(),
        )

    def answer_again(
        self, record: Record, verified: VerifiedEnvelope, now: datetime, refused: str | None
    ) -> Handled:
        """A re-sent copy of an envelope already taken (``refused`` None) or refused for
        good with that code: its receipt again, and move past it; nothing else is
        recorded."""
        with self._ctx.store.transaction():
            outcome = ReceiptOutcome.DELIVERED if refused is None else ReceiptOutcome.REFUSED
            self.receipt(record, verified, now, outcome, refused)
            self._ctx.store.advance(record.topic, record.partition, record.offset)
        h = verified.header
        return Handled(
            Handling.DUPLICATE,
            record.topic,
            h.message_id,
            h.sender,
            h.message_type,
            reason_code=refused,
        )

    def skip(self, record: Record, handling: Handling, verified: VerifiedEnvelope) -> Handled:
        """Not ours, or ours already: move past it, record nothing."""
        with self._ctx.store.transaction():
            self._ctx.store.advance(record.topic, record.partition, record.offset)
        h = verified.header
        return Handled(handling, record.topic, h.message_id, h.sender, h.message_type)

    def refuse(
        self, record: Record, verified: VerifiedEnvelope | None, exc: MappaError, now: datetime
    ) -> Handled:
        """Dead-letter the record with the reason, audit the refusal and move past it, in
        one transaction; for an envelope addressed to us whose sender verified, a refused
        receipt and the refusal remembered; a refusal that can pass keeps the record for
        a retry. Only what verified is recorded as fact: an unverified claim (sender,
        subject) is never written into the audit trail as if it were true."""
        ctx = self._ctx
        about = header_fields(verified.header) if verified is not None else {}
        where = f"{record.topic}/{record.partition}@{record.offset}"
        reason = f"{exc.reason} [record {where}]"
        dead = dead_letter(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            reason_code=exc.code,
            reason=exc.reason,
            refused_by=ctx.agency_id,
            refused_at=format_timestamp(now),
        )
        # A savepoint: a refusal that fails half-way leaves nothing of itself behind.
        with ctx.store.transaction(), ctx.store.savepoint():
            ctx.store.enqueue(ctx.topics.deadletter, dead.value, key=dead.key, headers=dead.headers)
            ctx.store.advance(record.topic, record.partition, record.offset)
            ctx.audit.refusal(
                Operation.DELIVER, exc, reason=reason, recipient=ctx.agency_id, **about
            )
            passes = can_pass(exc)
            if verified is not None and verified.addressed_to(ctx.agency_id):
                h = verified.header
                self.receipt(record, verified, now, ReceiptOutcome.REFUSED, exc.code)
                ctx.store.deadletters.remember(
                    h.sender, h.message_id, verified.digest, exc.code, retriable=passes, now=now
                )
            if passes:
                ctx.store.deadletters.keep(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    timestamp_ms=record.timestamp_ms,
                    key=record.key,
                    value=record.value,
                    reason_code=exc.code,
                    reason=reason[:MAX_REASON_CHARS],
                    now=now,
                )
        return Handled(
            Handling.REFUSED,
            record.topic,
            message_id=verified.header.message_id if verified else None,
            sender=verified.header.sender if verified else None,
            message_type=verified.header.message_type if verified else None,
            reason_code=exc.code,
            reason=exc.reason,
        )

    # -- one record, and one stored message ---------------------------------------------------
    def handle(self, record: Record) -> Handled:
        """Every check in order (module docstring), by the rules of the record's topic;
        then deliver, skip or refuse. Returns what became of it. The one boundary of a
        record: raises only ``INFRASTRUCTURE_FAILURES`` (the batch is then read again);
        any other exception refuses the record and moves past it."""
        ctx = self._ctx
        now = ctx.clock()
        try:
            if record.topic == ctx.topics.receipts:
                return self.receipts.handle(record, now)
            return self._handle(record, now)
        except INFRASTRUCTURE_FAILURES:
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary: refused, never stuck
            return self._refuse_plainly(record, exc, now)

    def _handle(self, record: Record, now: datetime) -> Handled:
        ctx = self._ctx
        rules = self.rules_for(record.topic)
        verified: VerifiedEnvelope | None = None
        try:
            with ctx.store.transaction(), ctx.store.savepoint():
                verified = self.admit(record, rules, now)
                h = verified.header
                if not verified.addressed_to(ctx.agency_id):
                    return self.skip(record, Handling.NOT_ADDRESSED, verified)
                earlier = ctx.store.deadletters.recall(h.sender, h.message_id, verified.digest)
                if earlier is not None and not earlier.retriable:
                    return self.answer_again(record, verified, now, earlier.reason_code)
                rules.verifier.check_fresh(verified, now)
                if self.is_redelivery(verified):
                    rules.redelivered(verified)
                    return self.answer_again(record, verified, now, None)
                view = rules.accept(record, verified, now)
        except INFRASTRUCTURE_FAILURES:
            raise
        except MappaError as exc:
            return self.refuse(record, verified, exc, now)
        except Exception as exc:  # noqa: BLE001 - refused: see handle
            log.error(  # noqa: TRY400 - no traceback: it may quote the record
                "%s: record %s/%d@%d could not be processed (%s): refused",
                ctx.agency_id,
                record.topic,
                record.partition,
                record.offset,
                type(exc).__name__,
            )
            return self.refuse(record, verified, Unprocessable.of(exc), now)
        h = verified.header
        return Handled(
            Handling.DELIVERED, record.topic, h.message_id, h.sender, h.message_type, view
        )

    def _refuse_plainly(self, record: Record, exc: Exception, now: datetime) -> Handled:
        """The last resort, when handling a record and refusing it both failed: refused
        as ``record.unprocessable`` with nothing the record claims; if even that fails,
        moved past with a log line (never read again and again)."""
        ctx = self._ctx
        where = f"{record.topic}/{record.partition}@{record.offset}"
        log.error(
            "%s: record %s could not be refused (%s)", ctx.agency_id, where, type(exc).__name__
        )
        error = Unprocessable.of(exc)
        try:
            with ctx.store.transaction(), ctx.store.savepoint():
                return self.refuse(record, None, error, now)
        except INFRASTRUCTURE_FAILURES:
            raise
        except Exception as again:  # noqa: BLE001 - see the docstring
            log.error(  # noqa: TRY400 - no traceback: it may quote the record
                "%s: record %s passed over unrecorded: its refusal failed (%s)",
                ctx.agency_id,
                where,
                type(again).__name__,
            )
        with ctx.store.transaction():
            ctx.store.advance(record.topic, record.partition, record.offset)
        return Handled(Handling.REFUSED, record.topic, reason_code=error.code, reason=error.reason)

    def reopen(self, item: InboxItem, *, now: datetime, at_consultation: bool) -> Opened:
        """Verify and open a held message again from its stored bytes, by its topic's
        rules: the local database is not trusted either. Raises ``MappaError`` if it no
        longer passes (a key revoked since, an agreement that no longer allows it)."""
        rules = self.rules_for(item.topic)
        # received_at is not the broker's append time: the append-time bounds judged
        # the delivery, and a rotation since must not lock away what was lawfully taken.
        verified = rules.verifier.verify(
            item.envelope,
            topic=item.topic,
            record_time=parse_timestamp(item.received_at),
            appended=False,
        )
        return rules.open_verified(verified, today_from=now, at_consultation=at_consultation)
