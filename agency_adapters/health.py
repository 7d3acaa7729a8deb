"""Health: an NHS mental health trust's patient-record export (JSON, RiO-like).

``documentType`` is ``HOSPITAL_ORDER`` (a patient detained under a hospital or
guardianship order is a category 2 MAPPA offender) or ``MAPPA_REFERRAL``. Dates
are ISO. The NHS number stays in the trust: the PNC id is the shared key::

    {"documentType": "HOSPITAL_ORDER", "nhsNumber": "9434765919", "pnc": "...",
     "patientName": "...", "dateOfBirth": "1980-03-14",
     "mappa": {"area": "staffordshire", "category": 2, "level": 1},
     "order": {"section": "MHA 1983 s37/41", "offence": "...", "convicted": "...",
               "ordered": "...", "court": "...", "clinicalSummary": "..."}}

Received messages become clinical risk alerts on the patient record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import AgencyAdapter, RecordMapping, detail
from agency_adapters.tables import ReferralColumns, SubjectColumns
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody

PATIENT = SubjectColumns(name="patientName", date=None)
REFERRAL = ReferralColumns(
    PATIENT,
    risk="riskLevel",
    summary="riskSummary",
    referrer="clinician",
    health_notes="clinicalNotes?",
)


def hospital_order(record: Mapping[str, Any]) -> dict[str, Any]:
    o = record["order"]
    return {
        **PATIENT.about(record),
        "basis": "hospital-or-guardianship-order",
        "index_offence": o["offence"],
        "conviction_date": o["convicted"],
        "sentence": f"Hospital order ({o['court']})",
        "sentence_date": o["ordered"],
        # The section and the clinical picture are health detail: full view only.
        "hospital_order_detail": f"{o['section']}: {o['clinicalSummary']}"[:200],
    }


class HealthAdapter(AgencyAdapter):
    role = Role.HEALTH
    kind = "health"
    system = "NHS trust patient record export"
    record_type_field = "documentType"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "HOSPITAL_ORDER": ("eligibility-notified", hospital_order),
        "MAPPA_REFERRAL": ("level-referral", REFERRAL.read),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return {
            "pnc": body.subject.pnc_id,
            "patientName": body.subject.name,
            "dateOfBirth": body.subject.date_of_birth,
            "alert": {"code": "MAPPA", "level": int(body.level), "source": body.message_type},
            "view": view.value,
            "content": detail(body),
        }
