"""Housing authority: a housing-management system's tenancy risk flags.

Received messages become a risk flag against the applicant or tenant. Only the
redacted view ever arrives here: no victim identity, health detail or source::

    {"applicantName": "...", "dateOfBirth": "yyyy-mm-dd", "policeRef": "...",
     "flag": "MAPPA", "flagLevel": 2, "noticeType": "risk-assessment", "view": "redacted",
     "notice": {...}}
"""

from __future__ import annotations

from typing import Any

from agency_adapters.base import AgencyAdapter
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody


class HousingAdapter(AgencyAdapter):
    role = Role.HOUSING
    system = "housing management export"

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
