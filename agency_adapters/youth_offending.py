"""Youth offending team: the YOT case-management export (ChildView-like).

JSON, one record per event; ``recordType`` is ``ELIGIBILITY`` (a young person's
sentence makes them MAPPA-eligible) or ``REFERRAL`` (MAPPA A, from an AssetPlus
assessment). Dates are dd/mm/yyyy::

    {"recordType": "REFERRAL", "youthRef": "YOT-2291", "pnc": "2019/0045612L",
     "givenName": "Sam", "familyName": "Example", "dob": "02/02/2008",
     "mappa": {"area": "staffordshire", "category": 2, "level": 1},
     "referral": {"date": "01/06/2026", "levelRequested": 2, "reason": "...",
                  "rosh": "HIGH", "summary": "...", "practitioner": "YOT officer"}}

Received messages become case notes on the young person's record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import AgencyAdapter, RecordMapping, detail, optional_uk_date, uk_date
from agency_adapters.tables import ReferralColumns, SubjectColumns
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody

BASES = {
    "SOA_PART2": "notification-requirements",
    "VIOLENT_12M": "violent-sentence-12-months-or-more",
    "OTHER_DANGEROUS": "other-dangerous-offender",
}


YOUNG_PERSON = SubjectColumns(name=("givenName", "familyName"), dob="dob", date=uk_date)
REFERRAL = ReferralColumns(
    YOUNG_PERSON,
    risk="rosh",
    referrer="practitioner",
    victims="victims?",
    health_notes="health?",
)


def eligibility(record: Mapping[str, Any]) -> dict[str, Any]:
    o = record["order"]
    return {
        **YOUNG_PERSON.about(record),
        "basis": BASES[o["basis"]],
        "index_offence": o["offence"],
        "conviction_date": uk_date(o["convicted"]),
        "sentence": o["disposal"],
        "sentence_date": uk_date(o["sentenced"]),
        "earliest_release_date": optional_uk_date(o.get("releaseDate")),
        "sentence_expiry_date": optional_uk_date(o.get("orderEnd")),
        "notification_period": o.get("notificationPeriod"),
    }


class YouthOffendingAdapter(AgencyAdapter):
    role = Role.YOUTH_OFFENDING
    kind = "youth-offending"
    system = "YOT case management export"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "ELIGIBILITY": ("eligibility-notified", eligibility),
        "REFERRAL": ("level-referral", REFERRAL.read),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return {
            "pnc": body.subject.pnc_id,
            "youngPerson": body.subject.name,
            "noteType": "MAPPA",
            "subType": body.message_type,
            "mappaLevel": int(body.level),
            "view": view.value,
            "note": detail(body),
        }
