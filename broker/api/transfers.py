"""Transfer endpoints: the same steps as `mappa transfer`, for agency systems over HTTP.

Mounted under ``/v1/agencies/{agency_id}/transfers`` beside the agency's other routes.
A router factory: the app supplies the dependency that authenticates the caller and
returns its agency's transfer desk (``served_desk`` for the deployed app). Routes hold
no policy: the desk checks every step and audits every refusal; the app's error
handlers (``broker.api.errors``) map its errors to HTTP statuses.

  POST .../transfers                        request a transfer (sending lead or co-ordinator)
  POST .../transfers/{id}/accept|refuse     receiving co-ordinator
  POST .../transfers/{id}/cancel            sending lead or co-ordinator, receiving co-ordinator
  POST .../transfers/{id}/complete          receiving co-ordinator
  GET  .../transfers                        transfers the caller knows of, with deadlines
  GET  .../transfers/overdue?on=            overdue deadlines, as the caller sees them
  GET  .../transfers/{id}                   one transfer, with its deadlines
"""

# No `from __future__ import annotations`: FastAPI must see the route annotations, which
# use a dependency alias local to the factory, as real objects.

import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from broker.api.auth import Actor, AgencyDep, BackendDep, NotFound, acting
from broker.api.errors import documented
from broker.api.models import LongText, ShortText
from broker.api.routes import AUTH
from broker.errors import TransferRefused
from broker.transfer.deadlines import deadlines, overdue
from broker.transfer.desk import TransferDesk
from schemas.common import ISO_DATE_PATTERN, UUID_PATTERN
from schemas.messages.base import PncId
from schemas.transfer import TransferRecord

TransferId = Annotated[str, Path(pattern=UUID_PATTERN)]

ISO_DAY = re.compile(ISO_DATE_PATTERN)


# The days a transfer may name. A deadline is computed from them, and near the end of the
# calendar (9999-12-31) it would not exist; no case moves outside these years.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2200, 12, 31)


def _iso_day(value: object) -> object:
    """A calendar date written as YYYY-MM-DD; pydantic alone would also take a number
    as seconds since 1970, which no caller means by a move date."""
    if isinstance(value, date) or (isinstance(value, str) and ISO_DAY.fullmatch(value)):
        return value
    raise ValueError("expected a date as YYYY-MM-DD")


def _in_range(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"expected a date from {FIRST_DAY} to {LAST_DAY}")
    return value


Day = Annotated[date, BeforeValidator(_iso_day), AfterValidator(_in_range)]

STEP_ERRORS = (*AUTH, 404, 409, 422, 503)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The bodies below have comments, not docstrings: pydantic puts a model's docstring in
# its JSON schema, so one would change docs/openapi.json.


# A request that another area take a case over (``TransferDesk.request``).
# Area and agency names are checked by the desk, which audits what it refuses; here they
# are only bounded in size.
class TransferRequestIn(_In):
    pnc_id: PncId
    to_area: str = Field(max_length=42)
    move_date: Day
    reason: LongText
    open_actions: list[ShortText] = Field(default_factory=list, max_length=50)
    lead_agency: str | None = Field(default=None, max_length=96)
    registered_sex_offender: bool = False


# Who takes an accept, refuse or cancel step, and why.
class StepIn(_In):
    reason: LongText


# The take-over: when, when the address was notified, and the receiving case team.
class CompleteIn(_In):
    reason: LongText = "receiving area has taken the case over"
    completed_on: Day | None = None
    address_notified_on: Day | None = None
    case_team: list[Annotated[str, Field(max_length=96)]] = Field(
        default_factory=list, max_length=128
    )


# One deadline of a transfer (``broker.transfer.deadlines``), and whether it is overdue today.
class DeadlineOut(BaseModel):
    kind: str
    due: date
    met_on: date | None
    overdue: bool


# A transfer as this agency knows it, with its deadlines.
class TransferOut(BaseModel):
    transfer: TransferRecord
    deadlines: list[DeadlineOut]


# A deadline not met by the day asked about, and by how many days.
class OverdueOut(BaseModel):
    transfer_id: str
    from_area: str
    to_area: str
    state: str
    deadline: str
    due: date
    days_over: int


def _out(record: TransferRecord, today: date) -> TransferOut:
    return TransferOut(
        transfer=record,
        deadlines=[
            DeadlineOut(kind=d.kind, due=d.due, met_on=d.met_on, overdue=d.overdue(today))
            for d in deadlines(record)
        ],
    )


def served_desk(served: AgencyDep, backend: BackendDep) -> TransferDesk:
    """The calling agency's transfer desk in the deployed app. Raises ``NotFound``
    (``api.not-found``) when the agency has no desk here, and what ``require_agency``
    raises."""
    desk = backend.desks.get(served.agency_id)
    if desk is None:
        raise NotFound(f"agency {served.agency_id} takes no part in transfers on this broker")
    return desk


def transfers_router(
    require_desk: Callable[..., Any] = served_desk, require_actor: Callable[..., Any] = acting
) -> APIRouter:
    """The transfer routes (module docstring) on the desk that ``require_desk`` gives,
    each step recorded as taken by whom ``require_actor`` names. Returns the router;
    raises nothing of its own.

    Each step route raises what its desk step raises (see ``TransferDesk.request``:
    ``SchemaError``, ``TransferRefused``, ``TransferPending``), answered by the error
    table. The route functions have a ``summary=`` and no docstring: FastAPI would add
    one to docs/openapi.json."""
    router = APIRouter(prefix="/v1/agencies/{agency_id}/transfers", tags=["transfers"])
    Desk = Annotated[TransferDesk, Depends(require_desk)]
    Who = Annotated[Actor, Depends(require_actor)]

    def today(d: TransferDesk) -> date:
        return d.ctx.clock().date()

    @router.post(
        "",
        status_code=201,
        response_model=TransferOut,
        responses=documented(*STEP_ERRORS),
        summary="Ask another area to take a case over (sending lead agency or co-ordinator)",
    )
    async def request_transfer(body: TransferRequestIn, d: Desk, who: Who) -> TransferOut:
        record = await d.request(
            pnc_id=body.pnc_id,
            to_area=body.to_area,
            move_date=body.move_date,
            reason=body.reason,
            user=who.audit_name,
            open_actions=body.open_actions,
            lead_agency=body.lead_agency,
            registered_sex_offender=body.registered_sex_offender,
        )
        return _out(record, today(d))

    @router.post(
        "/{transfer_id}/accept",
        response_model=TransferOut,
        responses=documented(*STEP_ERRORS),
        summary="Accept a requested transfer (receiving co-ordinator)",
    )
    async def accept(transfer_id: TransferId, body: StepIn, d: Desk, who: Who) -> TransferOut:
        record = await d.accept(transfer_id, user=who.audit_name, reason=body.reason)
        return _out(record, today(d))

    @router.post(
        "/{transfer_id}/refuse",
        response_model=TransferOut,
        responses=documented(*STEP_ERRORS),
        summary="Refuse a requested transfer (receiving co-ordinator)",
    )
    async def refuse(transfer_id: TransferId, body: StepIn, d: Desk, who: Who) -> TransferOut:
        record = await d.refuse(transfer_id, user=who.audit_name, reason=body.reason)
        return _out(record, today(d))

    @router.post(
        "/{transfer_id}/cancel",
        response_model=TransferOut,
        responses=documented(*STEP_ERRORS),
        summary="Withdraw a requested or accepted transfer",
    )
    async def cancel(transfer_id: TransferId, body: StepIn, d: Desk, who: Who) -> TransferOut:
        record = await d.cancel(transfer_id, user=who.audit_name, reason=body.reason)
        return _out(record, today(d))

    @router.post(
        "/{transfer_id}/complete",
        response_model=TransferOut,
        responses=documented(*STEP_ERRORS),
        summary="The receiving area has taken the case over (receiving co-ordinator)",
    )
    async def complete(transfer_id: TransferId, body: CompleteIn, d: Desk, who: Who) -> TransferOut:
        record = await d.complete(
            transfer_id,
            user=who.audit_name,
            reason=body.reason,
            completed_on=body.completed_on,
            address_notified_on=body.address_notified_on,
            case_team=body.case_team,
        )
        return _out(record, today(d))

    @router.get(
        "",
        response_model=list[TransferOut],
        responses=documented(*AUTH, 404, 422, 503),
        summary="Transfers this agency knows of, with their deadlines",
    )
    async def list_transfers(d: Desk) -> list[TransferOut]:
        return [_out(r, today(d)) for r in d.registry.records()]

    @router.get(
        "/overdue",
        response_model=list[OverdueOut],
        responses=documented(*AUTH, 404, 422, 503),
        summary="Deadlines not met by a date (default today), as this agency sees them",
    )
    async def overdue_transfers(d: Desk, on: Day | None = None) -> list[OverdueOut]:
        return [
            OverdueOut(
                transfer_id=o.record.transfer_id,
                from_area=o.record.from_area,
                to_area=o.record.to_area,
                state=o.record.state.value,
                deadline=o.deadline.kind,
                due=o.deadline.due,
                days_over=o.days_over,
            )
            for o in overdue(d.registry.records(), on or today(d))
        ]

    # Not a step, so nothing to audit: an unknown id is a 404 (``transfer.unknown``).
    @router.get(
        "/{transfer_id}",
        response_model=TransferOut,
        responses=documented(*AUTH, 404, 422, 503),
        summary="One transfer this agency knows of, with its deadlines",
    )
    async def get_transfer(transfer_id: TransferId, d: Desk) -> TransferOut:
        record = d.registry.get(transfer_id)
        if record is None:
            raise TransferRefused(
                f"{d.agency_id} knows of no transfer {transfer_id}", code="transfer.unknown"
            )
        return _out(record, today(d))

    return router
