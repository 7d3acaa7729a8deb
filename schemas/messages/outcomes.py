"""Serious further offence notification (lead agency)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.common import LongText, RecordDate, ShortText, VersionOne
from schemas.messages.base import InSummary, MessageBody, Sensitive, Sensitivity
from schemas.messages.parts import VictimDetail


class SeriousFurtherOffence(MessageBody):
    message_type: Literal["serious-further-offence"] = "serious-further-offence"
    schema_version: VersionOne = 1
    offence: Annotated[ShortText, InSummary()]
    offence_date: Annotated[RecordDate, InSummary()]
    charged_on: Annotated[RecordDate | None, InSummary()] = None
    under_supervision: bool
    review_required: Annotated[bool, InSummary()]
    circumstances: LongText
    victims: Annotated[tuple[VictimDetail, ...], Sensitive(Sensitivity.VICTIM)] = Field(
        default=(), max_length=20
    )

    @model_validator(mode="after")
    def _coherent(self) -> SeriousFurtherOffence:
        if self.charged_on is not None and self.charged_on < self.offence_date:
            raise ValueError("charged_on cannot be before offence_date")
        return self
