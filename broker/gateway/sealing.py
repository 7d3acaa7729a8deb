"""Sealing a message and queuing it with its audit events: the one way a gateway sends.

Three parts send envelopes: the publisher (a message, one envelope per recipient
topic), the transfer desk (a step on the transfer topic) and the handover (re-shared
case history). Each lays out its envelopes (``to_seal``: the header, and each view with
the encryption keys of the agencies entitled to it), seals them (``seal_here``, or a
``broker.gateway.sealing_pool`` worker: one signature for all the envelopes of a
publication), and queues them with their audit events in one transaction (``queue``):
a ``collection`` when the gateway takes the data in, and one ``disclosure`` per
recipient and view. So a message is never sent without its record, nor recorded
without being sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from broker.crypto.envelope import (
    PAYLOAD_TYPE,
    Recipient,
    ViewToSeal,
    seal_publication_digested,
)
from broker.crypto.keys import PrivateKey
from broker.crypto.suites import Suite
from broker.gateway.agency import AgencyContext
from broker.gateway.audit import signed_event_value
from schemas.audit import AuditAct, AuditEvent, Operation
from schemas.common import Classification, ViewKind, format_timestamp
from schemas.envelope import EnvelopeHeader

CONTENT_TYPE_HEADER = ("content-type", PAYLOAD_TYPE.encode())
ENVELOPE_VERSION: Literal[1] = 1
# The header's free-text fields are bounded (ShortText); a longer purpose is cut, not refused.
MAX_PURPOSE_CHARS = 200


@dataclass(frozen=True)
class ViewFor:
    """One view of a message and the agencies whose data key is wrapped for it."""

    kind: ViewKind
    plaintext: bytes
    agencies: tuple[str, ...]


@dataclass(frozen=True)
class Sealed:
    """A sealed envelope ready for the outbox, and who can open which view of it."""

    message_id: str
    topic: str
    value: bytes
    recipients: tuple[tuple[str, ViewKind], ...]
    # What each recipient's receipt must name (``envelope_digest``).
    digest: str


@dataclass(frozen=True)
class Sealing:
    """A publication sealed: its envelopes, and its audit events with their signed values."""

    envelopes: list[Sealed]
    events: list[tuple[AuditEvent, bytes]]


def new_header(
    *,
    suite: Suite,
    sender: str,
    signers: Sequence[PrivateKey],
    now: datetime,
    topic: str,
    area: str,
    message_type: str,
    schema_version: int,
    subject_ref: str,
    isa: tuple[str, int],
    purpose: str,
    lawful_basis: str,
    classification: Classification = Classification.OFFICIAL_SENSITIVE,
    supersedes: str | None = None,
    message_id: str | None = None,
) -> EnvelopeHeader:
    """The header of a new envelope (docs/envelope.md): a fresh message id unless one is
    given (one message sealed for several topics keeps one id), created now, naming the
    keys that will sign it. Raises pydantic's ``ValidationError`` for a field out of
    its bounds (callers pass values they built, not input)."""
    return EnvelopeHeader(
        envelope_version=ENVELOPE_VERSION,
        suite=suite.name,
        message_id=message_id or str(uuid.uuid4()),
        created_at=format_timestamp(now),
        sender=sender,
        sender_keys=tuple(k.key_id for k in signers),
        area=area,
        topic=topic,
        message_type=message_type,
        schema_version=schema_version,
        subject_ref=subject_ref,
        isa_id=isa[0],
        isa_version=isa[1],
        purpose=purpose[:MAX_PURPOSE_CHARS],
        lawful_basis=lawful_basis,
        classification=classification,
        supersedes=supersedes,
    )


@dataclass(frozen=True)
class ToSeal:
    """One envelope before sealing: its header (naming the signing keys) and its views,
    each recipient's encryption key resolved. All that sealing needs besides the
    signing keys themselves, and nothing that cannot cross to a worker process."""

    topic: str
    header: EnvelopeHeader
    views: tuple[ViewToSeal, ...]

    @property
    def message_id(self) -> str:
        return self.header.message_id

    @property
    def recipients(self) -> tuple[tuple[str, ViewKind], ...]:
        """(agency, view) for each recipient, richest view first."""
        return tuple((r.agency, v.kind) for v in self.views for r in v.recipients)


def to_seal(
    ctx: AgencyContext,
    *,
    now: datetime,
    topic: str,
    area: str,
    message_type: str,
    schema_version: int,
    subject_ref: str,
    isa: tuple[str, int],
    purpose: str,
    lawful_basis: str,
    views: Sequence[ViewFor],
    classification: Classification = Classification.OFFICIAL_SENSITIVE,
    supersedes: str | None = None,
    message_id: str | None = None,
) -> ToSeal:
    """One envelope from this agency, to be signed with its current keys for the
    configured suite, each view's data key to be wrapped for its agencies' current
    encryption keys (richest view first; a view with no agency is left out). Raises
    ``KeyUnavailable`` when a signing key is missing and
    ``VerificationError``/``KeyUnavailable`` from the directory when a recipient has no
    usable encryption key."""
    suite = ctx.suite
    signers = ctx.keys.signers_for(suite.signature_keys)
    header = new_header(
        suite=suite,
        sender=ctx.agency_id,
        signers=signers,
        now=now,
        topic=topic,
        area=area,
        message_type=message_type,
        schema_version=schema_version,
        subject_ref=subject_ref,
        isa=isa,
        purpose=purpose,
        lawful_basis=lawful_basis,
        classification=classification,
        supersedes=supersedes,
        message_id=message_id,
    )
    to_seal = tuple(
        ViewToSeal(
            v.kind,
            v.plaintext,
            tuple(
                Recipient(a, ctx.directory.encryption_key(a, suite=suite, at=now))
                for a in v.agencies
            ),
        )
        for v in sorted(views, key=lambda v: -v.kind.richness)
        if v.agencies
    )
    return ToSeal(topic, header, to_seal)


# One envelope to seal: its header and its views.
Sealable = tuple[EnvelopeHeader, Sequence[ViewToSeal]]


def seal_and_sign(
    items: Sequence[Sealable],
    events: Sequence[AuditEvent],
    *,
    signers: Sequence[PrivateKey],
    suite: Suite,
    audit_key: PrivateKey,
) -> tuple[list[tuple[bytes, str]], list[bytes]]:
    """The CPU-heavy part of a publication, wherever it runs (a pure function of its
    arguments: here, or in a ``broker.gateway.sealing_pool`` worker): each envelope's
    record value with the digest its receipts will name, signed once for them all
    (``seal_publication``), and each audit event's signed value. Raises
    ``SchemaError`` (``envelope.too-large``)."""
    return (
        seal_publication_digested(items, signers=signers, suite=suite),
        [signed_event_value(event, audit_key) for event in events],
    )


def sealing_of(
    items: Sequence[ToSeal],
    events: Sequence[AuditEvent],
    done: tuple[list[tuple[bytes, str]], list[bytes]],
) -> Sealing:
    """``items`` and ``events`` with what ``seal_and_sign`` made of them, in order."""
    values, signed = done
    return Sealing(
        [
            Sealed(item.message_id, item.topic, value, item.recipients, digest)
            for item, (value, digest) in zip(items, values, strict=True)
        ],
        list(zip(events, signed, strict=True)),
    )


def seal_here(
    ctx: AgencyContext, items: Sequence[ToSeal], events: Sequence[AuditEvent] = ()
) -> Sealing:
    """Seal ``items`` as one publication in this process with the agency's current keys,
    and sign its audit ``events`` (``seal_and_sign``). Raises ``KeyUnavailable`` for a
    signing key no longer held and ``SchemaError`` (``envelope.too-large``)."""
    done = seal_and_sign(
        [(i.header, i.views) for i in items],
        events,
        signers=ctx.keys.signers_for(ctx.suite.signature_keys),
        suite=ctx.suite,
        audit_key=ctx.audit.signing_key,
    )
    return sealing_of(items, events, done)


def seal_views(ctx: AgencyContext, **fields: Any) -> Sealed:
    """One envelope sealed on its own (``to_seal``'s arguments): a transfer step or a
    re-shared item. Raises as ``to_seal`` and ``seal_here`` do."""
    return seal_here(ctx, [to_seal(ctx, **fields)]).envelopes[0]


def publication_events(
    ctx: AgencyContext,
    envelopes: Sequence[Sealed | ToSeal],
    *,
    operation: Operation,
    collection_reason: str | None = None,
    collect: bool = True,
    **audit: Any,
) -> list[AuditEvent]:
    """The audit events of sending ``envelopes``, not yet signed, in the order ``queue``
    writes them: a ``collection`` of the message (unless ``collect`` is false: a re-share
    collects nothing new) and a ``disclosure`` for each recipient of each envelope.
    ``audit`` holds the events' common fields (area, subject, type, agreement, purpose,
    user, ...); each event names its envelope's message id."""
    events = []
    if collect and envelopes:
        events.append(
            ctx.audit.event(
                AuditAct.COLLECTION,
                operation,
                message_id=envelopes[0].message_id,
                reason=collection_reason,
                **audit,
            )
        )
    for e in envelopes:
        for agency, view in e.recipients:
            events.append(
                ctx.audit.event(
                    AuditAct.DISCLOSURE,
                    operation,
                    message_id=e.message_id,
                    recipient=agency,
                    view=view,
                    **audit,
                )
            )
    return events


def queue_signed(
    ctx: AgencyContext,
    sealed: Sequence[Sealed],
    events: Sequence[tuple[AuditEvent, bytes]],
    *,
    key: bytes,
    about: dict[str, Any],
) -> None:
    """Put ``sealed`` in the outbox with their audit ``events`` (each with its signed
    value), in one transaction (or the caller's). Each envelope then awaits a receipt from
    each of its recipients (``broker.gateway.tracking``), which ``about`` describes (the
    events' common fields)."""
    now = ctx.clock()
    with ctx.store.transaction():
        for s in sealed:
            seq = ctx.store.enqueue(s.topic, s.value, key=key, headers=[CONTENT_TYPE_HEADER])
            ctx.store.tracking.track(
                seq,
                s.message_id,
                [(agency, view.value) for agency, view in s.recipients],
                digest=s.digest,
                now=now,
                about=about,
            )
        for event, value in events:
            ctx.audit.queue_signed(event, value)


def queue(
    ctx: AgencyContext,
    sealed: Sequence[Sealed],
    *,
    key: bytes,
    operation: Operation,
    collection_reason: str | None = None,
    collect: bool = True,
    **audit: Any,
) -> None:
    """Put ``sealed`` in the outbox with their audit events (``publication_events``,
    signed here), in one transaction (or the caller's)."""
    events = publication_events(
        ctx,
        sealed,
        operation=operation,
        collection_reason=collection_reason,
        collect=collect,
        **audit,
    )
    key_ = ctx.audit.signing_key
    signed = [(e, signed_event_value(e, key_)) for e in events]
    queue_signed(ctx, sealed, signed, key=key, about=audit)
