"""Sealing for the cross-area transfer topic, and verifying records found on it.

Transfer steps and handover items travel on ``<ns>.transfers`` in the ordinary signed
envelope (``docs/envelope.md``), keyed by the subject reference so one case's steps
stay in order. The envelope's area is the area the case is moving from; the topic
binding check accepts this topic for any of the 42 areas instead of an area topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from broker.agreements import lawful_basis_for
from broker.areas import all_areas
from broker.crypto.encoding import jcs
from broker.gateway.agency import AgencyContext
from broker.gateway.sealing import Sealed, ViewFor, seal_views
from broker.gateway.verification import EnvelopeVerifier
from schemas.common import Role, ViewKind
from schemas.directory import AgencyEntry
from schemas.transfer import TransferComplete, TransferControl

HANDOVER_PURPOSE = "area transfer handover "
STEP_PURPOSE = "area transfer "
# Who holds a transfer step in full: the co-ordinators and RA agencies of both areas.
CASE_HOLDERS = frozenset({Role.POLICE, Role.PROBATION, Role.PRISON, Role.COORDINATOR})


def transfer_verifier(ctx: AgencyContext) -> EnvelopeVerifier:
    """Checks 1-6 for the transfer topic: an envelope bound to it, for any known area."""
    topic = ctx.topics.transfers
    return EnvelopeVerifier(
        directory=ctx.directory,
        allowed_suites=ctx.settings.allowed_suites,
        clock_skew=timedelta(seconds=ctx.settings.clock_skew_seconds),
        replay_window=timedelta(seconds=ctx.settings.replay_window_seconds),
        topic_in_area=lambda t, area: t == topic and area in all_areas(),
        clock=ctx.clock,
    )


def lawful_basis_text(entry: AgencyEntry) -> str:
    """The agency's lawful basis for transfer traffic, as the header carries it."""
    party = lawful_basis_for(entry)
    return f"{party.lawful_basis.value}: {party.basis_detail}"[:200]


def step_views(ctx: AgencyContext, message: TransferControl) -> list[ViewFor]:
    """Who is told of a step, and how: the full step for the case holders of both areas
    (the sender too: it applies its own step when it comes back in order), and for a
    completion a summary for the receiving case team's other members who are parties to
    this agency's agreement (need to know)."""
    directory = ctx.directory
    full = sorted(
        {
            a.agency_id
            for area in (message.from_area, message.to_area)
            for a in directory.agencies(area=area, roles=CASE_HOLDERS)
        }
    )
    views = [ViewFor(ViewKind.FULL, jcs(message.model_dump(mode="json")), tuple(full))]
    if isinstance(message, TransferComplete):
        parties = {p.agency_id for p in ctx.policy.agreement.parties}
        told = sorted(
            a.agency_id
            for a in directory.agencies(area=message.to_area)
            if a.role not in CASE_HOLDERS
            and a.agency_id in parties
            and a.agency_id in message.case_team
        )
        summary = message.model_copy(update={"reason": "case transferred", "open_actions": ()})
        views.append(ViewFor(ViewKind.SUMMARY, jcs(summary.model_dump(mode="json")), tuple(told)))
    return views


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
    views: Sequence[ViewFor],
) -> Sealed:
    """One envelope on the transfer topic, bound to ``area`` (the area the case moves
    from, or a handed-over item's own area). Raises as ``seal_views``."""
    return seal_views(
        ctx,
        now=now,
        topic=ctx.topics.transfers,
        area=area,
        message_type=message_type,
        schema_version=schema_version,
        subject_ref=subject_ref,
        isa=isa,
        purpose=purpose,
        lawful_basis=lawful_basis_text(ctx.entry),
        views=views,
    )
