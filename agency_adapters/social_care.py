"""Children's and adult social care: two systems, one ``social-care`` role.

Children's services export workflow steps from a Mosaic-like system as JSON
(``workflowStep``: ``MAPPA_REFERRAL``; dates ISO)::

    {"workflowStep": "MAPPA_REFERRAL", "personId": 88123, "pnc": "2011/0456789K",
     "fullName": "Alex Sample", "dateOfBirth": "1980-03-14",
     "mappa": {"area": "staffordshire", "category": 1, "level": 1},
     "form": {"dateReferred": "2026-06-01", "levelRequested": 2, "reason": "...",
              "riskLevel": "High", "riskSummary": "...", "socialWorker": "..."}}

Adult services export CSV from a LiquidLogic-like system, one row per form
(``FormType``: ``MAPPA_REFERRAL``; dates dd/mm/yyyy); see docs/record-formats.md.

Children's services receive case notes (JSON); adult services receive rows in the
same CSV layout they import alerts from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import AgencyAdapter, RecordMapping, detail
from agency_adapters.tables import AlertColumns, ReferralColumns, SubjectColumns
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody

MOSAIC = ReferralColumns(
    SubjectColumns(name="fullName", date=None),
    within="form",
    referred_on="dateReferred",
    risk="riskLevel",
    summary="riskSummary",
    referrer="socialWorker",
    victims="childrenAtRisk?",
)


LAS = ReferralColumns.row(
    pnc="PNC",
    name=("Forename", "Surname"),
    dob="DOB",
    area="MappaArea",
    category="MappaCategory",
    level="MappaLevel",
    referred_on="ReferralDate",
    requested_level="LevelRequested",
    reason="Reason",
    risk="RoSH",
    summary="RiskSummary",
    referrer="Worker",
    health_notes="HealthNotes?",
)


class ChildrensSocialCareAdapter(AgencyAdapter):
    role = Role.SOCIAL_CARE
    kind = "childrens-social-care"
    system = "children's social care workflow export"
    record_type_field = "workflowStep"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "MAPPA_REFERRAL": ("level-referral", MOSAIC.read),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return {
            "pnc": body.subject.pnc_id,
            "fullName": body.subject.name,
            "dateOfBirth": body.subject.date_of_birth,
            "caseNoteType": "MAPPA information",
            "messageType": body.message_type,
            "view": view.value,
            "content": detail(body),
        }


class AdultSocialCareAdapter(AgencyAdapter):
    role = Role.SOCIAL_CARE
    kind = "adult-social-care"
    system = "adult social care CSV export"
    record_type_field = "FormType"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "MAPPA_REFERRAL": ("level-referral", LAS.read),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        """One CSV row of the alerts import: every value a string."""
        return AlertColumns().render(body, view)
