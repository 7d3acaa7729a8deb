"""Case team (co-ordination unit): which agencies are active on an offender's case.

Rules marked ``active_role_required`` reach only the agencies on the latest case
team for the subject, on both ends: the sender wraps keys only for them and each
recipient refuses such a message unless its own record puts it on the team. A new
case team replaces the previous one for the next message.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.common import AgencyId, Frozen, RecordDate, Role, VersionOne
from schemas.messages.base import InSummary, MessageBody

# A MAPP meeting seldom has more than a dozen agencies; 64 is generous and bounded.
MAX_CASE_TEAM = 64


class CaseTeamMember(Frozen):
    agency_id: AgencyId
    role: Role


class CaseTeam(MessageBody):
    message_type: Literal["case-team"] = "case-team"
    schema_version: VersionOne = 1
    effective_from: Annotated[RecordDate, InSummary()]
    lead_agency: Annotated[AgencyId, InSummary()]
    members: Annotated[tuple[CaseTeamMember, ...], InSummary()] = Field(
        min_length=1, max_length=MAX_CASE_TEAM
    )

    @model_validator(mode="after")
    def _coherent(self) -> CaseTeam:
        ids = [m.agency_id for m in self.members]
        if len(ids) != len(set(ids)):
            raise ValueError("an agency is on a case team once")
        if self.lead_agency not in ids:
            raise ValueError("the lead agency must be a member of the case team")
        return self

    @property
    def member_ids(self) -> frozenset[str]:
        return frozenset(m.agency_id for m in self.members)
