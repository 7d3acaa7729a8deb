"""Risk assessment (police ARMS, probation OASys)."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field

from schemas.common import LongText, RecordDate, ShortText, VersionOne
from schemas.messages.base import InSummary, MessageBody, Sensitive, Sensitivity
from schemas.messages.parts import VictimDetail


class RiskLevel(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "very-high"


class RiskGroup(enum.StrEnum):
    CHILDREN = "children"
    KNOWN_ADULT = "known-adult"
    PUBLIC = "public"
    STAFF = "staff"
    PRISONERS = "prisoners"


class RiskAssessment(MessageBody):
    message_type: Literal["risk-assessment"] = "risk-assessment"
    schema_version: VersionOne = 1
    tool: Literal["ARMS", "OASys", "other"]
    assessed_on: RecordDate
    risk_of_serious_harm: Annotated[RiskLevel, InSummary()]
    risk_to: Annotated[tuple[RiskGroup, ...], InSummary()] = Field(max_length=5)
    factors: tuple[ShortText, ...] = Field(max_length=50)
    summary: Annotated[LongText, InSummary()]
    victims: Annotated[tuple[VictimDetail, ...], Sensitive(Sensitivity.VICTIM)] = Field(
        default=(), max_length=20
    )
    health_notes: Annotated[LongText | None, Sensitive(Sensitivity.HEALTH)] = None
    intelligence_source: Annotated[ShortText | None, Sensitive(Sensitivity.INTELLIGENCE)] = None
