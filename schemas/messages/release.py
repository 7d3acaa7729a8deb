"""Release scheduled / address approved (prison, probation)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.common import IsoDate, LongText, ShortText
from schemas.messages.base import InSummary, MessageBody, Sensitive, Sensitivity
from schemas.messages.parts import Address


class ReleaseScheduled(MessageBody):
    message_type: Literal["release-scheduled"] = "release-scheduled"
    schema_version: Literal[1] = 1
    release_date: Annotated[IsoDate, InSummary()]
    establishment: Annotated[ShortText, InSummary()]
    release_address: Address | None = None
    address_approved: bool
    licence_end: IsoDate | None = None
    notes: LongText | None = None
    # Conditions asked for by victims (exclusion zones, no contact) name them.
    victim_requested_conditions: Annotated[tuple[ShortText, ...], Sensitive(Sensitivity.VICTIM)] = (
        Field(default=(), max_length=20)
    )
    health_notes: Annotated[LongText | None, Sensitive(Sensitivity.HEALTH)] = None
