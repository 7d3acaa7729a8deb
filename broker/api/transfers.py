"""Transfer endpoints: the same steps as `mappa transfer`, for agency systems over HTTP.

A router factory: the app supplies how to find the calling agency's transfer desk and
the dependency that authenticates the caller (it returns the agency id, or a principal
with an ``agency_id``). Routes hold no policy: the desk checks every step and audits
every refusal; this module only maps its errors to HTTP statuses.

  POST /transfers                        request a transfer (sending lead or co-ordinator)
  POST /transfers/{id}/accept|refuse     receiving co-ordinator
  POST /transfers/{id}/cancel            sending lead or co-ordinator, receiving co-ordinator
  POST /transfers/{id}/complete          receiving co-ordinator
  GET  /transfers                        transfers the caller knows of, with deadlines
  GET  /transfers/overdue?today=         overdue deadlines, as the caller sees them
  GET  /transfers/{id}                   one transfer, with its deadlines
"""

# No `from __future__ import annotations`: FastAPI must see the route annotations, which
# use a dependency alias local to the factory, as real objects.

import re
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from broker.errors import MappaError, SchemaError
from broker.transfer.deadlines import deadlines, overdue
from broker.transfer.desk import TransferDesk
from schemas.transfer import TransferRecord

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
TransferId = Annotated[str, Path(pattern=UUID_PATTERN)]


def _iso_day(value: object) -> object:
    """Dates as the document says, YYYY-MM-DD; pydantic alone would also take a number
    as a Unix time."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return value
    if isinstance(value, date):
        return value
    raise ValueError("expected a date as YYYY-MM-DD")


IsoDay = Annotated[date, BeforeValidator(_iso_day)]

# Codes whose meaning is "not yours" or "not there" rather than "not now".
_STATUS = {
    "transfer.unknown": 404,
    "transfer.wrong-actor": 403,
    "transfer.actor-mismatch": 403,
}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TransferRequestIn(_In):
    # The PNC id's own format: anything else cannot name a subject (and, not ASCII,
    # could not even be hashed into a subject reference).
    pnc_id: str = Field(max_length=16, pattern=r"^\d{2,4}/\d{1,7}[A-Z]$")
    to_area: str = Field(max_length=42)
    move_date: IsoDay
    reason: str = Field(min_length=1, max_length=4000)
    user: str = Field(min_length=1, max_length=200)
    open_actions: list[str] = Field(default_factory=list, max_length=50)
    lead_agency: str | None = None
    registered_sex_offender: bool = False


class StepIn(_In):
    user: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=4000)


class CompleteIn(_In):
    user: str = Field(min_length=1, max_length=200)
    reason: str = Field(
        default="receiving area has taken the case over", min_length=1, max_length=4000
    )
    completed_on: IsoDay | None = None
    address_notified_on: IsoDay | None = None
    case_team: list[str] = Field(default_factory=list, max_length=128)


class DeadlineOut(BaseModel):
    kind: str
    due: date
    met_on: date | None
    overdue: bool


class TransferOut(BaseModel):
    transfer: TransferRecord
    deadlines: list[DeadlineOut]


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


def _agency_of(principal: Any) -> str:
    agency = principal if isinstance(principal, str) else getattr(principal, "agency_id", None)
    if not isinstance(agency, str):
        raise HTTPException(status_code=403, detail={"error": "auth.not-an-agency"})
    return agency


async def _run(step: Awaitable[TransferRecord], today: date) -> TransferOut:
    try:
        return _out(await step, today)
    except MappaError as exc:
        status = _STATUS.get(exc.code, 422 if isinstance(exc, SchemaError) else 409)
        raise HTTPException(
            status_code=status, detail={"error": exc.code, "detail": exc.reason}
        ) from None


def transfers_router(
    desk_for: Callable[[str], TransferDesk], require_agency: Callable[..., Any]
) -> APIRouter:
    router = APIRouter(prefix="/transfers", tags=["transfers"])
    Caller = Annotated[Any, Depends(require_agency)]

    def desk(principal: Any) -> TransferDesk:
        return desk_for(_agency_of(principal))

    def today(d: TransferDesk) -> date:
        return d.ctx.clock().date()

    @router.post("", status_code=201)
    async def request_transfer(body: TransferRequestIn, caller: Caller) -> TransferOut:
        d = desk(caller)
        return await _run(
            d.request(
                pnc_id=body.pnc_id,
                to_area=body.to_area,
                move_date=body.move_date,
                reason=body.reason,
                user=body.user,
                open_actions=body.open_actions,
                lead_agency=body.lead_agency,
                registered_sex_offender=body.registered_sex_offender,
            ),
            today(d),
        )

    @router.post("/{transfer_id}/accept")
    async def accept(transfer_id: TransferId, body: StepIn, caller: Caller) -> TransferOut:
        d = desk(caller)
        return await _run(d.accept(transfer_id, user=body.user, reason=body.reason), today(d))

    @router.post("/{transfer_id}/refuse")
    async def refuse(transfer_id: TransferId, body: StepIn, caller: Caller) -> TransferOut:
        d = desk(caller)
        return await _run(d.refuse(transfer_id, user=body.user, reason=body.reason), today(d))

    @router.post("/{transfer_id}/cancel")
    async def cancel(transfer_id: TransferId, body: StepIn, caller: Caller) -> TransferOut:
        d = desk(caller)
        return await _run(d.cancel(transfer_id, user=body.user, reason=body.reason), today(d))

    @router.post("/{transfer_id}/complete")
    async def complete(transfer_id: TransferId, body: CompleteIn, caller: Caller) -> TransferOut:
        d = desk(caller)
        return await _run(
            d.complete(
                transfer_id,
                user=body.user,
                reason=body.reason,
                completed_on=body.completed_on,
                address_notified_on=body.address_notified_on,
                case_team=body.case_team,
            ),
            today(d),
        )

    @router.get("")
    async def list_transfers(caller: Caller) -> list[TransferOut]:
        d = desk(caller)
        return [_out(r, today(d)) for r in d.registry.records()]

    @router.get("/overdue")
    async def overdue_transfers(caller: Caller, on: IsoDay | None = None) -> list[OverdueOut]:
        d = desk(caller)
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

    @router.get("/{transfer_id}")
    async def get_transfer(transfer_id: TransferId, caller: Caller) -> TransferOut:
        d = desk(caller)
        record = d.registry.get(transfer_id)
        if record is None:
            raise HTTPException(
                status_code=404,
                detail={"error": "transfer.unknown", "detail": "no such transfer known here"},
            )
        return _out(record, today(d))

    return router
