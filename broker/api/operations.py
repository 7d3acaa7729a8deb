"""What each agency endpoint does, apart from HTTP: submit (at most once per idempotency
key), list, fetch, acknowledge, open, and the deliveries of what was sent. The security
lives in the gateway; this module maps records, pages the inbox and makes sure a
refusal that touches personal data is audited."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.api.auth import NotFound
from broker.api.backend import ServedAgency, flush
from broker.api.idempotency import amend_answer, answer_again, fingerprint
from broker.api.models import (
    Acknowledged,
    Deliveries,
    Delivery,
    Disclosure,
    InboxMessage,
    InboxPage,
    Opened,
    SubmitRecord,
    Submitted,
)
from broker.errors import SchemaError
from broker.gateway.publish import PublishResult
from broker.gateway.requests import Answered, KeyTaken
from broker.gateway.store import AgencyStore, InboxItem, InboxPosition
from broker.gateway.tracking import LEDGER
from schemas.audit import Operation
from schemas.common import ViewKind, format_timestamp
from schemas.messages import MessageBody

# A cursor is base64url of a small JSON pair; anything longer is not one of ours.
MAX_CURSOR_CHARS = 400


@dataclass(frozen=True)
class Submission:
    """The answer to a submission, and whether it is the answer to an earlier request
    with the same idempotency key, given again."""

    submitted: Submitted
    replayed: bool = False


def map_record(served: ServedAgency, record: Mapping[str, Any]) -> MessageBody:
    """The canonical message the agency's adapter makes of ``record``. Raises
    ``SchemaError``: the adapter's own, or ``adapter.record-invalid`` for any
    ``ValueError``, ``LookupError``, ``TypeError`` or ``AttributeError`` it trips over."""
    try:
        return served.adapter.to_canonical(record)
    except SchemaError:
        raise
    # An adapter is a mapping over untrusted input; whatever it trips over, the record
    # is what is wrong, and the caller must hear so with a 4xx, not a 500.
    except (ValueError, LookupError, TypeError, AttributeError) as exc:
        raise SchemaError(
            f"{served.adapter.system} record could not be mapped: {type(exc).__name__}",
            code="adapter.record-invalid",
        ) from None


async def submit(
    served: ServedAgency,
    request: SubmitRecord,
    *,
    user: str,
    person: str | None = None,
    key: str | None = None,
) -> Submission:
    """Map ``request.record``, publish it as ``user`` (whom the audit names) for ``person``
    (the named user it is made for, if any: part of what an idempotency key stands for), and
    relay the outbox whether or not it was refused; returns what was published, ``relayed``
    false if the broker did not answer (never ``TransportError``). With an idempotency
    ``key``, a request answered under it already gets that answer again (``replayed``) and
    publishes nothing; the answer to a new one is remembered in the transaction that queues
    it, so two requests with one key never both publish. Raises ``SchemaError`` for a record
    that cannot be mapped (audited as a refused collection) and
    ``request.idempotency-key-reused`` for a key answered for another request, and the
    publisher's errors (see ``Publisher.publish``): a refusal is not remembered, so a retry
    is judged again."""
    gateway = served.gateway
    ctx = gateway.ctx
    asked = fingerprint(request, person) if key is not None else ""
    if key is not None:
        answered = ctx.store.requests.find(served.agency_id, key, now=ctx.clock())
        if answered is not None:
            return _again(answered, asked)
    try:
        hook = _remembering(served, key, asked) if key is not None else None
        result = await _publish(served, request, user, hook)
    except KeyTaken as taken:
        # Another request with this key committed first: this one's publication rolled back.
        return _again(taken.answered, asked)
    finally:
        # Refusals were audited in the same transaction as the decision; send them too.
        relayed = await flush(gateway)
    submitted = _submitted(result, relayed=relayed)
    if key is not None and relayed:
        amend_answer(ctx.store, served.agency_id, key, submitted, message_id=submitted.message_id)
    return Submission(submitted)


def _remembering(served: ServedAgency, key: str, asked: str) -> Callable[[PublishResult], None]:
    """The publisher's ``on_queued`` for a request with ``key`` and fingerprint ``asked``:
    its answer remembered in the transaction that queues the publication (raising
    ``KeyTaken`` there if another request took the key first)."""
    ctx = served.gateway.ctx

    def remember(result: PublishResult) -> None:
        answer = _submitted(result, relayed=False).model_dump_json()
        ctx.store.requests.remember(
            served.agency_id, key, fingerprint=asked, answer=answer, now=ctx.clock()
        )

    return remember


def _submitted(result: PublishResult, *, relayed: bool) -> Submitted:
    return Submitted(
        message_id=result.message_id,
        message_type=result.message_type,
        subject_ref=result.subject_ref,
        disclosures=[Disclosure(agency=a, view=v) for a, v in result.disclosures],
        topics=list(result.topics),
        relayed=relayed,
    )


def _again(answered: Answered, asked: str) -> Submission:
    """The answer remembered for a key, for a request with fingerprint ``asked``."""
    answer = answer_again(answered, asked)
    return Submission(Submitted.model_validate_json(answer), replayed=True)


async def _publish(
    served: ServedAgency,
    request: SubmitRecord,
    user: str,
    on_queued: Callable[[PublishResult], None] | None,
) -> PublishResult:
    ctx = served.gateway.ctx
    try:
        message = map_record(served, request.record)
    except SchemaError as exc:
        # A record the agency system sent us, with personal data in it, was not taken:
        # a refused collection, recorded without its content.
        ctx.audit.refusal(Operation.PUBLISH, exc, user=user, purpose=request.purpose)
        raise
    # The publisher audits its own refusals (agreement, area, keys); the caller relays.
    return await served.gateway.publish(
        message, purpose=request.purpose, user=user, on_queued=on_queued, relay=False
    )


def _metadata(item: InboxItem) -> InboxMessage:
    return InboxMessage(
        message_id=item.message_id,
        sender=item.sender,
        message_type=item.message_type,
        subject_ref=item.subject_ref,
        view=ViewKind(item.view),
        isa_id=item.isa_id,
        isa_version=item.isa_version,
        topic=item.topic,
        created_at=item.created_at,
        received_at=item.received_at,
        acknowledged_at=item.acknowledged_at,
        acknowledged_by=item.acknowledged_by,
    )


def encode_cursor(item: InboxItem) -> str:
    """The inbox cursor for the page after ``item``: unpadded base64url of
    ``[received_at, message_id, sender]`` (two senders' messages may share an id)."""
    raw = json.dumps([item.received_at, item.message_id, item.sender]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> InboxPosition:
    """The position of a cursor from ``encode_cursor``, or of one given before the
    sender was in it (``[received_at, message_id]``: after every sender's message with
    that id, as it meant then). Raises ``SchemaError`` (``request.invalid-cursor``) for
    anything else, including a cursor longer than ``MAX_CURSOR_CHARS``."""
    parts: object = None
    if len(cursor) <= MAX_CURSOR_CHARS:
        try:
            parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except (ValueError, binascii.Error):
            parts = None
    match parts:
        case [str(received_at), str(message_id), str(sender)]:
            return received_at, message_id, sender
        case [str(received_at), str(message_id)]:
            return received_at, message_id
    raise SchemaError("cursor is not one this API returned", code="request.invalid-cursor")


def inbox(
    served: ServedAgency, *, cursor: str | None, unacknowledged: bool, limit: int
) -> InboxPage:
    """Up to ``limit`` items' metadata in delivery order, after ``cursor`` (from the start
    if None), only those not acknowledged if ``unacknowledged``; ``next_cursor`` is set
    when more follow. Raises ``SchemaError`` (``request.invalid-cursor``) for a cursor
    this API did not give."""
    after = decode_cursor(cursor) if cursor is not None else None
    # One more than asked tells whether there is a next page without a count query.
    items = served.gateway.ctx.store.inbox_page(
        after=after, unacknowledged_only=unacknowledged, limit=limit + 1
    )
    page = items[:limit]
    more = len(items) > limit
    return InboxPage(
        items=[_metadata(i) for i in page],
        next_cursor=encode_cursor(page[-1]) if more and page else None,
    )


def _item(served: ServedAgency, message_id: str, sender: str | None) -> InboxItem:
    """The held message ``message_id`` of ``sender`` (None: of whichever one sender's
    message has that id). Raises ``NotFound`` or ``AmbiguousMessage``."""
    item = served.gateway.ctx.store.inbox_item(message_id, sender=sender)
    if item is None:
        whose = "" if sender is None else f" from {sender}"
        raise NotFound(f"no message {message_id}{whose} in {served.agency_id}'s inbox")
    return item


def message(served: ServedAgency, message_id: str, *, sender: str | None = None) -> InboxMessage:
    """One held message's metadata, without opening it: ``sender``'s message with that id,
    or without a sender the one message held with it. Raises ``NotFound``
    (``api.not-found``) if the inbox holds no such message, ``AmbiguousMessage``
    (``inbox.ambiguous``) if no sender is given and several senders' messages have it."""
    return _metadata(_item(served, message_id, sender))


def acknowledge(
    served: ServedAgency, message_id: str, *, user: str, sender: str | None = None
) -> Acknowledged:
    """Mark a held message (chosen as ``message`` chooses) acknowledged by ``user``;
    returns the time of its first acknowledgement and who made it (idempotent:
    acknowledging twice keeps the first). Raises as ``message`` does."""
    ctx = served.gateway.ctx
    item = _item(served, message_id, sender)
    if item.acknowledged_at is not None:
        return Acknowledged(
            message_id=message_id,
            sender=item.sender,
            acknowledged_at=item.acknowledged_at,
            acknowledged_by=item.acknowledged_by,
        )
    at = format_timestamp(ctx.clock())
    # By the sender found: another sender's message with this id, arriving meanwhile, is
    # not the one meant.
    ctx.store.acknowledge(message_id, at, by=user, sender=item.sender)
    # Another acknowledgement may have come first: the stored one is the answer.
    held = _item(served, message_id, item.sender)
    return Acknowledged(
        message_id=message_id,
        sender=item.sender,
        acknowledged_at=held.acknowledged_at or at,
        acknowledged_by=held.acknowledged_by,
    )


async def open_message(
    served: ServedAgency,
    message_id: str,
    *,
    user: str,
    justification: str | None,
    sender: str | None = None,
) -> Opened:
    """Open ``message_id`` (chosen as ``message`` chooses, by ``sender``) for ``user``
    (``AgencyGateway.consult``: justified and audited) and map it to the agency system's
    format; returns it. Raises what ``consult`` raises: ``PolicyDenied``
    (``consult.justification-missing``), ``SchemaError`` (``consult.not-found``),
    ``AmbiguousMessage`` (``inbox.ambiguous``), the error of a check the stored message
    no longer passes, or ``TransportError`` if the audit record cannot be relayed at
    once."""
    # The gateway checks the justification and audits the consultation, or the refusal.
    opened = await served.gateway.consult(
        message_id, user=user, justification=justification or "", sender=sender
    )
    header = opened.verified.header
    return Opened(
        message_id=header.message_id,
        message_type=header.message_type,
        sender=header.sender,
        view=opened.view,
        record=served.adapter.from_canonical(opened.body, opened.view),
    )


def deliveries(store: AgencyStore, agency_id: str, message_id: str) -> Deliveries:
    """How the delivery of ``message_id``, sent by ``agency_id`` (whose ``store`` this
    is), stands at each of its recipients, by recipient; the ledger's rows (for audit
    events) are not deliveries and are left out. Raises ``NotFound`` (``api.not-found``)
    if this agency tracks no such message: it did not send it."""
    rows = [r for r in store.tracking.of_message(message_id) if r.recipient != LEDGER]
    if not rows:
        raise NotFound(f"{agency_id} has sent no message {message_id}")
    # Each row's fields by name: the model declares the ones shown, and reads only those.
    return Deliveries(
        message_id=message_id,
        recipients=[Delivery.model_validate(r, from_attributes=True) for r in rows],
    )
