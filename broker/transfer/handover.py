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
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from broker.agreements.policy import CASE_TEAM_TYPE, SharingPolicy
from broker.crypto.encoding import jcs
from broker.errors import MappaError
from broker.gateway.agency import AgencyContext
from broker.gateway.cases import CaseRegistry
from broker.gateway.publish import bundles
from broker.gateway.receive import Receiver
from broker.gateway.sealing import Sealed, ViewFor, queue
from broker.transfer.envelopes import HANDOVER_PURPOSE, lawful_basis_text, seal_for_transfers
from schemas.audit import Operation
from schemas.common import ViewKind
from schemas.isa import Agreement
from schemas.messages import derive_view
from schemas.transfer import TransferRecord


@dataclass(frozen=True)
class Reshared:
    """One held message and what the handover made of it: a new message id and its
    recipients, or None and nobody when the receiving area entitles nobody to it."""

    original_id: str
    message_id: str | None
    message_type: str
    recipients: tuple[tuple[str, ViewKind], ...]


def reshare_case(
    ctx: AgencyContext,
    registry: CaseRegistry,
    receiver: Receiver,
    record: TransferRecord,
    *,
    agreement: Agreement,
    now: datetime,
) -> list[Reshared]:
    """Re-share what has not been re-shared yet for ``record``, under the receiving
    area's ``agreement``; returns what was re-shared. Each held item is verified and
    opened again by ``receiver`` (by its topic's rules: items handed over to this agency
    by an earlier transfer re-verify as handover items, so a case that moves on takes its
    whole history along); one that no longer passes is audited as a refused re-share.
    Call inside the store's transaction."""
    ctx.store.require_transaction()
    done = registry.reshared(record.transfer_id)
    policy = SharingPolicy(agreement, ctx.directory)
    purpose = f"{HANDOVER_PURPOSE}{record.transfer_id}"
    out: list[Reshared] = []
    for item in ctx.store.inbox_about(record.subject_ref):
        # Keyed by sender too: another agency's message with the same id is another one.
        if (item.sender, item.message_id) in done:
            continue
        if item.message_type == CASE_TEAM_TYPE:
            # A case team names the old area's agencies; the receiving area's comes with
            # the completion. Handing it over would replace that team with the wrong one.
            registry.mark_reshared(
                record.transfer_id, item.sender, item.message_id, "area-specific"
            )
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
            opened = receiver.reopen(item, now=now, at_consultation=False)
        except MappaError as exc:
            ctx.audit.refusal(
                Operation.RESHARE,
                exc,
                reason=f"message {item.message_id} not re-shared: {exc.reason}",
                **common,
            )
            registry.mark_reshared(
                record.transfer_id, item.sender, item.message_id, f"refused:{exc.code}"
            )
            continue
        # The receiving area's agreement and case team decide who gets what; nobody gets
        # a richer view than the lead itself holds.
        team = frozenset(record.case_team) or None
        disclosures = [
            d if d.view.richness <= opened.view.richness else replace(d, view=opened.view)
            for d in policy.recipients(ctx.entry, item.message_type, record.to_area, team)
        ]
        if not disclosures:
            registry.mark_reshared(
                record.transfer_id, item.sender, item.message_id, "none-entitled"
            )
            out.append(Reshared(item.message_id, None, item.message_type, ()))
            continue
        sealed: list[Sealed] = []
        for bundle in bundles(disclosures):
            by_view: dict[tuple[ViewKind, str], list[str]] = defaultdict(list)
            for d in bundle:
                by_view[(d.view, d.redaction)].append(d.recipient.agency_id)
            sealed.append(
                seal_for_transfers(
                    ctx,
                    now=now,
                    # The item's own area, as its body says: a handover never rewrites content.
                    area=opened.verified.header.area,
                    message_type=item.message_type,
                    schema_version=opened.verified.header.schema_version,
                    subject_ref=record.subject_ref,
                    purpose=purpose,
                    isa=(agreement.id, agreement.version),
                    views=[
                        ViewFor(kind, jcs(derive_view(opened.body, kind, redaction)), tuple(a))
                        for (kind, redaction), a in by_view.items()
                    ],
                )
            )
        queue(
            ctx,
            sealed,
            key=record.subject_ref.encode(),
            operation=Operation.RESHARE,
            collect=False,
            lawful_basis=lawful_basis_text(ctx.entry),
            reason=(
                f"handover of {item.message_id} for transfer {record.transfer_id} "
                f"to {record.to_area}"
            ),
            **common,
        )
        registry.mark_reshared(
            record.transfer_id, item.sender, item.message_id, sealed[0].message_id
        )
        pairs = tuple(pair for s in sealed for pair in s.recipients)
        out.append(Reshared(item.message_id, sealed[0].message_id, item.message_type, pairs))
    return out
