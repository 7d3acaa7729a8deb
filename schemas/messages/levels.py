"""Level referral (MAPPA A), level set or changed, and exit from MAPPA."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.common import AgencyId, LongText, RecordDate, ShortText, VersionOne
from schemas.messages.base import InSummary, Level, MessageBody, Sensitive, Sensitivity
from schemas.messages.parts import VictimDetail
from schemas.messages.risk import RiskLevel


class LevelReferral(MessageBody):
    """Form MAPPA A: any agency asks for level 2 or 3 management."""

    message_type: Literal["level-referral"] = "level-referral"
    schema_version: VersionOne = 1
    referred_on: Annotated[RecordDate, InSummary()]
    requested_level: Annotated[Level, InSummary()]
    reason: Annotated[ShortText, InSummary()]
    risk_of_serious_harm: Annotated[RiskLevel, InSummary()]
    risk_summary: LongText
    # A prisoner's referral is due six months before release or a parole hearing.
    release_or_hearing_date: RecordDate | None = None
    referrer: ShortText = Field(description="officer and team making the referral")
    victims: Annotated[tuple[VictimDetail, ...], Sensitive(Sensitivity.VICTIM)] = Field(
        default=(), max_length=20
    )
    health_notes: Annotated[LongText | None, Sensitive(Sensitivity.HEALTH)] = None
    intelligence_source: Annotated[ShortText | None, Sensitive(Sensitivity.INTELLIGENCE)] = None

    @model_validator(mode="after")
    def _coherent(self) -> LevelReferral:
        if self.requested_level is Level.ORDINARY:
            raise ValueError("a referral asks for level 2 or 3; level 1 needs no referral")
        return self


class LevelSet(MessageBody):
    """The co-ordinator records the level a MAPP meeting or screening set."""

    message_type: Literal["level-set"] = "level-set"
    schema_version: VersionOne = 1
    previous_level: Annotated[Level | None, InSummary()] = None
    effective_date: Annotated[RecordDate, InSummary()]
    next_review: Annotated[RecordDate, InSummary()]
    decided_at: ShortText = Field(description="meeting or screening reference")
    rationale: LongText | None = None
    # Intelligence behind a level change is shared only with the RA and the unit.
    intelligence_basis: Annotated[ShortText | None, Sensitive(Sensitivity.INTELLIGENCE)] = None

    @model_validator(mode="after")
    def _coherent(self) -> LevelSet:
        if self.next_review <= self.effective_date:
            raise ValueError("next_review must be after effective_date")
        return self


class ExitReason(enum.StrEnum):
    REGISTRATION_ENDED = "registration-ended"
    LICENCE_EXPIRED = "licence-expired"
    ORDER_EXPIRED = "order-expired"
    RISK_REDUCED = "risk-no-longer-requires-mappa"
    DECEASED = "deceased"
    DEPORTED = "deported"
    LEFT_JURISDICTION = "left-jurisdiction"


class ExitFromMappa(MessageBody):
    message_type: Literal["exit-from-mappa"] = "exit-from-mappa"
    schema_version: VersionOne = 1
    reason: Annotated[ExitReason, InSummary()]
    exit_date: Annotated[RecordDate, InSummary()]
    lead_agency: Annotated[AgencyId, InSummary()]
    notes: LongText | None = None
    continuing_arrangements: ShortText | None = Field(
        default=None, description="what ordinary agency management continues, if any"
    )
    # e.g. detention under the Mental Health Act as the reason management ends.
    health_notes: Annotated[LongText | None, Sensitive(Sensitivity.HEALTH)] = None
