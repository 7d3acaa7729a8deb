"""The pages of information-governance officers: the audit ledger, never message
content. Every route is for ``Role.IG_OFFICER`` only (a 403 page for anyone else), and
reads the running server's ``LedgerReader`` (``ctx.backend().ledger``) through the same
methods the governance API calls (``broker.api.governance``); nothing here re-implements
a query, a proof or a check.

- ``GET /audit``: the search form: a PNC id (the subject), agency, user, act, dates.
- ``POST /audit/search`` (CSRF): one page of the matching entries, oldest first, as a
  timeline; each checkpointed entry has a proof cell that ``static/proof.js`` checks in
  the browser. The PNC id is personal data: it is only ever in a POST body. The reader
  turns it into the subject's keyed hash (``subject_ref``), and the results page, its
  next-page and export forms carry that hash, never the PNC id.
- ``GET /audit/proof/{seq}`` and ``GET /audit/checkpoint`` (``?size=``): the JSON of the
  API's ``/governance/proof/{seq}`` and ``/governance/checkpoint``, behind the officer's
  session (the API's need a bearer token, which a browser page does not hold).
- ``GET /audit/checkpoints``: the signed tree heads, newest first, a page at a time.
- ``POST /audit/verify`` (CSRF): starts the whole ledger's verification in the
  background (``verify_jobs``: one at a time; while one runs, this gives it) and
  answers 303 to its page.
- ``GET /audit/verify/{job_id}``: the job's progress (entries checked of the entries
  stored) while it runs, with a button to load the page again (it does not reload
  itself: see the template); then what was found: intact up to a tree size with the
  signed root hash, or the first problem and the entry it concerns, or why the check
  could not finish. A job id no job has is a 404.
- ``POST /audit/export`` (CSRF): the subject access export, CSV or JSON, as a download.
- ``GET /audit/refusals``: refused acts, undeliverable messages and the records the
  ledger itself refused, with their reason codes and reasons (never values).

No route logs anything, and none takes personal data in its path or query.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from broker.api.auth import NotFound
from broker.api.backend import ApiBackend, flush
from broker.api.governance import MAX_INDEX
from broker.console.context import PageContext
from broker.console.signing_in import SignedIn, console_path, text_field
from broker.console.verify_jobs import VerifyJobs
from broker.errors import MappaError, SchemaError
from broker.identity.roles import Role
from broker.ledger.reader import LedgerReader
from schemas.audit import AuditAct, Operation, Outcome

# This group's items in the service navigation, per role: (text, path under /console).
NAVIGATION: dict[Role, list[tuple[str, str]]] = {
    Role.IG_OFFICER: [
        ("Audit ledger", "/audit"),
        ("Checkpoints", "/audit/checkpoints"),
        ("Refusals", "/audit/refusals"),
    ]
}
# Entries on one page of results; checkpoints on one page of their history.
PAGE_SIZE = 100
CHECKPOINT_PAGE = 50
# Pages with ledger data are never stored by a browser or a proxy.
NO_STORE = {"Cache-Control": "no-store"}
# The filters a search form may carry, as the reader's query parameters.
FILTERS = ("subject", "subject_ref", "agency", "user", "act", "since", "until")
# What each refused parameter is called on the form, and what to say about it.
FIELD_OF = {"subject": "subject", "agency": "agency", "user": "user", "act": "act",
            "since": "since-day", "until": "until-day"}  # fmt: skip
SUBJECT_MESSAGE = "Enter a PNC id in the correct format, like 2004/0012345A"
_PARAMETER = re.compile(r"parameter '(\w+)'")
# What a verify job's id looks like (``secrets.token_urlsafe`` of 16 bytes).
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


def ledger_of(ctx: PageContext) -> LedgerReader:
    """The running server's ledger reader. Raises ``NotFound`` (a 404 page) if it runs
    none, and ``ServiceStarting`` until it runs."""
    reader = ctx.backend().ledger
    if reader is None:
        raise NotFound("this server runs no audit ledger (started with --no-ledger)")
    return reader


def shown_time(moment: str | None) -> str:
    """A ledger time as people read it ("23 November 2026, 12:00:00 UTC")."""
    if not moment:
        return ""
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        return moment
    return f"{parsed.day} {parsed:%B %Y, %H:%M:%S} UTC"


def entry_view(row: dict[str, Any], base: str, size: int) -> dict[str, Any]:
    """A ledger row as a timeline line: its fields, its time as read, and the proof URL
    pinned to the checkpoint of ``size`` (None when no checkpoint covers it yet)."""
    proof = f"{base}/audit/proof/{row['seq']}?size={size}" if row["seq"] < size else None
    return row | {"shown_time": shown_time(row.get("time")), "proof_url": proof}


@contextmanager
def refusals_as_errors(errors: list[dict[str, str]]) -> Iterator[None]:
    """The reader's refusal of a query (``SchemaError``: a bad PNC id, a bad date) added
    to ``errors`` as a GOV.UK error-summary item; anything else raises."""
    try:
        yield
    except SchemaError as exc:
        found = _PARAMETER.search(exc.reason)
        name = found.group(1) if found else ""
        text = SUBJECT_MESSAGE if name == "subject" else exc.reason
        errors.append({"text": text, "href": "#" + FIELD_OF.get(name, "subject")})


def date_field(form: FormData, name: str, errors: list[dict[str, str]]) -> date | None:
    """The date of the GOV.UK date input ``name`` (``name-day``, ``-month``, ``-year``),
    None when left empty; a date that is not one adds to ``errors``."""
    parts = [text_field(form, f"{name}-{p}").strip() for p in ("day", "month", "year")]
    if not any(parts):
        return None
    try:
        day, month, year = (int(p) for p in parts)
        return date(year, month, day)
    except ValueError:
        label = "from" if name == "since" else "to"
        errors.append({"text": f"Enter a real '{label}' date", "href": f"#{name}-day"})
        return None


def search_params(form: FormData, errors: list[dict[str, str]]) -> dict[str, Any]:
    """The reader's query parameters from a search form: the typed PNC id or the hash a
    results page carries, the text filters, and the dates (the 'to' date included: the
    reader's ``until`` is exclusive, so it is the next day). A results page's forms
    carry ``since`` and ``until`` as they were sent to the reader."""
    params: dict[str, Any] = {name: text_field(form, name).strip() or None for name in FILTERS}
    since, until = date_field(form, "since", errors), date_field(form, "until", errors)
    if since is not None:
        params["since"] = since.isoformat()
    if until is not None:
        params["until"] = (until + timedelta(days=1)).isoformat()
    return params


def date_parts(form: FormData, name: str) -> dict[str, str]:
    return {p: text_field(form, f"{name}-{p}").strip() for p in ("day", "month", "year")}


def serving(ctx: PageContext, backend: ApiBackend) -> Callable[[], bool]:
    """Whether ``backend`` is still the one the server runs: false once the server stops
    (``ctx.backend()`` raises ``ServiceStarting`` then), or runs another."""

    def alive() -> bool:
        try:
            return ctx.backend() is backend
        except MappaError:
            return False

    return alive


def officer(who: SignedIn) -> SignedIn:
    """``who``, if an IG officer; a 403 page for anyone else."""
    who.require(Role.IG_OFFICER)
    return who


def search_page(
    ctx: PageContext,
    request: Request,
    who: SignedIn,
    *,
    status_code: int = 200,
    errors: list[dict[str, str]] | None = None,
    form: FormData | None = None,
) -> HTMLResponse:
    """The search form, with ``errors`` and the filters of ``form`` (a refused search)."""
    # The PNC id typed is never put back in the page: it is typed again.
    kept = {n: text_field(form, n) for n in ("agency", "user", "act")} if form else {}
    dates = {n: date_parts(form, n) for n in ("since", "until")} if form else {}
    return ctx.page(
        request, "governance/search.html", who, status_code=status_code,
        errors=errors or [], field_errors={e["href"][1:]: e["text"] for e in errors or []},
        kept=kept, dates=dates, acts=[a.value for a in AuditAct],
    )  # fmt: skip


def governance_pages(ctx: PageContext) -> APIRouter:
    """The governance pages over ``ctx`` (module docstring). Returns the router; its
    routes raise ``HTTPException`` (a GOV.UK error page) or the reader's ``MappaError``
    (the app's problem page at the error's status) and nothing else of their own."""
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
    search_routes(router, ctx)
    ledger_routes(router, ctx, VerifyJobs())
    return router


def search_routes(router: APIRouter, ctx: PageContext) -> None:
    """The search, its results, the export, and the proof and checkpoint JSON the
    results page's proof cells fetch, on ``router``."""
    Officer = Annotated[SignedIn, Depends(ctx.signed_in)]
    Posted = Annotated[tuple[SignedIn, FormData], Depends(ctx.checked_form)]

    @router.get("/audit")
    def audit(request: Request, who: Officer) -> HTMLResponse:
        return search_page(ctx, request, officer(who))

    @router.post("/audit/search")
    def search(request: Request, posted: Posted) -> HTMLResponse:
        who, form = officer(posted[0]), posted[1]
        reader = ledger_of(ctx)
        errors: list[dict[str, str]] = []
        params = search_params(form, errors)
        after = text_field(form, "after").strip() or None
        page: dict[str, Any] = {}
        if not errors:
            with refusals_as_errors(errors):
                page = reader.query(params | {"after": after, "limit": str(PAGE_SIZE)})
        if errors:
            return search_page(ctx, request, who, status_code=400, errors=errors, form=form)
        try:
            checkpoint: dict[str, Any] | None = reader.checkpoint_json()
        except SchemaError:
            checkpoint = None  # no checkpoint yet: nothing can be proved
        size = 0 if checkpoint is None else int(checkpoint["tree_size"])
        console = console_path(request)
        entries = page["entries"]
        # What the next page and the export post again: the subject's hash (as every
        # entry found for it carries it), never the PNC id.
        carried = {k: v for k, v in params.items() if k != "subject" and v is not None}
        if params["subject"] is not None and entries:
            carried["subject_ref"] = entries[0]["subject_ref"]
        shown = ctx.page(
            request, "governance/results.html", who,
            entries=[entry_view(r, console, size) for r in entries],
            next_after=page["next_after"], carried=carried, checkpoint=checkpoint,
            ledger_key=reader.verifier_key, by_subject=params["subject"] is not None,
            first=after is None,
        )  # fmt: skip
        shown.headers.update(NO_STORE)
        return shown

    @router.get("/audit/proof/{seq}")
    def proof(
        seq: Annotated[int, Path(ge=0, le=MAX_INDEX)],
        who: Officer,
        size: Annotated[int | None, Query(ge=0, le=MAX_INDEX)] = None,
    ) -> JSONResponse:
        officer(who)
        return answered(lambda: ledger_of(ctx).proof(seq, size=size))

    @router.get("/audit/checkpoint")
    def checkpoint(
        who: Officer, size: Annotated[int | None, Query(ge=0, le=MAX_INDEX)] = None
    ) -> JSONResponse:
        officer(who)
        return answered(lambda: ledger_of(ctx).checkpoint_json(size))

    @router.post("/audit/export")
    async def export(request: Request, posted: Posted) -> Response:
        return await exported(ctx, request, *posted)


def ledger_routes(router: APIRouter, ctx: PageContext, jobs: VerifyJobs) -> None:
    """The checkpoints, the whole-ledger check (its jobs in ``jobs``) and the refusals,
    on ``router``."""
    Officer = Annotated[SignedIn, Depends(ctx.signed_in)]
    Posted = Annotated[tuple[SignedIn, FormData], Depends(ctx.checked_form)]

    @router.get("/audit/checkpoints")
    def checkpoints(
        request: Request,
        who: Officer,
        before: Annotated[int | None, Query(ge=0, le=MAX_INDEX)] = None,
    ) -> HTMLResponse:
        officer(who)
        reader = ledger_of(ctx)
        every = [size for size, _time, _note in reader.store.checkpoints()]
        sizes = [size for size in every if before is None or size < before]
        shown = sizes[::-1][:CHECKPOINT_PAGE]
        rows = []
        for size in shown:
            try:
                rows.append(reader.checkpoint_json(size) | {"ok": True})
            except MappaError as exc:
                if exc.retriable:
                    raise
                rows.append({"tree_size": size, "ok": False, "reason": exc.reason})
        for row in rows:
            row["shown_time"] = shown_time(row.get("time"))
        older = shown[-1] if len(sizes) > CHECKPOINT_PAGE else None
        page = ctx.page(
            request, "governance/checkpoints.html", who,
            rows=rows, older=older, total=len(every),
            ledger_key=reader.verifier_key,
        )  # fmt: skip
        page.headers.update(NO_STORE)
        return page

    @router.post("/audit/verify")
    def verify(request: Request, posted: Posted) -> RedirectResponse:
        who = officer(posted[0])
        reader = ledger_of(ctx)
        job = jobs.start(reader, by=who.username, alive=serving(ctx, ctx.backend()))
        where = f"{console_path(request)}/audit/verify/{job.job_id}"
        return RedirectResponse(where, status_code=303)

    @router.get("/audit/verify/{job_id}")
    def verify_job(request: Request, job_id: str, who: Officer) -> HTMLResponse:
        officer(who)
        job = jobs.get(job_id) if _JOB_ID.match(job_id) else None
        if job is None:
            raise HTTPException(404, "no such verification")
        page = ctx.page(
            request, "governance/verified.html", who,
            job=job, report=job.report.to_json() if job.report else None,
            checkpoint=job.checkpoint, here=f"{console_path(request)}/audit/verify/{job_id}",
            started=shown_time(job.started_at.isoformat()),
        )  # fmt: skip
        page.headers.update(NO_STORE)
        return page

    @router.get("/audit/refusals")
    def refusals(request: Request, who: Officer) -> HTMLResponse:
        officer(who)
        reader = ledger_of(ctx)
        limit = str(PAGE_SIZE)
        refused = reader.query({"act": AuditAct.REFUSAL.value, "limit": limit})
        undeliverable = reader.query({"outcome": Outcome.UNDELIVERABLE.value, "limit": limit})
        page = ctx.page(
            request, "governance/refusals.html", who,
            refused=[entry_view(r, "", 0) for r in refused["entries"]],
            more_refused=refused["next_after"] is not None,
            undeliverable=[entry_view(r, "", 0) for r in undeliverable["entries"]],
            more_undeliverable=undeliverable["next_after"] is not None,
            rejected=reader.rejected(), page_size=PAGE_SIZE,
        )  # fmt: skip
        page.headers.update(NO_STORE)
        return page


async def exported(ctx: PageContext, request: Request, who: SignedIn, form: FormData) -> Response:
    """The export of the entries ``form``'s filters match, as a download, once it is
    recorded in the audit ledger with the officer's name (``record_export``); a refused
    filter is the search form again with its error."""
    officer(who)
    fmt = text_field(form, "format")
    errors: list[dict[str, str]] = []
    params = search_params(form, errors)
    if fmt not in ("csv", "json"):
        raise HTTPException(400, "the export's format is csv or json")
    text = ""
    subject_ref: str | None = None
    if not errors:
        reader = ledger_of(ctx)
        with refusals_as_errors(errors):
            subject_ref = reader.subject_ref_of(params)
            text = await run_in_threadpool(reader.export, params, "csv" if fmt == "csv" else "json")
    if errors:
        return search_page(ctx, request, who, status_code=400, errors=errors, form=form)
    await record_export(ctx, who, subject_ref, fmt)
    kind = "text/csv" if fmt == "csv" else "application/json"
    disposition = f'attachment; filename="audit-export.{fmt}"'
    return Response(text, media_type=kind, headers={"Content-Disposition": disposition, **NO_STORE})


# What the audit says an export was for.
EXPORT_PURPOSE = "export of the audit ledger by an information-governance officer"


async def record_export(ctx: PageContext, who: SignedIn, subject_ref: str | None, fmt: str) -> None:
    """Record that ``who`` exported the ledger's entries (about ``subject_ref``, if the
    export names a subject) as a consultation in their own agency's signed log, and send
    it to the ledger. Raises a 409 page, giving nothing, when their agency is not served
    here: an export that cannot be recorded is not made."""
    served = ctx.backend().agencies.get(who.agency)
    if served is None:
        raise HTTPException(409, "this server cannot record an export by your agency")
    agency = served.gateway.ctx
    with agency.store.transaction():
        agency.audit.emit(
            AuditAct.CONSULTATION,
            Operation.CONSULT,
            user=who.username,
            subject_ref=subject_ref,
            purpose=EXPORT_PURPOSE,
            reason=f"{fmt} export of the entries matching a search",
        )
    await flush(served.gateway)


def answered(call: Callable[[], dict[str, Any]]) -> JSONResponse:
    """``call()``'s JSON, as the governance API answers it: a refusal is its code and
    reason at 400 (``SchemaError``: no such checkpoint, an entry not covered) or 409 (a
    checkpoint that does not verify); a retriable error is left to the problem page."""
    try:
        return JSONResponse(call(), headers=NO_STORE)
    except MappaError as exc:
        if exc.retriable:
            raise
        status = 400 if isinstance(exc, SchemaError) else 409
        return JSONResponse({"code": exc.code, "reason": exc.reason}, status_code=status)
