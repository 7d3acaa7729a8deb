"""Acts on personal data after publication: correction (alteration) and retention erasure.

DPA 2018 s62 asks for a record of every alteration and erasure as much as of every
disclosure. A correction is a new message whose signed header ``supersedes`` the
original; the sender's adapter records the alteration in the same transaction as
the corrected envelopes and their disclosures. Erasure removes from an agency's
inbox what it has held longer than the agreement's retention period, one
"erasure" record per message, in the same transaction as the deletion.

Transfer re-share (area transfers) records each re-sent message with
``record_reshare``: a disclosure with operation "reshare".
"""

from __future__ import annotations

from datetime import datetime

from broker.errors import MappaError
from broker.gateway.agency import AgencyContext
from broker.gateway.publish import Publisher, PublishResult
from broker.gateway.store import InboxItem
from schemas.audit import AuditAct, Operation
from schemas.common import ViewKind, format_timestamp
from schemas.messages import MessageBody


def retention_cutoff(now: datetime, years: int) -> datetime:
    """The same calendar day ``years`` earlier (29 February falls back to the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


class Lifecycle:
    """One agency's acts after publication (module docstring): correction, retention
    erasure and the records of a transfer's re-shares."""

    def __init__(self, ctx: AgencyContext, publisher: Publisher) -> None:
        self._ctx = ctx
        self._publisher = publisher

    def correct(
        self,
        original_message_id: str,
        corrected: MessageBody,
        *,
        purpose: str,
        user: str,
        reason: str,
    ) -> PublishResult:
        """Publish ``corrected`` as superseding ``original_message_id`` and record the
        alteration, in one transaction; returns the publication. Raises every
        ``MappaError`` of ``Publisher.publish`` after recording it as a refused
        correction (any refusal record of the publisher's own rolls back with the unit).
        ``original_message_id`` is taken as given: nothing checks that it exists."""
        ctx = self._ctx
        try:
            with ctx.store.transaction():
                result = self._publisher.publish(
                    corrected, purpose=purpose, user=user, supersedes=original_message_id
                )
                agreement = ctx.policy.agreement
                ctx.audit.emit(
                    AuditAct.ALTERATION,
                    Operation.CORRECT,
                    user=user,
                    area=corrected.area,
                    subject_ref=result.subject_ref,
                    message_id=result.message_id,
                    message_type=result.message_type,
                    isa_id=agreement.id,
                    isa_version=agreement.version,
                    purpose=purpose,
                    reason=f"supersedes {original_message_id}: {reason}"[:4000],
                )
        except MappaError as exc:
            # The publish (and its own refusal record) rolled back with the unit, so nothing
            # it emitted was kept; the refusal of the correction is recorded here instead.
            ctx.audit.refusal(
                Operation.CORRECT,
                exc,
                reason=f"correction of {original_message_id} refused: {exc.reason}",
                user=user,
                area=corrected.area,
                subject_ref=ctx.subject_key.reference(corrected.subject.pnc_id),
                purpose=purpose,
            )
            raise
        return result

    def erase_expired(self, *, now: datetime | None = None) -> list[InboxItem]:
        """Erase inbox items received before the agreement's retention period (counted back
        from ``now``, default the clock's time), each with an erasure record, in one
        transaction; returns the erased items. Raises nothing of its own."""
        ctx = self._ctx
        now = now or ctx.clock()
        retention = ctx.policy.agreement.retention
        cutoff = format_timestamp(retention_cutoff(now, retention.years))
        with ctx.store.transaction():
            expired = ctx.store.inbox_received_before(cutoff)
            for item in expired:
                ctx.store.delete_inbox_item(item.message_id, sender=item.sender)
                ctx.audit.emit(
                    AuditAct.ERASURE,
                    Operation.ERASE,
                    subject_ref=item.subject_ref,
                    message_id=item.message_id,
                    message_type=item.message_type,
                    isa_id=item.isa_id,
                    isa_version=item.isa_version,
                    recipient=ctx.agency_id,
                    view=ViewKind(item.view),
                    reason=(
                        f"held since {item.received_at}; retention of {retention.years} years "
                        f"({retention.basis}) ended"
                    )[:4000],
                )
        return expired

    def record_reshare(
        self,
        *,
        message_id: str,
        subject_ref: str,
        message_type: str,
        recipient: str,
        view: ViewKind,
        area: str,
        purpose: str,
        user: str | None = None,
    ) -> None:
        """Hook for area transfers: one disclosure record per re-shared message and recipient.
        Call inside the transaction that queues the re-sealed envelope."""
        agreement = self._ctx.policy.agreement
        self._ctx.audit.emit(
            AuditAct.DISCLOSURE,
            Operation.RESHARE,
            user=user,
            area=area,
            subject_ref=subject_ref,
            message_id=message_id,
            message_type=message_type,
            isa_id=agreement.id,
            isa_version=agreement.version,
            purpose=purpose,
            recipient=recipient,
            view=view,
        )
