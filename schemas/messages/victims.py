"""Victim views, carried into meetings by the probation victim liaison officer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.common import RecordDate, ShortText, VersionOne
from schemas.messages.base import InSummary, MessageBody, Sensitive, Sensitivity
from schemas.messages.parts import VictimDetail


class VictimViews(MessageBody):
    message_type: Literal["victim-views"] = "victim-views"
    schema_version: VersionOne = 1
    received_on: Annotated[RecordDate, InSummary()]
    liaison_officer: ShortText
    statutory_scheme: Annotated[bool, InSummary()] = Field(
        description="in the statutory Victim Contact Scheme (sentence of 12 months or more)"
    )
    concerns: tuple[ShortText, ...] = Field(min_length=1, max_length=20)
    # Phrased without naming anyone ("exclusion zone: Hanley town centre"): they reach
    # summaries. Who is to be protected lives in ``victims``.
    requested_conditions: Annotated[tuple[ShortText, ...], InSummary()] = Field(
        default=(), max_length=20
    )
    wants_updates: bool = True
    victims: Annotated[tuple[VictimDetail, ...], Sensitive(Sensitivity.VICTIM)] = Field(
        min_length=1, max_length=20
    )
    contact_arrangements: Annotated[ShortText | None, Sensitive(Sensitivity.VICTIM)] = None
