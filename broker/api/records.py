"""Acts on records after publication, for agency systems over HTTP: correction and
retention erasure (``broker.gateway.lifecycle``), audited as DPA 2018 s62 alteration and
erasure. Mounted beside the agency's other routes, under ``/v1/agencies/{agency_id}``:

  POST .../messages/{message_id}/corrections   publish a correction of a message this
                                               agency sent (201; Idempotency-Key as a
                                               submission)
  POST .../inbox/erasures                      erase what the inbox holds past the
                                               agreement's retention, or list it
                                               (``dry_run``)

Who may act: the agency's own credential (``require_agency``); the audit names its
service account, or the user it acts for (``acting``). The gateway checks and audits
the rest: only the sender of a message may correct it (403 ``correction.not-sender``),
with a message of its type and subject (422 ``correction.mismatch``); a named message
must be in the inbox (404 ``api.not-found``) and past retention (403
``erasure.not-expired``). An erasure is idempotent by nature: asked again, it finds
nothing more to erase than what has expired since.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import Field, StrictBool

from broker.api.auth import ActorDep, AgencyDep, NotFound
from broker.api.backend import ServedAgency, flush
from broker.api.errors import documented
from broker.api.idempotency import (
    REPLAYED,
    REPLAYED_HEADER,
    IdempotencyKey,
    amend_answer,
    answer_again,
    digest_of,
)
from broker.api.models import ARMS_EXAMPLE, Disclosure, Input, LongText, Output, ShortText
from broker.api.operations import map_record
from broker.errors import MappaError, SchemaError
from broker.gateway.publish import PublishResult
from broker.gateway.requests import Answered, KeyTaken
from broker.gateway.store import InboxItem
from schemas.audit import Operation
from schemas.common import UUID_PATTERN, ViewKind

MessageId = Annotated[str, Path(pattern=UUID_PATTERN, description="the message id")]
# The most messages one erasure may name: a retention review's batch, and a bound on
# the work (and the audit events) of one request.
MAX_NAMED_ERASURES = 500
AUTH = (401, 403)
# The lifecycle's code for a named message the inbox does not hold: answered as a 404.
NOT_HELD = "erasure.not-held"

# Bodies below have comments, not docstrings: pydantic puts a model's docstring in its
# JSON schema, and so in docs/openapi.json.


# A correction: the corrected record in the agency system's own format, why it is
# shared, and why the original was wrong (the alteration's audit reason).
class CorrectionRequest(Input):
    record: dict[str, Any] = Field(
        description="The corrected record, in the agency system's own export format, as "
        "for a submission; it must map to a message of the original's type about the "
        "same subject.",
        json_schema_extra={"examples": [ARMS_EXAMPLE]},
    )
    purpose: ShortText = Field(description="why it is shared; goes into the envelope header")
    reason: LongText = Field(
        description="what was wrong and what changed; recorded in the alteration audit "
        "event, never sent to recipients"
    )


# What a correction published: as a submission, and the message it supersedes.
class Corrected(Output):
    message_id: str = Field(description="the correction's own message id")
    supersedes: str = Field(description="the message it corrects")
    message_type: str
    subject_ref: str = Field(description="keyed hash of the subject's PNC id")
    disclosures: list[Disclosure] = Field(description="each recipient agency and its view")
    topics: list[str]
    relayed: bool = Field(
        description="false if the broker was unreachable: the correction is durably "
        "queued and is sent by the next relay"
    )


# Which held messages to erase, or only to list.
class ErasureRequest(Input):
    # Strict: a JSON true or false, not "yes" or 1, for an act that deletes.
    dry_run: StrictBool = Field(
        default=False, description="list what would be erased, and erase nothing"
    )
    message_ids: list[Annotated[str, Field(pattern=UUID_PATTERN)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAMED_ERASURES,
        description="erase only these messages, each of which must be held and past "
        "retention (else nothing is erased); null: everything past retention",
    )


# One held message erased (or, on a dry run, that would be): metadata only.
class ErasedMessage(Output):
    message_id: str
    sender: str
    message_type: str
    subject_ref: str
    view: ViewKind
    received_at: str


# What an erasure did, under which retention rule.
class Erasure(Output):
    dry_run: bool
    retention_years: int = Field(description="the agreement's retention period")
    held_before: str = Field(description="messages received before this time are past it")
    erased: list[ErasedMessage]
    relayed: bool = Field(
        description="false if the broker was unreachable: the erasure records are durably "
        "queued for the ledger and go with the next relay (always true on a dry run)"
    )


def records_router() -> APIRouter:
    """The correction and erasure routes (module docstring), to be included in the
    agency router (which adds ``/v1/agencies/{agency_id}``). Returns the router; raises
    nothing of its own. The route functions have a ``summary=`` and no docstring:
    FastAPI would add one to docs/openapi.json."""
    router = APIRouter()

    # ``correct``: at most once per idempotency key, as a submission.
    @router.post(
        "/messages/{message_id}/corrections",
        status_code=201,
        response_model=Corrected,
        responses=documented(*AUTH, 400, 404, 422, 503) | REPLAYED,
        summary="Correct a message this agency sent: publish a record that supersedes it "
        "(audited as an alteration)",
    )
    async def correct_message(
        *,
        served: AgencyDep,
        who: ActorDep,
        message_id: MessageId,
        body: CorrectionRequest,
        key: IdempotencyKey,
        response: Response,
    ) -> Corrected:
        corrected, replayed = await correct(
            served, message_id, body, user=who.audit_name, person=who.on_behalf_of, key=key
        )
        if replayed:
            response.headers[REPLAYED_HEADER] = "true"
        return corrected

    @router.post(
        "/inbox/erasures",
        response_model=Erasure,
        responses=documented(*AUTH, 404, 409, 422, 503),
        summary="Erase the messages held past the agreement's retention period, or those "
        "named (each audited as an erasure); dry_run lists them only",
    )
    async def erase(served: AgencyDep, who: ActorDep, body: ErasureRequest) -> Erasure:
        return await erase_expired(served, body, user=who.audit_name)

    return router


def fingerprint(message_id: str, body: CorrectionRequest, person: str | None) -> str:
    """The SHA-256 (hex) of a correction request: what it corrects, its body and the
    person it is made for, as ``broker.api.idempotency.fingerprint`` makes a
    submission's (never equal to one: the superseded id is part of it)."""
    return digest_of(body.model_dump(mode="json") | {"person": person, "supersedes": message_id})


async def correct(
    served: ServedAgency,
    message_id: str,
    body: CorrectionRequest,
    *,
    user: str,
    person: str | None,
    key: str | None,
) -> tuple[Corrected, bool]:
    """Map ``body.record`` and publish it as a correction of ``message_id``
    (``Lifecycle.correct``) as ``user``, then relay; returns the answer and whether it
    is an earlier answer given again for ``key``. Raises ``SchemaError`` for a record
    that cannot be mapped (audited as a refused correction) or for a key used for
    another request (``request.idempotency-key-reused``), and what ``Lifecycle.correct``
    raises."""
    ctx = served.gateway.ctx
    asked = fingerprint(message_id, body, person) if key is not None else ""
    if key is not None:
        answered = ctx.store.requests.find(served.agency_id, key, now=ctx.clock())
        if answered is not None:
            return _again(answered, asked), True
    try:
        result = correct_record(
            served,
            message_id,
            body.record,
            purpose=body.purpose,
            user=user,
            reason=body.reason,
            on_queued=None if key is None else _remembering(served, message_id, key, asked),
        )
    except KeyTaken as taken:
        # Another request with this key committed first: this one rolled back.
        return _again(taken.answered, asked), True
    finally:
        relayed = await flush(served.gateway)
    corrected = _corrected(result, message_id, relayed=relayed)
    if key is not None and relayed:
        amend_answer(ctx.store, served.agency_id, key, corrected, message_id=corrected.message_id)
    return corrected, False


def correct_record(
    served: ServedAgency,
    message_id: str,
    record: Mapping[str, Any],
    *,
    purpose: str,
    user: str,
    reason: str,
    on_queued: Callable[[PublishResult], None] | None = None,
) -> PublishResult:
    """Map ``record`` (the agency system's format) with the agency's adapter and queue it
    as a correction of ``message_id`` (``Lifecycle.correct``, which audits it), as
    ``user``; returns the publication. Relays nothing (the caller does, or the
    gateway's next relay). Raises ``PolicyDenied`` (``correction.not-sender``) for a
    message this agency did not send, ``SchemaError`` for a record that cannot be mapped
    (both audited as a refused correction), and what ``Lifecycle.correct`` raises."""
    ctx = served.gateway.ctx
    try:
        # Whose message it is first: another agency's record is refused as such, however
        # its own adapter would read the body.
        served.gateway.lifecycle.original(message_id)
        message = map_record(served, record)
    except MappaError as exc:
        ctx.audit.refusal(
            Operation.CORRECT,
            exc,
            reason=f"correction of {message_id} refused: {exc.reason}",
            user=user,
            purpose=purpose,
        )
        raise
    return served.gateway.lifecycle.correct(
        message_id, message, purpose=purpose, user=user, reason=reason, on_queued=on_queued
    )


def _corrected(result: PublishResult, supersedes: str, *, relayed: bool) -> Corrected:
    return Corrected(
        message_id=result.message_id,
        supersedes=supersedes,
        message_type=result.message_type,
        subject_ref=result.subject_ref,
        disclosures=[Disclosure(agency=a, view=v) for a, v in result.disclosures],
        topics=list(result.topics),
        relayed=relayed,
    )


def _remembering(
    served: ServedAgency, supersedes: str, key: str, asked: str
) -> Callable[[PublishResult], None]:
    """The publisher's ``on_queued``: the answer remembered under ``key`` in the
    transaction that queues the correction (``KeyTaken`` if another request took it)."""
    ctx = served.gateway.ctx

    def remember(result: PublishResult) -> None:
        answer = _corrected(result, supersedes, relayed=False).model_dump_json()
        ctx.store.requests.remember(
            served.agency_id, key, fingerprint=asked, answer=answer, now=ctx.clock()
        )

    return remember


def _again(answered: Answered, asked: str) -> Corrected:
    # A submission's fingerprint never equals a correction's (``fingerprint``), so an
    # answer remembered for this fingerprint is a correction's.
    return Corrected.model_validate_json(answer_again(answered, asked))


def _erased(item: InboxItem) -> ErasedMessage:
    return ErasedMessage(
        message_id=item.message_id,
        sender=item.sender,
        message_type=item.message_type,
        subject_ref=item.subject_ref,
        view=ViewKind(item.view),
        received_at=item.received_at,
    )


async def erase_expired(served: ServedAgency, body: ErasureRequest, *, user: str) -> Erasure:
    """Erase (or on a dry run list) what ``served``'s inbox holds past retention, or the
    messages ``body`` names, as ``user``; then relay. Raises ``NotFound``
    (``api.not-found``) for a named message not held, and what
    ``Lifecycle.erase_expired`` raises (``erasure.not-expired``, ``inbox.ambiguous``);
    a dry run raises the same, unaudited, and erases nothing."""
    gateway = served.gateway
    lifecycle = gateway.lifecycle
    # One time for the rule and the act, so the answer states the cut-off applied.
    now = gateway.ctx.clock()
    relayed = True
    try:
        if body.dry_run:
            erased = lifecycle.expired(now=now, message_ids=body.message_ids)
        else:
            try:
                erased = lifecycle.erase_expired(now=now, user=user, message_ids=body.message_ids)
            finally:
                relayed = await flush(gateway)
    except SchemaError as exc:
        if exc.code == NOT_HELD:  # a 404, as for any other request about a message not held
            raise NotFound(exc.reason) from None
        raise
    return Erasure(
        dry_run=body.dry_run,
        retention_years=gateway.ctx.policy.agreement.retention.years,
        held_before=lifecycle.cutoff(now),
        erased=[_erased(i) for i in erased],
        relayed=relayed,
    )
