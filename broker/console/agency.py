"""The pages of an agency's users: inbox, a message opened with a reason, sent
messages and their delivery, submitting a record.

For the roles ``agency-user`` and ``agency-admin`` only (403 to the others). The agency
is always the signed-in user's own (``SignedIn.agency``): no URL or form names it, so
no address reaches another agency's inbox. The work is the HTTP API's, called the same
way (``broker.api.operations`` and the gateway's ``consult``), never done again here.

- ``GET /inbox``: the messages held for the agency, in delivery order (the API's), a
  page at a time by the store's keyset cursor; filtered by message type, not yet
  acknowledged and received since a date: values that say nothing about a person, so
  a GET form (no subject or PNC id ever goes in a URL).
- ``GET /inbox/{sender}/{message_id}``: the message's header (type, sender, received,
  view; never its content) and a form asking why it is opened (DPA 2018 s62).
- ``POST /inbox/{sender}/{message_id}/open``: ``AgencyGateway.consult`` with the user
  and the justification: audited as a consultation, or refused and audited as a
  refusal (422, the form again with the gateway's reason). The content, in the view the
  agency holds, is only ever in this POST's answer.
- ``POST /inbox/{sender}/{message_id}/acknowledge``: ``operations.acknowledge``.
- ``GET /sent``: the messages this agency sent to other agencies, newest first, each
  with its type, when it was sent and each recipient's delivery state, a page at a time
  (``?before=``: the tracking table's keyset, ``Tracking.sent_page``); audit events,
  which the agency also tracks until the ledger holds them, are not among them. With
  ``?message_id=`` (an id, not personal data), that one message's deliveries in detail
  (``operations.deliveries``), whose page each listed message links to.
- ``GET /submit``, ``POST /submit``: a record in the agency system's export format, as
  JSON, and its purpose, published by ``operations.submit`` (once per form, by an
  idempotency key in the form); a refusal shows its reason code and detail (422).
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

import enum
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from broker.api import operations
from broker.api.auth import NotFound
from broker.api.backend import ServedAgency
from broker.api.errors import status_for
from broker.api.models import InboxMessage, SubmitRecord
from broker.console.context import PageContext
from broker.console.signing_in import SignedIn, console_path, text_field
from broker.errors import MappaError
from broker.gateway.justification import MIN_JUSTIFICATION_CHARS
from broker.gateway.tracking import MAX_POSITION, SentPage
from broker.identity.roles import Role
from schemas.common import AGENCY_ID_PATTERN, UUID_PATTERN, parse_timestamp
from schemas.messages import CATALOGUE

ROLES = (Role.AGENCY_USER, Role.AGENCY_ADMIN)
_ITEMS = [("Inbox", "/inbox"), ("Sent messages", "/sent"), ("Submit a record", "/submit")]
# This group's items in the service navigation, per role: (text, path under /console).
NAVIGATION: dict[Role, list[tuple[str, str]]] = {role: list(_ITEMS) for role in ROLES}

# Items per inbox page, and how many of the store's pages one page may read through to
# find them when a filter leaves some out.
PAGE_SIZE = 25
MAX_SCANS = 8
# Messages per page of the sent list.
SENT_PAGE_SIZE = 25
# What a form or a query may hold before it is looked at.
MAX_RECORD_CHARS = 512 * 1024
MAX_PURPOSE_CHARS = 200
MAX_CURSOR_CHARS = operations.MAX_CURSOR_CHARS

_SENDER = re.compile(AGENCY_ID_PATTERN)
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_MESSAGE_ID = re.compile(UUID_PATTERN)
# An idempotency key of a submission form: the UUID the form was given.
_FORM_KEY = _MESSAGE_ID

# Words whose capitals a humanised field name keeps.
_ACRONYMS = {
    "pnc": "PNC",
    "id": "ID",
    "crn": "CRN",
    "visor": "ViSOR",
    "mappa": "MAPPA",
    "isa": "ISA",
    "rosh": "RoSH",
    "sfo": "SFO",
    "rso": "RSO",
    "uk": "UK",
}


def humanise(name: str) -> str:
    """A field or type name as words: ``risk_of_serious_harm`` is "Risk of serious
    harm", ``pnc_id`` "PNC ID", ``risk-assessment`` "Risk assessment"."""
    spaced = re.sub(r"(?<=[A-Za-z])(?=[0-9])", " ", name)
    words = [w for w in re.split(r"[_\-\s]+", spaced) if w]
    said = [_ACRONYMS.get(w.lower(), w.lower()) for w in words]
    if said and said[0].islower():
        said[0] = said[0].capitalize()
    return " ".join(said)


MESSAGE_TYPES = sorted((name, humanise(name)) for name in CATALOGUE)


def when(timestamp: str | None) -> str:
    """A stored timestamp as people read it (UTC): "23 November 2026 at 11:40"."""
    if not timestamp:
        return ""
    try:
        at = parse_timestamp(timestamp)
    except ValueError:
        return timestamp
    return f"{at.day} {at:%B %Y} at {at:%H:%M}"


# -- the content of an opened message, as nested rows -----------------------------------


@dataclass(frozen=True)
class Node:
    """A value laid out: ``text``, a list of ``items``, or ``rows`` of (label, value)."""

    kind: str
    text: str = ""
    items: tuple["Node", ...] = ()
    rows: tuple[tuple[str, "Node"], ...] = ()


def _date_text(value: date) -> str:
    if isinstance(value, datetime):
        return f"{value.day} {value:%B %Y} at {value:%H:%M}"
    return f"{value.day} {value:%B %Y}"


def _text(value: Any) -> str:
    """A scalar as people read it: enums by name, dates in words."""
    said: str
    if value is None:
        said = "Not recorded"
    elif isinstance(value, bool):
        said = "Yes" if value else "No"
    elif isinstance(value, enum.IntEnum):
        said = f"{value.value}: {humanise(value.name)}"
    elif isinstance(value, enum.Enum):
        said = humanise(str(value.value))
    elif isinstance(value, date):
        said = _date_text(value)
    elif isinstance(value, str) and _ISO_DATE.match(value):
        try:
            said = _date_text(date.fromisoformat(value))
        except ValueError:
            said = value
    else:
        said = str(value)
    return said


def layout(value: Any) -> Node:
    """``value`` (a model, a mapping, a sequence or a scalar) as nested rows, fields in
    the order the model declares them. Only what ``value`` holds is laid out: an opened
    message's view is what it holds, nothing is left out here."""
    if isinstance(value, BaseModel):
        return layout({name: getattr(value, name) for name in type(value).model_fields})
    if isinstance(value, dict):
        return Node("rows", rows=tuple((humanise(str(k)), layout(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        if not value:
            return Node("text", text="None")
        return Node("list", items=tuple(layout(v) for v in value))
    return Node("text", text=_text(value))


# Shown above an opened message's content, not among its rows.
_HEADER_FIELDS = ("message_type", "schema_version")


def content_rows(body: BaseModel) -> Node:
    """An opened message's body (its view's model) as rows, its type and version apart."""
    fields = {n: getattr(body, n) for n in type(body).model_fields if n not in _HEADER_FIELDS}
    return layout(fields)


# -- the pages ----------------------------------------------------------------------------


def _served(ctx: PageContext, who: SignedIn) -> ServedAgency:
    """The signed-in user's own agency, as this server serves it (404 if it does not)."""
    who.require(*ROLES)
    served = ctx.backend().agencies.get(who.agency)
    if served is None:
        raise HTTPException(404, "this server does not serve your agency")
    return served


def _message_key(sender: str, message_id: str) -> None:
    """A 404 for a path that cannot name a held message."""
    if not _SENDER.match(sender) or len(sender) > 96 or not _MESSAGE_ID.match(message_id):
        raise HTTPException(404, "no such message")


def _held(served: ServedAgency, sender: str, message_id: str) -> InboxMessage:
    """The held message's metadata (``operations.message``); a 404 if none is held."""
    _message_key(sender, message_id)
    try:
        return operations.message(served, message_id, sender=sender)
    except NotFound:
        raise HTTPException(404, "no such message") from None


def _sent_page(served: ServedAgency, before_text: str) -> SentPage:
    """The page of the agency's sent list that ``?before=`` asks for (empty: the newest).
    Raises ``HTTPException`` 400 for a value that is no position of this list."""
    before = None
    if before_text:
        # At most 19 digits: the largest outbox position, and nothing costly to parse.
        if not before_text.isdigit() or len(before_text) > 19:
            raise HTTPException(400, "not a page of this list")
        before = int(before_text)
        if not 1 <= before <= MAX_POSITION:
            raise HTTPException(400, "not a page of this list")
    return served.gateway.ctx.store.tracking.sent_page(before=before, limit=SENT_PAGE_SIZE)


def _since(day: str, month: str, year: str) -> tuple[date | None, str | None]:
    """The "received since" date of the filter form, or the error to show."""
    parts = [day.strip(), month.strip(), year.strip()]
    if not any(parts):
        return None, None
    try:
        d, m, y = (int(p) for p in parts)
        if not 1900 <= y <= 2200:
            raise ValueError("year out of range")  # noqa: TRY301
        return date(y, m, d), None
    except ValueError:
        return None, "Received since must be a real date, for example 27 3 2026"


@dataclass
class InboxFilters:
    """The inbox's GET form: nothing in it says anything about a person."""

    kind: str
    unacknowledged: bool
    since_parts: dict[str, str]
    since: date | None
    cursor: str | None
    errors: list[dict[str, str]]

    @classmethod
    def of(cls, query: Mapping[str, str]) -> "InboxFilters":
        """The filters a query asks for; a value that is not one is left out and said
        in ``errors``. A cursor too long to be ours is a 400."""
        errors: list[dict[str, str]] = []
        kind = query.get("type", "")
        if kind and kind not in CATALOGUE:
            errors.append({"text": "Select a message type from the list", "href": "#type"})
            kind = ""
        parts = {p: query.get(f"since-{p}", "")[:4] for p in ("day", "month", "year")}
        since, problem = _since(parts["day"], parts["month"], parts["year"])
        if problem:
            errors.append({"text": problem, "href": "#since-day"})
        cursor = query.get("cursor") or None
        if cursor is not None and len(cursor) > MAX_CURSOR_CHARS:
            raise HTTPException(400, "not a page of this inbox")
        unacknowledged = query.get("unacknowledged") == "yes"
        return cls(kind, unacknowledged, parts, since, cursor, errors)

    @property
    def shown(self) -> dict[str, str]:
        """The filters in force, as the form's fields (for the next page's link)."""
        fields = {"type": self.kind, "unacknowledged": "yes" if self.unacknowledged else ""}
        if self.since is not None:
            fields |= {f"since-{p}": v for p, v in self.since_parts.items()}
        return {k: v for k, v in fields.items() if v}

    @property
    def filtered(self) -> bool:
        return bool(self.kind or self.unacknowledged or self.since or self.cursor)

    def keeps(self, item: InboxMessage) -> bool:
        return (not self.kind or item.message_type == self.kind) and (
            self.since is None or parse_timestamp(item.received_at).date() >= self.since
        )


def _matching(served: ServedAgency, asked: InboxFilters) -> tuple[list[InboxMessage], str | None]:
    """A page of the items ``asked`` keeps, in delivery order, read through the store's
    pages (``operations.inbox``, its keyset cursor) until ``PAGE_SIZE`` are found or
    ``MAX_SCANS`` pages are read; and the cursor after the last one read (None: the end)."""
    items: list[InboxMessage] = []
    cursor = asked.cursor
    for _ in range(MAX_SCANS):
        page = operations.inbox(
            served, cursor=cursor, unacknowledged=asked.unacknowledged, limit=PAGE_SIZE
        )
        items += [i for i in page.items if asked.keeps(i)]
        cursor = page.next_cursor
        if cursor is None or len(items) >= PAGE_SIZE:
            break
    return items, cursor


def agency_pages(ctx: PageContext) -> APIRouter:
    """The agency pages over ``ctx``. Returns the router; its routes raise
    ``HTTPException`` (a GOV.UK error page) or a ``MappaError`` the app answers as a page
    at its API status (a store busy: 503), never a traceback."""
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
    _inbox_routes(router, ctx)
    _sending_routes(router, ctx)
    return router


def _inbox_routes(router: APIRouter, ctx: PageContext) -> None:
    """The inbox, a message's page, opening and acknowledging it."""
    SignedInDep = Annotated[SignedIn, Depends(ctx.signed_in)]
    FormDep = Annotated[tuple[SignedIn, FormData], Depends(ctx.checked_form)]

    # Every route is ``async``: an agency's store is used on the loop's thread only.

    @router.get("/inbox")
    async def inbox(request: Request, who: SignedInDep) -> HTMLResponse:
        served = _served(ctx, who)
        asked = InboxFilters.of(request.query_params)
        items, next_cursor = _matching(served, asked)
        more = asked.shown | {"cursor": next_cursor or ""}
        return ctx.page(
            request,
            "agency/inbox.html",
            who,
            status_code=422 if asked.errors else 200,
            items=items,
            when=when,
            humanise=humanise,
            message_types=MESSAGE_TYPES,
            filters=asked.shown,
            since_parts=asked.since_parts,
            errors=asked.errors,
            filtered=asked.filtered,
            next_query=more if next_cursor else None,
        )

    def message_page(
        request: Request,
        who: SignedIn,
        held: InboxMessage,
        *,
        status_code: int = 200,
        error: str | None = None,
        justification: str = "",
    ) -> HTMLResponse:
        return ctx.page(
            request,
            "agency/message.html",
            who,
            status_code=status_code,
            message=held,
            when=when,
            humanise=humanise,
            error=error,
            justification=justification,
            min_chars=MIN_JUSTIFICATION_CHARS,
        )

    @router.get("/inbox/{sender}/{message_id}")
    async def message(
        request: Request, sender: str, message_id: str, who: SignedInDep
    ) -> HTMLResponse:
        held = _held(_served(ctx, who), sender, message_id)
        return message_page(request, who, held)

    @router.post("/inbox/{sender}/{message_id}/open")
    async def open_message(
        request: Request, sender: str, message_id: str, checked: FormDep
    ) -> HTMLResponse:
        who, form = checked
        served = _served(ctx, who)
        _message_key(sender, message_id)
        justification = text_field(form, "justification")
        try:
            # The API's open: the gateway judges the justification and audits the
            # consultation, or the refusal (a missing reason, no such message).
            opened = await served.gateway.consult(
                message_id, user=who.username, justification=justification, sender=sender
            )
        except MappaError as refused:
            if refused.code.startswith("consult.justification"):
                held = _held(served, sender, message_id)
                return message_page(
                    request,
                    who,
                    held,
                    status_code=422,
                    error=_justification_error(refused.code),
                    justification=justification,
                )
            if refused.code == "consult.not-found":
                raise HTTPException(404, "no such message") from None
            raise
        header = opened.verified.header
        held = _held(served, sender, message_id)
        page = ctx.page(
            request,
            "agency/opened.html",
            who,
            message=held,
            view=opened.view.value,
            type_name=humanise(header.message_type),
            content=content_rows(opened.body),
            when=when,
            humanise=humanise,
        )
        # Personal data: kept by no cache, the browser's back-forward one included.
        page.headers["Cache-Control"] = "no-store"
        return page

    @router.post("/inbox/{sender}/{message_id}/acknowledge")
    async def acknowledge(
        request: Request, sender: str, message_id: str, checked: FormDep
    ) -> Response:
        who, _form = checked
        served = _served(ctx, who)
        _message_key(sender, message_id)
        try:
            operations.acknowledge(served, message_id, user=who.username, sender=sender)
        except NotFound:
            raise HTTPException(404, "no such message") from None
        back = f"{console_path(request)}/inbox/{sender}/{message_id}"
        return RedirectResponse(back, status_code=303)


def _sending_routes(router: APIRouter, ctx: PageContext) -> None:
    """What the agency sent, and submitting a record."""
    SignedInDep = Annotated[SignedIn, Depends(ctx.signed_in)]
    FormDep = Annotated[tuple[SignedIn, FormData], Depends(ctx.checked_form)]

    @router.get("/sent")
    async def sent(request: Request, who: SignedInDep) -> HTMLResponse:
        served = _served(ctx, who)
        asked = request.query_params.get("message_id", "").strip().lower()[:64]
        before = request.query_params.get("before", "")
        error, deliveries = None, None
        status_code = 200
        # The list, unless one message is asked for (whose page shows it alone).
        listed = None if asked else _sent_page(served, before)
        if asked:
            if not _MESSAGE_ID.match(asked):
                error, status_code = "Enter a message ID in the form it was given", 422
            else:
                try:
                    deliveries = operations.deliveries(
                        served.gateway.ctx.store, served.agency_id, asked
                    )
                except NotFound:
                    error, status_code = "Your agency has sent no message with this ID", 404
        return ctx.page(
            request,
            "agency/sent.html",
            who,
            status_code=status_code,
            asked=asked,
            error=error,
            deliveries=deliveries,
            listed=listed,
            first_page=not before,
            when=when,
            humanise=humanise,
        )

    def submit_page(
        request: Request,
        who: SignedIn,
        *,
        status_code: int = 200,
        errors: list[dict[str, str]] | None = None,
        record: str = "",
        purpose: str = "",
        key: str | None = None,
    ) -> HTMLResponse:
        return ctx.page(
            request,
            "agency/submit.html",
            who,
            status_code=status_code,
            errors=errors or [],
            record=record,
            purpose=purpose,
            idempotency_key=key or str(uuid.uuid4()),
        )

    @router.get("/submit")
    async def submit_form(request: Request, who: SignedInDep) -> HTMLResponse:
        _served(ctx, who)
        return submit_page(request, who)

    @router.post("/submit")
    async def submit(request: Request, checked: FormDep) -> HTMLResponse:
        who, form = checked
        served = _served(ctx, who)
        text = text_field(form, "record")
        purpose = text_field(form, "purpose").strip()
        key = text_field(form, "idempotency_key").strip()
        key = key if _FORM_KEY.match(key) else str(uuid.uuid4())
        again = {"record": text, "purpose": purpose, "key": key}
        errors = _submission_errors(text, purpose)
        if errors:
            return submit_page(request, who, status_code=422, errors=errors, **again)
        try:
            request_body = SubmitRecord(record=json.loads(text), purpose=purpose)
        except ValidationError:
            errors = [{"text": "Enter a purpose of printable text", "href": "#purpose"}]
            return submit_page(request, who, status_code=422, errors=errors, **again)
        try:
            submission = await operations.submit(
                served, request_body, user=who.username, person=who.username, key=key
            )
        except MappaError as refused:
            if status_for(refused) >= 500:
                raise
            errors = [{"text": f"{refused.code}: {refused.reason}", "href": "#record"}]
            return submit_page(request, who, status_code=422, errors=errors, **again)
        return ctx.page(
            request,
            "agency/submitted.html",
            who,
            submitted=submission.submitted,
            type_name=humanise(submission.submitted.message_type),
        )


def _justification_error(code: str) -> str:
    if code == "consult.justification-missing":
        return (
            f"Enter why you need to open this record, in at least {MIN_JUSTIFICATION_CHARS} "
            "characters"
        )
    return "Enter why you need to open this record, in words"


def _submission_errors(text: str, purpose: str) -> list[dict[str, str]]:
    """What is wrong with the submission form before anything is mapped."""
    errors = []
    if not text.strip():
        errors.append({"text": "Enter the record, as exported by your system", "href": "#record"})
    elif len(text) > MAX_RECORD_CHARS:
        errors.append({"text": "The record must be smaller than 512 KB", "href": "#record"})
    else:
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            parsed = None
            errors.append({"text": "Enter the record as JSON", "href": "#record"})
        else:
            if not isinstance(parsed, dict):
                errors.append({"text": "Enter the record as one JSON object", "href": "#record"})
    if not purpose:
        errors.append({"text": "Enter why the record is shared", "href": "#purpose"})
    elif len(purpose) > MAX_PURPOSE_CHARS:
        errors.append({"text": "The purpose must be 200 characters or fewer", "href": "#purpose"})
    return errors
