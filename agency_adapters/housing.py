"""Housing authority: a housing-management system's tenancy risk flags.

Publishes MAPPA A referrals from the housing register (JSON, ``caseType``
``MAPPA_REFERRAL``, dates dd/mm/yyyy; the police reference is what the authority
was given with the nomination)::

    {"caseType": "MAPPA_REFERRAL", "applicantName": "...", "dateOfBirth": "dd/mm/yyyy",
     "policeRef": "...", "mappaArea": "staffordshire", "mappaCategory": 1, "mappaLevel": 1,
     "referral": {"date": "dd/mm/yyyy", "levelRequested": 2, "reason": "...",
                  "risk": "HIGH", "summary": "...", "officer": "..."}}

Received messages become a risk flag against the applicant or tenant::

    {"applicantName": "...", "dateOfBirth": "yyyy-mm-dd", "policeRef": "...",
     "flag": "MAPPA", "flagLevel": 2, "noticeType": "risk-assessment", "view": "redacted",
     "notice": {...}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import AgencyAdapter, RecordMapping, uk_date
from agency_adapters.tables import ReferralColumns, SubjectColumns
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody

REFERRAL = ReferralColumns(
    SubjectColumns(
        pnc="policeRef",
        name="applicantName",
        mappa=("mappaArea", "mappaCategory", "mappaLevel"),
        date=uk_date,
    ),
    risk="risk",
    referrer="officer",
)


class HousingAdapter(AgencyAdapter):
    role = Role.HOUSING
    kind = "housing"
    system = "housing management export"
    record_type_field = "caseType"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "MAPPA_REFERRAL": ("level-referral", REFERRAL.read),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return {
            "applicantName": body.subject.name,
            "dateOfBirth": body.subject.date_of_birth,
            "policeRef": body.subject.pnc_id,
            "flag": "MAPPA",
            "flagLevel": int(body.level),
            "noticeType": body.message_type,
            "view": view.value,
            "notice": body.model_dump(mode="json", exclude={"subject", "message_type"}),
        }
