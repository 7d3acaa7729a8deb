"""Sealing for the cross-area transfer topic, and verifying records found on it.

Transfer steps and handover items travel on ``<ns>.transfers`` in the ordinary signed
envelope (``docs/envelope.md``), keyed by the subject reference so one case's steps
stay in order. The envelope's area is the area the case is moving from; the topic
binding check accepts this topic for any of the 42 areas instead of an area topic.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from broker.agreements import lawful_basis_for
from broker.areas import all_areas
from broker.crypto.envelope import Recipient, ViewToSeal, seal
from broker.gateway.agency import AgencyContext
from broker.gateway.verification import EnvelopeVerifier
from schemas.common import Classification, ViewKind, format_timestamp
from schemas.directory import AgencyEntry
from schemas.envelope import EnvelopeHeader

HANDOVER_PURPOSE = "area transfer handover "
STEP_PURPOSE = "area transfer "


def transfer_verifier(ctx: AgencyContext) -> EnvelopeVerifier:
    topic = ctx.topics.transfers
    return EnvelopeVerifier(
        directory=ctx.directory,
        allowed_suites=ctx.settings.allowed_suites,
        clock_skew=timedelta(seconds=ctx.settings.clock_skew_seconds),
        replay_window=timedelta(seconds=ctx.settings.replay_window_seconds),
        topic_in_area=lambda t, area: t == topic and area in all_areas(),
    )


def lawful_basis_text(entry: AgencyEntry) -> str:
    party = lawful_basis_for(entry)
    return f"{party.lawful_basis.value}: {party.basis_detail}"[:200]


def seal_for_transfers(
    ctx: AgencyContext,
    *,
    now: datetime,
    area: str,
    message_type: str,
    schema_version: int,
    subject_ref: str,
    purpose: str,
    isa: tuple[str, int],
    views: Sequence[tuple[ViewKind, bytes, Sequence[str]]],
) -> tuple[str, bytes]:
    """One envelope on the transfer topic: (message id, record value)."""
    suite = ctx.suite
    signers = ctx.keys.signers_for(suite.signature_keys)
    message_id = str(uuid.uuid4())
    header = EnvelopeHeader(
        envelope_version=1,
        suite=suite.name,
        message_id=message_id,
        created_at=format_timestamp(now),
        sender=ctx.agency_id,
        sender_keys=tuple(k.key_id for k in signers),
        area=area,
        topic=ctx.topics.transfers,
        message_type=message_type,
        schema_version=schema_version,
        subject_ref=subject_ref,
        isa_id=isa[0],
        isa_version=isa[1],
        purpose=purpose[:200],
        lawful_basis=lawful_basis_text(ctx.entry),
        classification=Classification.OFFICIAL_SENSITIVE,
    )
    to_seal = [
        ViewToSeal(
            kind,
            plaintext,
            tuple(
                Recipient(a, ctx.directory.encryption_key(a, suite=suite, at=now)) for a in agencies
            ),
        )
        for kind, plaintext, agencies in sorted(views, key=lambda v: -v[0].richness)
        if agencies
    ]
    return message_id, seal(header=header, views=to_seal, signers=signers, suite=suite)
