"""Immigration enforcement (Home Office): the case-working system's JSON export.

Publishes MAPPA A referrals (``caseEvent`` ``MAPPA_REFERRAL``; ISO dates), for
example when a foreign national offender's deportation is in prospect::

    {"caseEvent": "MAPPA_REFERRAL", "cid": "CID-4400112", "pnc": "...",
     "familyName": "...", "givenNames": "...", "dateOfBirth": "1980-03-14",
     "mappa": {"area": "staffordshire", "category": 2, "level": 1},
     "referral": {"date": "2026-06-01", "levelRequested": 2, "reason": "...",
                  "risk": "HIGH", "summary": "...", "caseworker": "..."}}

Received messages become case notes on the Home Office case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import AgencyAdapter, RecordMapping, detail
from agency_adapters.tables import ReferralColumns, SubjectColumns
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody

REFERRAL = ReferralColumns(
    SubjectColumns(name=("givenNames", "familyName"), date=None),
    risk="risk",
    referrer="caseworker",
)


class ImmigrationAdapter(AgencyAdapter):
    role = Role.IMMIGRATION
    kind = "immigration"
    system = "Home Office case-working export"
    record_type_field = "caseEvent"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "MAPPA_REFERRAL": ("level-referral", REFERRAL.read),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return {
            "pnc": body.subject.pnc_id,
            "name": body.subject.name,
            "dateOfBirth": body.subject.date_of_birth,
            "noteType": "MAPPA",
            "event": body.message_type,
            "view": view.value,
            "note": detail(body),
        }
