"""The pages of MAPPA co-ordinators: case teams and transfers between areas.

- ``GET /transfers``: the transfers the signed-in user's agency's desk knows, with their
  deadlines tagged "due", "overdue" or "met" (``broker.transfer.deadlines``).
- ``GET /transfers/new``, ``POST /transfers/new``: ask another area to take a case over.
  The PNC id travels only in the POST body; the desk keeps only its keyed reference.
- ``GET /transfers/{id}``: one transfer, its steps and deadlines, and a form for each
  step its state allows this desk (accept, refuse, cancel, complete).
- ``POST /transfers/{id}/{step}``: that step, by the same ``TransferDesk`` method the API
  calls, as the signed-in user. A step the desk refuses (wrong state, not the owner,
  before the move date) re-renders the page with a GOV.UK error summary.
- ``GET /case-teams``: the case teams the agency's store holds.
- ``GET /annual-report?year=2013-14``: the area's annual MAPPA report tables, computed
  from the unit's store as ``mappa report annual`` computes them (docs/statistics.md),
  the same page; running it is audited as the command's is.

Only co-ordinators see these pages (a 403 for every other role): the desk is always the
signed-in user's agency's, never one named in the URL. Every form carries the session's
CSRF token (``ctx.checked_form``); no route takes personal data in its path or query.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.datastructures import FormData

from broker.api.errors import status_for
from broker.api.transfers import FIRST_DAY, LAST_DAY
from broker.areas import all_areas
from broker.console.context import PageContext
from broker.console.signing_in import SignedIn, console_path, text_field
from broker.errors import MappaError, SchemaError, TransferRefused
from broker.gateway.store import AgencyStore
from broker.identity.roles import Role
from broker.statistics.annual import ReportYear, last_reporting_year
from broker.statistics.held import annual_report
from broker.statistics.render import html_fragment
from broker.transfer.deadlines import deadlines
from broker.transfer.desk import TransferDesk, TransferPending
from schemas.transfer import (
    MAY_SEND,
    TRANSITIONS,
    Side,
    TransferRecord,
    TransferState,
    TransferStep,
)

# This group's items in the service navigation, per role: (text, path under /console).
NAVIGATION: dict[Role, list[tuple[str, str]]] = {
    Role.COORDINATOR: [
        ("Transfers", "/transfers"),
        ("Case teams", "/case-teams"),
        ("Annual report", "/annual-report"),
    ],
}
# Who may use these pages: co-ordinators only, to see and to act.
ROLES = (Role.COORDINATOR,)
# A year typed back into the form is cut to this (a reporting year is 7 characters).
MAX_YEAR_CHARS = 20
# What a transfer id looks like (a UUID): anything else is no page.
TRANSFER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Bounds of what a person types, as the steps' own (schemas.common ShortText/LongText).
MAX_REASON_CHARS = 4000
MAX_PNC_CHARS = 20
# The steps that follow a request, in the order the page offers them.
FOLLOW_UPS = (TransferStep.ACCEPT, TransferStep.REFUSE, TransferStep.CANCEL, TransferStep.COMPLETE)
# What each deadline is called on a transfer's page, and in the list's narrow column.
DEADLINE_NAMES = {
    "probation-transfer": "Case transferred (20 working days from the request)",
    "rso-address-notification": "New address notified to police (3 days from the move)",
}
DEADLINE_SHORT_NAMES = {
    "probation-transfer": "Transfer",
    "rso-address-notification": "Address",
}
# Each deadline status's GOV.UK tag colour.
DEADLINE_TAGS = {"due": "govuk-tag--blue", "overdue": "govuk-tag--red", "met": "govuk-tag--green"}
# What a refusal by the desk means to a person, by its code; others show the desk's words.
REFUSALS = {
    "transfer.invalid-transition": "This transfer is {state}: that step is not possible now",
    "transfer.before-move-date": "The transfer cannot be completed before its move date",
    "transfer.not-owner": "Another area manages this case now: only it can ask to move it",
    "transfer.already-open": "This case already has a transfer open: finish or cancel it first",
    "transfer.wrong-actor": "Your agency cannot take this step on this transfer",
    "transfer.unknown-area": "That area cannot take part in transfers on this service yet",
    "transfer.bad-lead": (
        "The lead agency must be a police, probation or prison agency of your area"
    ),
    "transfer.bad-team": "Every case team member must be an active agency of the receiving area",
    "transfer.invalid": "Enter a PNC ID in the correct format, like 2011/0456789K",
    "transfer.pending": (
        "The step was sent but is not confirmed yet. Look at this transfer again in a minute "
        "before trying again"
    ),
}


def _day(form: FormData, prefix: str) -> date | None:
    """The date of a GOV.UK date input (``prefix-day``, ``-month``, ``-year``), or None
    when it is not a real date within the years a transfer may name."""
    try:
        parts = [int(text_field(form, f"{prefix}-{p}").strip()) for p in ("year", "month", "day")]
        day = date(*parts)
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


def _date_values(form: FormData, prefix: str) -> dict[str, str]:
    return {p: text_field(form, f"{prefix}-{p}").strip()[:4] for p in ("day", "month", "year")}


def deadline_rows(record: TransferRecord, today: date) -> list[dict[str, Any]]:
    """The deadlines of ``record`` as the desk's deadline logic gives them, each with its
    status: "met" (a date recorded), "overdue" (past due, unmet) or "due"."""
    rows = []
    for d in deadlines(record):
        status = "met" if d.met_on is not None else "overdue" if d.overdue(today) else "due"
        rows.append(
            {
                "name": DEADLINE_NAMES.get(d.kind, d.kind),
                "short": DEADLINE_SHORT_NAMES.get(d.kind, d.kind),
                "due": d.due.isoformat(),
                "met_on": d.met_on.isoformat() if d.met_on else "",
                "late": d.late(),
                "status": status,
                "tag": DEADLINE_TAGS[status],
            }
        )
    return rows


def step_rows(record: TransferRecord) -> list[dict[str, str]]:
    """The steps the desk's record shows: the request, and the latest step since."""
    rows = []
    if record.requested_on is not None:
        rows.append(
            {
                "step": "Requested",
                "on": record.requested_on,
                "by": record.requested_by,
                "reason": record.reason,
            }
        )
    if record.state is not TransferState.REQUESTED:
        rows.append(
            {
                "step": record.state.value.capitalize(),
                "on": record.completed_on or record.updated_at[:10],
                "by": record.last_step_by,
                "reason": record.last_reason or "",
            }
        )
    return rows


def allowed_steps(record: TransferRecord, desk: TransferDesk) -> list[str]:
    """The follow-up steps the state machine allows from ``record``'s state to an agency
    of this desk's role and areas (the desk checks each again when it is taken)."""
    entry = desk.ctx.entry
    side_area = {Side.SENDING: record.from_area, Side.RECEIVING: record.to_area}
    return [
        step.value
        for step in FOLLOW_UPS
        if (record.state, step) in TRANSITIONS
        and any(
            side_area[side] in entry.areas and entry.role in roles for side, roles in MAY_SEND[step]
        )
    ]


def case_teams_of(store: AgencyStore) -> list[dict[str, Any]]:
    """The case teams ``store`` holds, latest first, as the page shows them."""
    return [
        {"subject_ref": t.subject_ref, "members": list(t.members), "lead": t.lead_agency,
         "set_at": t.set_at}
        for t in store.case_teams()
    ]  # fmt: skip


def _today(desk: TransferDesk) -> date:
    return desk.ctx.clock().date()


def _own_area(desk: TransferDesk) -> str:
    return desk.ctx.entry.areas[0]


def _area_name(code: str) -> str:
    found = all_areas().get(code)
    return found.name if found else code


def lead_agencies(desk: TransferDesk) -> list[str]:
    """The agencies a request may name as lead: this desk's own if it is an RA agency,
    else the RA agencies of its area (the desk checks the choice)."""
    entry = desk.ctx.entry
    if entry.role.is_responsible_authority:
        return [entry.agency_id]
    return sorted(
        a.agency_id
        for a in desk.ctx.directory.agencies(area=_own_area(desk))
        if a.role.is_responsible_authority
    )


def refusal_text(exc: MappaError, record: TransferRecord | None) -> str:
    """What a refusal by the desk means, for the error summary."""
    text = REFUSALS.get(exc.code)
    if text is None:
        return f"The transfer desk refused this: {exc}"
    return text.format(state=record.state.value if record else "")


def _redirect(request: Request, path: str) -> RedirectResponse:
    return RedirectResponse(f"{console_path(request)}{path}", status_code=303)


@dataclass(frozen=True)
class _RequestForm:
    """A posted request form: what was typed (to show again) and what is wrong with it."""

    values: dict[str, Any]
    errors: dict[str, str]
    move_date: date | None

    @classmethod
    def read(cls, form: FormData, desk: TransferDesk) -> Self:
        leads = lead_agencies(desk)
        values: dict[str, Any] = {
            "pnc_id": text_field(form, "pnc_id").strip().upper()[:MAX_PNC_CHARS],
            "lead_agency": leads[0] if len(leads) == 1 else text_field(form, "lead_agency"),
            "to_area": text_field(form, "to_area"),
            "move_date": _date_values(form, "move-date"),
            "reason": text_field(form, "reason").strip()[:MAX_REASON_CHARS],
            "rso": text_field(form, "rso"),
        }
        errors: dict[str, str] = {}
        if not values["pnc_id"]:
            errors["pnc_id"] = "Enter the PNC ID"
        if values["lead_agency"] not in leads:
            errors["lead_agency"] = "Select the lead agency"
        if values["to_area"] not in all_areas() or values["to_area"] == _own_area(desk):
            errors["to_area"] = "Select the area the case moves to"
        move_date = _day(form, "move-date")
        if move_date is None:
            errors["move-date-day"] = "Enter a real move date, like 27 3 2026"
        if not values["reason"]:
            errors["reason"] = "Enter the reason for the transfer"
        if values["rso"] not in ("yes", "no"):
            errors["rso"] = "Select yes if the person is a registered sex offender"
        return cls(values, errors, move_date)


# Which field of the request form a refusal by the desk is about.
REQUEST_REFUSAL_FIELDS = {
    "transfer.unknown-area": "to_area",
    "transfer.bad-lead": "lead_agency",
}


@dataclass(frozen=True)
class _StepForm:
    """A posted step form (``{step}-reason``, and a completion's dates and team)."""

    step: str
    values: dict[str, Any]
    errors: dict[str, str]
    completed_on: date | None = None
    notified_on: date | None = None

    @classmethod
    def read(cls, form: FormData, step: str) -> Self:
        reason = text_field(form, f"{step}-reason").strip()[:MAX_REASON_CHARS]
        values: dict[str, Any] = {f"{step}-reason": reason}
        errors: dict[str, str] = {}
        if step in ("refuse", "cancel") and not reason:
            errors[f"{step}-reason"] = f"Enter the reason to {step} the transfer"
        if step != "complete":
            return cls(step, values, errors)
        values |= {
            "complete-date": _date_values(form, "complete-date"),
            "notified-date": _date_values(form, "notified-date"),
            "complete-team": [t for t in form.getlist("complete-team") if isinstance(t, str)],
        }
        completed_on = _day(form, "complete-date")
        if completed_on is None:
            errors["complete-date-day"] = "Enter a real completion date, like 27 3 2026"
        notified_on = None
        if any(values["notified-date"].values()):
            notified_on = _day(form, "notified-date")
            if notified_on is None:
                errors["notified-date-day"] = "Enter a real date the address was notified"
        return cls(step, values, errors, completed_on, notified_on)

    @property
    def reason(self) -> str:
        return str(self.values[f"{self.step}-reason"])

    async def take(self, desk: TransferDesk, transfer_id: str, *, user: str) -> TransferRecord:
        """The step, by the desk method the API calls; raises what it raises."""
        if self.step == "accept":
            return await desk.accept(transfer_id, user=user, reason=self.reason or "accepted")
        if self.step == "refuse":
            return await desk.refuse(transfer_id, user=user, reason=self.reason)
        if self.step == "cancel":
            return await desk.cancel(transfer_id, user=user, reason=self.reason)
        return await desk.complete(
            transfer_id,
            user=user,
            reason=self.reason or "receiving area has taken the case over",
            completed_on=self.completed_on,
            address_notified_on=self.notified_on,
            case_team=self.values["complete-team"],
        )


@dataclass(frozen=True)
class _Pages:
    """The pages' shared parts over ``ctx``."""

    ctx: PageContext

    def desk_of(self, who: SignedIn) -> TransferDesk:
        """The signed-in user's agency's desk (403 for another role, 404 without one)."""
        who.require(*ROLES)
        desk = self.ctx.backend().desks.get(who.agency)
        if desk is None:
            raise HTTPException(404, "your agency takes no part in transfers here")
        return desk

    @staticmethod
    def record_of(desk: TransferDesk, transfer_id: str) -> TransferRecord:
        record = desk.registry.get(transfer_id) if TRANSFER_ID.fullmatch(transfer_id) else None
        if record is None:
            raise HTTPException(404, "no such transfer known to your agency")
        return record

    def store_of(self, who: SignedIn) -> AgencyStore:
        who.require(*ROLES)
        backend = self.ctx.backend()
        desk = backend.desks.get(who.agency)
        if desk is not None:
            return desk.ctx.store
        served = backend.agencies.get(who.agency)
        if served is None:
            raise HTTPException(404, "your agency has no store on this server")
        return served.gateway.ctx.store

    def request_page(
        self,
        request: Request,
        who: SignedIn,
        desk: TransferDesk,
        *,
        status_code: int = 200,
        errors: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> HTMLResponse:
        here = _own_area(desk)
        areas = sorted(
            ((a.code, a.name) for a in all_areas().values() if a.code != here),
            key=lambda a: a[1],
        )
        return self.ctx.page(
            request,
            "coordination/new_transfer.html",
            who,
            status_code=status_code,
            areas=areas,
            from_area=_area_name(here),
            leads=lead_agencies(desk),
            errors=errors or {},
            values=values or {"move_date": {}},
        )

    def transfer_page(
        self,
        request: Request,
        who: SignedIn,
        desk: TransferDesk,
        record: TransferRecord,
        *,
        status_code: int = 200,
        errors: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> HTMLResponse:
        return self.ctx.page(
            request,
            "coordination/transfer.html",
            who,
            status_code=status_code,
            record=record,
            from_name=_area_name(record.from_area),
            to_name=_area_name(record.to_area),
            deadlines=deadline_rows(record, _today(desk)),
            steps=step_rows(record),
            actions=allowed_steps(record, desk),
            team_options=sorted(
                a.agency_id for a in desk.ctx.directory.agencies(area=record.to_area)
            ),
            errors=errors or {},
            values=values or {},
        )


def coordination_pages(ctx: PageContext) -> APIRouter:
    """The co-ordination pages over ``ctx`` (module docstring). Returns the router; its
    routes raise ``HTTPException`` (a GOV.UK error page) and what the stores raise
    (``MappaError``, a problem page at its status)."""
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
    pages = _Pages(ctx)
    Who = Annotated[SignedIn, Depends(ctx.signed_in)]
    Posted = Annotated[tuple[SignedIn, FormData], Depends(ctx.checked_form)]

    @router.get("/transfers")
    async def transfers(request: Request, who: Who) -> HTMLResponse:
        desk = pages.desk_of(who)
        on = _today(desk)
        records = sorted(desk.registry.records(), key=lambda r: r.updated_at, reverse=True)
        rows = [{"record": r, "deadlines": deadline_rows(r, on)} for r in records]
        names = {code: a.name for code, a in all_areas().items()}
        return ctx.page(
            request, "coordination/transfers.html", who, rows=rows, today=on, area_names=names
        )

    # Declared before ``/transfers/{transfer_id}``, which would take "new".
    @router.get("/transfers/new")
    async def new_transfer(request: Request, who: Who) -> HTMLResponse:
        return pages.request_page(request, who, pages.desk_of(who))

    @router.post("/transfers/new")
    async def request_transfer(request: Request, posted: Posted) -> Response:
        who, form = posted
        desk = pages.desk_of(who)
        typed = _RequestForm.read(form, desk)
        if typed.errors or typed.move_date is None:
            return pages.request_page(
                request, who, desk, status_code=422, errors=typed.errors, values=typed.values
            )
        try:
            record = await desk.request(
                pnc_id=typed.values["pnc_id"],
                to_area=typed.values["to_area"],
                move_date=typed.move_date,
                reason=typed.values["reason"],
                user=who.username,
                lead_agency=typed.values["lead_agency"],
                registered_sex_offender=typed.values["rso"] == "yes",
            )
        except (TransferRefused, SchemaError, TransferPending) as exc:
            field = REQUEST_REFUSAL_FIELDS.get(exc.code, "pnc_id")
            errors = {field: refusal_text(exc, None)}
            return pages.request_page(
                request, who, desk, status_code=status_for(exc), errors=errors, values=typed.values
            )
        return _redirect(request, f"/transfers/{record.transfer_id}")

    @router.get("/transfers/{transfer_id}")
    async def transfer(request: Request, transfer_id: str, who: Who) -> HTMLResponse:
        desk = pages.desk_of(who)
        return pages.transfer_page(request, who, desk, pages.record_of(desk, transfer_id))

    @router.post("/transfers/{transfer_id}/{step}")
    async def take_step(request: Request, transfer_id: str, step: str, posted: Posted) -> Response:
        who, form = posted
        desk = pages.desk_of(who)
        if step not in {s.value for s in FOLLOW_UPS}:
            raise HTTPException(404, "no such step")
        record = pages.record_of(desk, transfer_id)
        typed = _StepForm.read(form, step)
        if typed.errors:
            return pages.transfer_page(
                request,
                who,
                desk,
                record,
                status_code=422,
                errors=typed.errors,
                values=typed.values,
            )
        try:
            await typed.take(desk, transfer_id, user=who.username)
        except (TransferRefused, SchemaError, TransferPending) as exc:
            now = desk.registry.get(transfer_id) or record
            # The summary links to the step's form if the page still offers it.
            field = "complete-date-day" if step == "complete" else f"{step}-reason"
            if step not in allowed_steps(now, desk):
                field = "steps"
            return pages.transfer_page(
                request,
                who,
                desk,
                now,
                status_code=status_for(exc),
                errors={field: refusal_text(exc, now)},
                values=typed.values,
            )
        return _redirect(request, f"/transfers/{transfer_id}")

    @router.get("/case-teams")
    async def case_teams(request: Request, who: Who) -> HTMLResponse:
        teams = case_teams_of(pages.store_of(who))
        return ctx.page(request, "coordination/case_teams.html", who, teams=teams)

    @router.get("/annual-report")
    async def annual_report_page(
        request: Request, who: Who, year: str | None = None
    ) -> HTMLResponse:
        desk = pages.desk_of(who)
        chosen = year or last_reporting_year(_today(desk)).label
        try:
            report_year = ReportYear.parse(chosen)
        except ValueError as exc:
            return ctx.page(
                request,
                "coordination/annual_report.html",
                who,
                status_code=400,
                year=chosen[:MAX_YEAR_CHARS],
                errors={"year": str(exc)},
                report=None,
            )
        tables = annual_report(desk.gateway, year=report_year, user=who.username)
        await desk.gateway.relay.flush()
        return ctx.page(
            request,
            "coordination/annual_report.html",
            who,
            year=report_year.label,
            errors={},
            report=Markup(html_fragment(tables)),  # noqa: S704 - render escapes every text
        )

    return router
