"""The agency system's endpoints. Thin: authentication (and the idempotency key) by
dependency, the work in ``operations``, errors mapped in ``errors``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from broker.api import operations
from broker.api.auth import ActorDep, AgencyDep
from broker.api.errors import documented
from broker.api.idempotency import REPLAYED, REPLAYED_HEADER, IdempotencyKey
from broker.api.models import (
    Acknowledged,
    Deliveries,
    InboxMessage,
    InboxPage,
    Opened,
    OpenRequest,
    SubmitRecord,
    Submitted,
)
from broker.api.records import records_router
from schemas.common import AGENCY_ID_PATTERN, UUID_PATTERN

MessageId = Annotated[str, Path(pattern=UUID_PATTERN, description="the message id")]
# A message is its sender's message id: two agencies' messages may share an id.
Sender = Annotated[
    str | None,
    Query(
        pattern=AGENCY_ID_PATTERN,
        max_length=96,
        description="the agency that sent it; needed only when messages from several "
        "senders share the id (409 inbox.ambiguous names them)",
    ),
]
MAX_PAGE = 500

AUTH = (401, 403)


def agency_router() -> APIRouter:
    """The agency system's routes under ``/v1/agencies/{agency_id}``, each behind
    ``require_agency``. Returns the router; raises nothing of its own.

    The route functions have a ``summary=`` and comments, not docstrings: FastAPI would
    add a docstring to docs/openapi.json as the operation's description. Their errors
    come from ``require_agency`` and ``operations``, answered by the error table."""
    router = APIRouter(prefix="/v1/agencies/{agency_id}", tags=["agency"])

    # ``operations.submit``: map, publish (errors audited as refusals), relay if possible;
    # at most once per idempotency key (400 for a malformed one, 422 for one reused).
    @router.post(
        "/records",
        status_code=201,
        response_model=Submitted,
        responses=documented(*AUTH, 400, 404, 422, 503) | REPLAYED,
        summary="Submit a record in the agency's own format; it is mapped and published",
    )
    async def submit_record(
        served: AgencyDep,
        who: ActorDep,
        body: SubmitRecord,
        key: IdempotencyKey,
        response: Response,
    ) -> Submitted:
        submission = await operations.submit(
            served, body, user=who.audit_name, person=who.on_behalf_of, key=key
        )
        if submission.replayed:
            response.headers[REPLAYED_HEADER] = "true"
        return submission.submitted

    # ``operations.inbox``: 422 (``request.invalid-cursor``) for a cursor we did not give.
    @router.get(
        "/inbox",
        response_model=InboxPage,
        responses=documented(*AUTH, 404, 422, 503),
        summary="List delivered messages (metadata only), oldest first, paged",
    )
    async def list_inbox(
        served: AgencyDep,
        unacknowledged: Annotated[bool, Query(description="only those not acknowledged")] = False,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        cursor: Annotated[
            str | None, Query(max_length=operations.MAX_CURSOR_CHARS, description="next_cursor")
        ] = None,
    ) -> InboxPage:
        return operations.inbox(served, cursor=cursor, unacknowledged=unacknowledged, limit=limit)

    # ``operations.message``: 404 (``api.not-found``) if the inbox holds no such message,
    # 409 (``inbox.ambiguous``) if no sender is given and several senders' messages have it.
    @router.get(
        "/inbox/{message_id}",
        response_model=InboxMessage,
        responses=documented(*AUTH, 404, 409, 422, 503),
        summary="One delivered message's metadata, without its content",
    )
    async def get_message(
        served: AgencyDep, message_id: MessageId, sender: Sender = None
    ) -> InboxMessage:
        return operations.message(served, message_id, sender=sender)

    # ``operations.acknowledge``: 404 and 409 as ``get_message``.
    @router.post(
        "/inbox/{message_id}/ack",
        response_model=Acknowledged,
        responses=documented(*AUTH, 404, 409, 422, 503),
        summary="Acknowledge a delivered message (idempotent)",
    )
    async def acknowledge(
        served: AgencyDep, who: ActorDep, message_id: MessageId, sender: Sender = None
    ) -> Acknowledged:
        return operations.acknowledge(served, message_id, user=who.audit_name, sender=sender)

    # ``operations.open_message``: the gateway's consultation, every refusal audited. A stored
    # message that no longer passes is a 409 (keys, signatures) or a 403 (the agreement);
    # 404 and 409 (``inbox.ambiguous``) as ``get_message``.
    @router.post(
        "/inbox/{message_id}/open",
        response_model=Opened,
        responses=documented(*AUTH, 404, 409, 422, 503),
        summary="Open (consult) a message: needs a justification; audited with who opened it",
    )
    async def open_message(
        served: AgencyDep,
        who: ActorDep,
        message_id: MessageId,
        body: OpenRequest,
        sender: Sender = None,
    ) -> Opened:
        return await operations.open_message(
            served,
            message_id,
            user=who.audit_name,
            justification=body.justification,
            sender=sender,
        )

    # ``operations.deliveries``: 404 (``api.not-found``) for a message this agency did not
    # send; from the agency's own store, the ledger's rows left out.
    @router.get(
        "/messages/{message_id}/deliveries",
        summary="How a message this agency sent stands at each recipient",
        response_model=Deliveries,
        responses=documented(*AUTH, 404, 422, 503),
    )
    async def deliveries(served: AgencyDep, message_id: MessageId) -> Deliveries:
        return operations.deliveries(served.gateway.ctx.store, served.agency_id, message_id)

    router.include_router(records_router())  # correction and erasure (broker.api.records)
    return router
