"""The handover package: the sending lead agency re-shares the case history.

On completion (and after it, for anything about the subject that reaches the lead
later) the lead agency's adapter takes every message its inbox holds about the
subject, re-verifies and opens it as a consultation would, and seals it again for the
receiving area's agencies, each at the view the *receiving* area's agreement gives it,
never richer than the view the lead itself holds. Each item goes on the transfer topic
as a fresh envelope signed by the lead, and each recipient is audited as a
``disclosure`` with operation ``reshare``. What was re-shared is remembered per
transfer, so the package is sent once and a late arrival is sent on its own.

Messages the lead published itself are not in its store (an envelope is sealed for
its recipients, not its sender); the lead's own system holds them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from broker.agreements.policy import CASE_TEAM_TYPE, Disclosure, SharingPolicy
from broker.crypto.encoding import jcs
from broker.errors import MappaError
from broker.gateway.agency import AgencyContext
from broker.gateway.cases import CaseRegistry
from broker.gateway.publish import CONTENT_TYPE_HEADER, bundles
from broker.gateway.receive import Receiver
from broker.gateway.store import InboxItem
from broker.transfer.envelopes import HANDOVER_PURPOSE, lawful_basis_text, seal_for_transfers
from schemas.audit import AuditAct, Operation, Outcome
from schemas.common import ViewKind, parse_timestamp
from schemas.isa import Agreement
from schemas.messages import derive_view
from schemas.transfer import TransferRecord


@dataclass(frozen=True)
class Reshared:
    original_id: str
    message_id: str | None
    message_type: str
    recipients: tuple[tuple[str, ViewKind], ...]


def inbox_about(ctx: AgencyContext, subject_ref: str) -> list[InboxItem]:
    rows = ctx.store.db.execute(
        "SELECT * FROM inbox WHERE subject_ref = ? ORDER BY received_at, message_id",
        (subject_ref,),
    )
    return [InboxItem(*row) for row in rows]


def reshare_case(
    ctx: AgencyContext,
    registry: CaseRegistry,
    record: TransferRecord,
    *,
    agreement: Agreement,
    now: datetime,
    readers: Mapping[str, Receiver] | None = None,
) -> list[Reshared]:
    """Re-share what has not been re-shared yet. Call inside the store's transaction."""
    ctx.store.require_transaction()
    done = registry.reshared(record.transfer_id)
    policy = SharingPolicy(agreement, ctx.directory)
    # Items handed over to this agency by an earlier transfer came on the transfer topic
    # and re-verify by its rules: a case that moves on takes its whole history along.
    readers = readers or {}
    default_reader = Receiver(ctx)
    purpose = f"{HANDOVER_PURPOSE}{record.transfer_id}"
    out: list[Reshared] = []
    for item in inbox_about(ctx, record.subject_ref):
        if item.message_id in done:
            continue
        if item.message_type == CASE_TEAM_TYPE:
            # A case team names the old area's agencies; the receiving area's comes with
            # the completion. Handing it over would replace that team with the wrong one.
            registry.mark_reshared(record.transfer_id, item.message_id, "area-specific")
            continue
        common: dict[str, Any] = {
            "area": record.from_area,
            "subject_ref": record.subject_ref,
            "message_type": item.message_type,
            "isa_id": agreement.id,
            "isa_version": agreement.version,
            "purpose": purpose,
        }
        try:
            # Re-verified from the stored bytes, as for a consultation: the store is not
            # trusted either, and the lead may re-share only what it may still hold.
            reader = readers.get(item.topic, default_reader)
            verified = reader.verify(
                item.envelope, topic=item.topic, record_time=parse_timestamp(item.received_at)
            )
            opened = reader.open_verified(verified, today_from=now)
        except MappaError as exc:
            ctx.audit.emit(
                AuditAct.REFUSAL,
                Operation.RESHARE,
                Outcome.REFUSED,
                reason_code=exc.code,
                reason=f"message {item.message_id} not re-shared: {exc.reason}"[:4000],
                **common,
            )
            registry.mark_reshared(record.transfer_id, item.message_id, f"refused:{exc.code}")
            continue
        # The receiving area's agreement and case team decide who gets what; nobody gets
        # a richer view than the lead itself holds.
        team = frozenset(record.case_team) or None
        disclosures = [
            d if d.view.richness <= opened.view.richness else replace(d, view=opened.view)
            for d in policy.recipients(ctx.entry, item.message_type, record.to_area, team)
        ]
        if not disclosures:
            registry.mark_reshared(record.transfer_id, item.message_id, "none-entitled")
            out.append(Reshared(item.message_id, None, item.message_type, ()))
            continue
        sealed: list[tuple[str, bytes, list[Disclosure]]] = []
        for bundle in bundles(disclosures):
            by_view: dict[tuple[ViewKind, str], list[str]] = defaultdict(list)
            for d in bundle:
                by_view[(d.view, d.redaction)].append(d.recipient.agency_id)
            message_id, value = seal_for_transfers(
                ctx,
                now=now,
                # The item's own area, as its body says: a handover never rewrites content.
                area=verified.header.area,
                message_type=item.message_type,
                schema_version=verified.header.schema_version,
                subject_ref=record.subject_ref,
                purpose=purpose,
                isa=(agreement.id, agreement.version),
                views=[
                    (kind, jcs(derive_view(opened.body, kind, redaction)), agencies)
                    for (kind, redaction), agencies in by_view.items()
                ],
            )
            sealed.append((message_id, value, bundle))
        for message_id, value, bundle in sealed:
            ctx.store.enqueue(
                ctx.topics.transfers,
                value,
                key=record.subject_ref.encode(),
                headers=[CONTENT_TYPE_HEADER],
            )
            for d in bundle:
                ctx.audit.emit(
                    AuditAct.DISCLOSURE,
                    Operation.RESHARE,
                    **{**common, "message_id": message_id},
                    recipient=d.recipient.agency_id,
                    view=d.view,
                    lawful_basis=lawful_basis_text(ctx.entry),
                    reason=(
                        f"handover of {item.message_id} for transfer {record.transfer_id} "
                        f"to {record.to_area}"
                    ),
                )
        registry.mark_reshared(record.transfer_id, item.message_id, sealed[0][0])
        pairs = tuple((d.recipient.agency_id, d.view) for _, _, b in sealed for d in b)
        out.append(Reshared(item.message_id, sealed[0][0], item.message_type, pairs))
    return out
