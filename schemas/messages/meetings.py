"""Meeting minutes (MAPPA B) and the risk management plan they maintain."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.common import AgencyId, LongText, RecordDate, Role, ShortText, VersionOne
from schemas.messages.base import InSummary, Level, MessageBody, Sensitive, Sensitivity
from schemas.messages.parts import Action


class MeetingMinutes(MessageBody):
    """Form MAPPA B: what a level 2 or 3 meeting decided and who does what."""

    message_type: Literal["meeting-minutes"] = "meeting-minutes"
    schema_version: VersionOne = 1
    meeting_date: Annotated[RecordDate, InSummary()]
    meeting_kind: Annotated[Literal["initial", "review", "emergency"], InSummary()]
    chair: ShortText
    attending: Annotated[tuple[Role, ...], InSummary()] = Field(min_length=1, max_length=20)
    decisions: tuple[ShortText, ...] = Field(min_length=1, max_length=50)
    risk_management_plan: LongText
    actions: Annotated[tuple[Action, ...], InSummary()] = Field(default=(), max_length=100)
    next_meeting: Annotated[RecordDate | None, InSummary()] = None
    disclosure_considered: bool = False
    victim_issues: Annotated[LongText | None, Sensitive(Sensitivity.VICTIM)] = None
    health_information: Annotated[LongText | None, Sensitive(Sensitivity.HEALTH)] = None
    intelligence: Annotated[LongText | None, Sensitive(Sensitivity.INTELLIGENCE)] = None

    @model_validator(mode="after")
    def _coherent(self) -> MeetingMinutes:
        if self.level is Level.ORDINARY:
            raise ValueError("MAPP meetings manage level 2 and 3 cases only")
        if self.next_meeting is not None and self.next_meeting <= self.meeting_date:
            raise ValueError("next_meeting must be after meeting_date")
        return self


class PlanHeading(enum.StrEnum):
    """The four pillars of a MAPPA risk management plan."""

    SUPERVISION = "supervision"
    MONITORING_AND_CONTROL = "monitoring-and-control"
    INTERVENTIONS_AND_TREATMENT = "interventions-and-treatment"
    VICTIM_SAFETY_PLANNING = "victim-safety-planning"


class PlanAction(Action):
    heading: PlanHeading
    status: Literal["open", "done", "overdue"] = "open"


class RiskManagementPlanUpdated(MessageBody):
    message_type: Literal["risk-management-plan-updated"] = "risk-management-plan-updated"
    schema_version: VersionOne = 1
    lead_agency: Annotated[AgencyId, InSummary()]
    updated_on: Annotated[RecordDate, InSummary()]
    review_by: Annotated[RecordDate, InSummary()]
    actions: Annotated[tuple[PlanAction, ...], InSummary()] = Field(min_length=1, max_length=100)
    contingency: LongText | None = None
    # Safety measures for named victims (contact, routes, alarms) identify them.
    victim_safety_measures: Annotated[tuple[ShortText, ...], Sensitive(Sensitivity.VICTIM)] = Field(
        default=(), max_length=20
    )
    treatment_detail: Annotated[LongText | None, Sensitive(Sensitivity.HEALTH)] = None

    @model_validator(mode="after")
    def _coherent(self) -> RiskManagementPlanUpdated:
        if self.review_by <= self.updated_on:
            raise ValueError("review_by must be after updated_on")
        return self
