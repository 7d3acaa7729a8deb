"""The transfer topic's rules, plugged into the one receiving path (``broker.gateway.receive``).

Checks 1-8 run as for every topic (shape, suite, directory keys, signatures, topic
binding, freshness, addressed to us, replay memory), with one difference: an envelope
on ``<ns>.transfers`` may be bound to any of the 42 areas (the area the case moves
from). A step is applied once: an exact redelivery (a copy its sender sent again, not
yet having our receipt) is skipped and receipted again, like any other. Then:

* a transfer step (``transfer-*``): decrypt, parse, header and body agree, and the
  state machine and actor rules (``broker.transfer.rules``) allow it; applied to the
  case registry with its audit event in one transaction;
* a handover item (any catalogue message type): sent by the lead agency of a transfer
  this agency knows completed into its area, and within what this agency's own
  agreement entitles it to; delivered to the inbox like any message.

Every refusal is dead-lettered and audited by the receiving path's ``refuse``.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from broker.agreements.policy import CASE_TEAM_TYPE
from broker.crypto.envelope import VerifiedEnvelope, open_view
from broker.crypto.suites import suite_named
from broker.errors import PolicyDenied, TransferRefused, VerificationError, invalid
from broker.gateway.agency import AgencyContext
from broker.gateway.cases import CaseRegistry
from broker.gateway.receive import Opened, Receiver, parse_body, view_for
from broker.gateway.verification import EnvelopeVerifier
from broker.kafka.transport import Record
from broker.transfer.envelopes import CASE_HOLDERS, HANDOVER_PURPOSE, transfer_verifier
from broker.transfer.rules import check_notice, check_step, step_of
from schemas.common import ViewKind, format_timestamp
from schemas.isa import Access
from schemas.messages.base import STANDARD_REDACTION
from schemas.transfer import (
    CONTROL_MESSAGE_TYPES,
    TRANSFER_MESSAGE,
    TransferComplete,
    TransferControl,
    TransferState,
)


def own_area(ctx: AgencyContext, message: TransferControl) -> str:
    """The side of the transfer this agency is on: the area its audit events are in."""
    return message.from_area if message.from_area in ctx.entry.areas else message.to_area


class TransferRules:
    """``TopicRules`` for ``<ns>.transfers``: transfer steps and handover items."""

    def __init__(self, ctx: AgencyContext, receiver: Receiver, registry: CaseRegistry) -> None:
        self._ctx = ctx
        self._receiver = receiver
        self._registry = registry
        self._verifier = transfer_verifier(ctx)

    @property
    def verifier(self) -> EnvelopeVerifier:
        """The transfer topic binds an envelope to itself, for any of the 42 areas."""
        return self._verifier

    def redelivered(self, verified: VerifiedEnvelope) -> None:
        """A step is applied once: a re-sent copy is skipped (and receipted again)."""

    def accept(self, record: Record, verified: VerifiedEnvelope, now: datetime) -> ViewKind:
        """Apply a step to the case registry, or deliver a handover item to the inbox.
        Raises ``MappaError`` (``transfer.*``, ``policy.*``, ``schema.*``) to refuse."""
        if verified.header.message_type in CONTROL_MESSAGE_TYPES:
            return self._apply_step(record, verified, now)
        opened = self._open_handover(verified)
        self._receiver.deliver(record, opened, now)
        return opened.view

    def open_verified(
        self, verified: VerifiedEnvelope, *, today_from: datetime, at_consultation: bool
    ) -> Opened:
        """How a consultation (or a later handover) opens a handover item held in the
        inbox: the same checks as when it was delivered."""
        return self._open_handover(verified)

    # -- transfer steps ---------------------------------------------------------------------
    def _open_step(self, verified: VerifiedEnvelope) -> tuple[TransferControl, ViewKind]:
        ctx = self._ctx
        h = verified.header
        opened = open_view(
            verified, agency=ctx.agency_id, keys=ctx.keys.decryption, suite=suite_named(h.suite)
        )
        if opened.kind is ViewKind.FULL and ctx.entry.role not in CASE_HOLDERS:
            raise PolicyDenied(
                f"{h.sender} sent {ctx.agency_id} the full {h.message_type}; only the "
                "co-ordinators and RA agencies of both areas may hold it: breach by the sender",
                code="policy.breach-view-too-rich",
            )
        try:
            message: TransferControl = TRANSFER_MESSAGE.validate_json(opened.plaintext)
        except ValidationError as exc:
            raise invalid(exc, f"{h.message_type} body", code="schema.invalid-body") from None
        if (
            message.subject_ref != h.subject_ref
            or step_of(message).message_type != h.message_type
            or message.from_area != h.area
        ):
            raise VerificationError(
                "transfer step does not match its header (subject, step or area)",
                code="envelope.subject-mismatch",
            )
        return message, opened.kind

    def _apply_step(self, record: Record, verified: VerifiedEnvelope, now: datetime) -> ViewKind:
        ctx = self._ctx
        h = verified.header
        message, view = self._open_step(verified)
        if view is ViewKind.FULL:
            state: TransferState = check_step(
                ctx.directory,
                message,
                sender=h.sender,
                current=self._registry.get(message.transfer_id),
                open_transfer=self._registry.open_for(message.subject_ref),
                owner=self._registry.owner(message.subject_ref),
            )
        else:
            state = check_notice(ctx.directory, message, sender=h.sender, recipient=ctx.entry)
        reason = (
            f"transfer {message.transfer_id} {step_of(message).value} by {h.sender}: "
            f"now {state.value}"
        )
        with self._receiver.collecting(
            record, verified, view, now, reason=reason, area=own_area(ctx, message)
        ):
            self._registry.apply(message, state, at=format_timestamp(now))
            # The receiving area's case team, as its co-ordinator named it: what the
            # case-team rules of its agreement go by until a new case-team message.
            if (
                isinstance(message, TransferComplete)
                and message.to_area in ctx.entry.areas
                and message.case_team
            ):
                ctx.store.record_case_team(
                    message.subject_ref,
                    message.case_team,
                    lead_agency=message.actor_agency,
                    set_at=h.created_at,
                    message_id=h.message_id,
                )
        return view

    # -- handover items ---------------------------------------------------------------------
    def _open_handover(self, verified: VerifiedEnvelope) -> Opened:
        ctx = self._ctx
        h = verified.header
        transfer_id = h.purpose.removeprefix(HANDOVER_PURPOSE)
        known = self._registry.get(transfer_id) if h.purpose.startswith(HANDOVER_PURPOSE) else None
        if h.message_type == CASE_TEAM_TYPE:
            raise TransferRefused(
                "a case team belongs to its area and is never handed over: the receiving "
                "area's team comes with the completion",
                code="transfer.handover-not-authorised",
            )
        if (
            known is None
            or known.state is not TransferState.COMPLETED
            or known.subject_ref != h.subject_ref
            or known.lead_agency != h.sender
            or known.to_area not in ctx.entry.areas
        ):
            raise TransferRefused(
                f"{h.message_type} from {h.sender} on the transfer topic is not a handover "
                f"this agency can accept: it must come from the lead agency of a completed "
                f"transfer of this case into {', '.join(ctx.entry.areas)}",
                code="transfer.handover-not-authorised",
            )
        kind = view_for(verified, ctx.agency_id)
        team = ctx.store.case_team(h.subject_ref)
        if team is None and known.case_team:
            team = frozenset(known.case_team)
        rule = ctx.policy.entitlement(ctx.entry, h.message_type, team)
        if rule is None or rule.access.view is None or kind.richness > rule.access.view.richness:
            raise PolicyDenied(
                f"{ctx.agency_id} may not hold a {kind.value} view of {h.message_type} under "
                f"{ctx.policy.agreement.id}: breach by {h.sender} in the handover",
                code="policy.breach-view-too-rich",
            )
        opened = open_view(
            verified, agency=ctx.agency_id, keys=ctx.keys.decryption, suite=suite_named(h.suite)
        )
        redaction = rule.redaction_set if rule.access is Access.REDACTED else STANDARD_REDACTION
        body = parse_body(ctx, verified, opened.kind, opened.plaintext, redaction)
        return Opened(verified=verified, view=opened.kind, body=body)
