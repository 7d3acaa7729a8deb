"""Acts on personal data after publication: correction (alteration) and retention erasure.

DPA 2018 s62 asks for a record of every alteration and erasure as much as of every
disclosure. A correction is a new message whose signed header ``supersedes`` the
original; the sender's adapter records the alteration in the same transaction as
the corrected envelopes and their disclosures. Only the agency that sent a message may
correct it, with a message of the same type about the same subject. Erasure removes
from an agency's inbox what it has held longer than the agreement's retention period
(all of it, or the messages named, each of which must be past it), one "erasure"
record per message, in the same transaction as the deletion.

Refusal codes (each refused correction, and each refused erasure of named messages, is
audited as a refusal):

- ``correction.not-sender`` (``PolicyDenied``): this agency sent no message with that
  id (unknown, or another agency's).
- ``correction.mismatch`` (``SchemaError``): the correction's type or subject is not
  the original's.
- ``erasure.not-held`` (``SchemaError``): a named message is not in the inbox.
- ``erasure.not-expired`` (``PolicyDenied``): a named message is still within the
  agreement's retention period.

Transfer re-share (area transfers) records each re-sent message with
``record_reshare``: a disclosure with operation "reshare".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from broker.errors import MappaError, PolicyDenied, SchemaError
from broker.gateway.agency import AgencyContext
from broker.gateway.publish import Publisher, PublishResult
from broker.gateway.store import HeldTable, InboxItem
from broker.gateway.tracking import LEDGER, Tracked
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
        on_queued: Callable[[PublishResult], None] | None = None,
    ) -> PublishResult:
        """Publish ``corrected`` as superseding ``original_message_id`` and record the
        alteration, in one transaction; returns the publication. ``on_queued`` is the
        publisher's (called inside the transaction; what it raises rolls all back).
        Raises, after recording it as a refused correction (any refusal record of the
        publisher's own rolls back with the unit): ``PolicyDenied``
        (``correction.not-sender``) unless this agency sent ``original_message_id``,
        ``SchemaError`` (``correction.mismatch``) if ``corrected`` is of another type or
        subject, and every ``MappaError`` of ``Publisher.publish``."""
        ctx = self._ctx
        try:
            with ctx.store.transaction():
                self._check_original(original_message_id, corrected)
                result = self._publisher.publish(
                    corrected,
                    purpose=purpose,
                    user=user,
                    supersedes=original_message_id,
                    on_queued=on_queued,
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

    def original(self, message_id: str) -> Tracked:
        """A message this agency sent, as its own tracking of what it sent holds it (one
        recipient's row: type and subject are the message's). Raises ``PolicyDenied``
        (``correction.not-sender``) if it sent no message ``message_id``."""
        ctx = self._ctx
        sent = [r for r in ctx.store.tracking.of_message(message_id) if r.recipient != LEDGER]
        if not sent:
            raise PolicyDenied(
                f"{ctx.agency_id} sent no message {message_id}: only the agency that sent a "
                "message may correct it",
                code="correction.not-sender",
            )
        return sent[0]

    def _check_original(self, original_message_id: str, corrected: MessageBody) -> None:
        """That this agency sent ``original_message_id`` and that ``corrected`` is of its
        type and about its subject."""
        ctx = self._ctx
        original = self.original(original_message_id)
        subject_ref = ctx.subject_key.reference(corrected.subject.pnc_id)
        if (original.message_type, original.subject_ref) != (corrected.message_type, subject_ref):
            raise SchemaError(
                f"a correction of {original_message_id} must be a {original.message_type} "
                "about the same subject",
                code="correction.mismatch",
            )

    def cutoff(self, now: datetime | None = None) -> str:
        """The time before which an inbox item is past the agreement's retention period,
        counted back from ``now`` (default the clock's time), as a timestamp."""
        years = self._ctx.policy.agreement.retention.years
        return format_timestamp(retention_cutoff(now or self._ctx.clock(), years))

    def expired(
        self, *, now: datetime | None = None, message_ids: Sequence[str] | None = None
    ) -> list[InboxItem]:
        """What ``erase_expired`` would erase at ``now`` (default the clock's time), erasing
        and auditing nothing. Raises as ``erase_expired`` would for ``message_ids``."""
        cutoff = self.cutoff(now)
        if message_ids is not None:
            return self._named(message_ids, cutoff, user=None, audit=False)
        return self._ctx.store.inbox_received_before(cutoff)

    def erase_expired(
        self,
        *,
        now: datetime | None = None,
        user: str | None = None,
        message_ids: Sequence[str] | None = None,
    ) -> list[InboxItem]:
        """Erase inbox items received before the agreement's retention period (counted back from
        ``now``, default the clock's time): every one (and every item of the agency's own
        record of what it published kept that long), or only ``message_ids`` if given; each
        with an erasure record naming ``user`` (the person or account that asked; None: the
        adapter's own housekeeping), in one transaction; returns the erased items. With
        ``message_ids``, each is checked before any is erased, and a refusal erases nothing
        and is audited: raises ``SchemaError`` (``erasure.not-held``) for one not in the
        inbox, ``AmbiguousMessage`` (``inbox.ambiguous``) for an id several senders'
        messages share, ``PolicyDenied`` (``erasure.not-expired``) for one still within the
        retention period."""
        ctx = self._ctx
        retention = ctx.policy.agreement.retention
        cutoff = self.cutoff(now)
        # Named messages are checked first, each refusal audited in its own transaction.
        named = None if message_ids is None else self._named(message_ids, cutoff, user=user)
        with ctx.store.transaction():
            own: list[InboxItem] = []
            if named is None:
                expired = ctx.store.inbox_received_before(cutoff)
                # The unit's own record of what it published is held under the same terms.
                own = ctx.store.inbox_received_before(cutoff, table="own_records")
            else:  # as still held: another process may have erased one meanwhile
                expired = [i for i in named if ctx.store.inbox_item(i.message_id, sender=i.sender)]
            erased: list[tuple[HeldTable, InboxItem]] = [("inbox", i) for i in expired]
            erased += [("own_records", i) for i in own]
            for table, item in erased:
                ctx.store.delete_inbox_item(item.message_id, sender=item.sender, table=table)
                ctx.audit.emit(
                    AuditAct.ERASURE,
                    Operation.ERASE,
                    user=user,
                    subject_ref=item.subject_ref,
                    message_id=item.message_id,
                    message_type=item.message_type,
                    isa_id=item.isa_id,
                    isa_version=item.isa_version,
                    recipient=ctx.agency_id,
                    view=ViewKind(item.view),
                    reason=(
                        f"{'held' if table == 'inbox' else 'kept'} since {item.received_at}; "
                        f"retention of {retention.years} years "
                        f"({retention.basis}) ended"
                    )[:4000],
                )
        return [*expired, *own]

    def _named(
        self, message_ids: Sequence[str], cutoff: str, *, user: str | None, audit: bool = True
    ) -> list[InboxItem]:
        """The inbox items ``message_ids`` name (each once), each past ``cutoff``. Raises
        as ``erase_expired`` says, after auditing the refusal in its own transaction if
        ``audit``."""
        ctx = self._ctx
        items: dict[tuple[str, str], InboxItem] = {}
        for message_id in message_ids:
            item: InboxItem | None = None
            try:
                item = ctx.store.inbox_item(message_id)
                if item is None:
                    raise SchemaError(
                        f"no message {message_id} in {ctx.agency_id}'s inbox",
                        code="erasure.not-held",
                    )
                if item.received_at >= cutoff:
                    raise PolicyDenied(
                        f"message {message_id}, held since {item.received_at}, is within the "
                        f"agreement's retention of {ctx.policy.agreement.retention.years} years",
                        code="erasure.not-expired",
                    )
            except MappaError as exc:
                if not audit:
                    raise
                ctx.audit.refusal(
                    Operation.ERASE,
                    exc,
                    user=user,
                    message_id=message_id if item else None,
                    subject_ref=item.subject_ref if item else None,
                )
                raise
            items[(item.sender, item.message_id)] = item
        return list(items.values())

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
