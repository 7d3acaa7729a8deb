"""Prison: offender management records (NOMIS-like), keyed by prison number.

JSON, one record per event; ``eventType`` names it. Dates are ISO. The MAPPA
state sits in the prisoner's ``mappa`` block as the OMU records it::

    {"eventType": "RELEASE", "offenderNo": "A1234BC", "pncNumber": "2011/0456789K",
     "firstName": "ALEX", "lastName": "SAMPLE", "dateOfBirth": "1980-03-14",
     "mappa": {"area": "staffordshire", "category": 1, "level": 2},
     "release": {"releaseDate": "2026-12-01", "establishment": "HMP Stafford", ...}}

Received messages become case-note alerts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import AgencyAdapter, RecordMapping, enum_code
from agency_adapters.tables import PlanColumns, ReferralColumns, SubjectColumns
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody

BASES = {
    "SOA_PART2": "notification-requirements",
    "VIOLENT_12M": "violent-sentence-12-months-or-more",
    "HOSPITAL_ORDER": "hospital-or-guardianship-order",
    "OTHER_DANGEROUS": "other-dangerous-offender",
    "TERRORISM": "terrorism-risk",
}

PRISONER = SubjectColumns(
    pnc="pncNumber",
    refs={"prison_number": "offenderNo"},
    name=("firstName", "lastName"),
    date=None,
    names_in_capitals=True,
)
# MAPPA A from the offender management unit, due six months before release.
REFERRAL = ReferralColumns(
    PRISONER,
    referred_on="referralDate",
    risk="rosh",
    release_or_hearing_date="releaseDate?",
    referrer="omuContact",
    health_notes="healthcareNotes?",
    intelligence_source="securityIntel?",
)
# The custody risk management plan while the prison leads.
PLAN = PlanColumns(PRISONER, action_status=False, contingency=None, victim_safety_measures=None)


def release(record: Mapping[str, Any]) -> dict[str, Any]:
    r = record["release"]
    return {
        **PRISONER.about(record),
        "release_date": r["releaseDate"],
        "establishment": r["establishment"],
        "release_address": r.get("address"),
        "address_approved": bool(r["addressApproved"]),
        "licence_end": r.get("licenceExpiryDate"),
        "notes": r.get("comment"),
        "victim_requested_conditions": r.get("victimConditions", []),
        "health_notes": r.get("healthcareNotes"),
    }


def reception(record: Mapping[str, Any]) -> dict[str, Any]:
    """A recalled prisoner received back into custody."""
    r = record["reception"]
    return {
        **PRISONER.about(record),
        "event": "returned-to-custody",
        "event_date": r["receptionDate"],
        "breach_of": "licence",
        "recall_type": enum_code(r["recallType"]),
        "reason": r["reason"],
        "establishment": r["establishment"],
    }


def sentence(record: Mapping[str, Any]) -> dict[str, Any]:
    """MAPPA screening at sentence: the prisoner is eligible, on this basis."""
    s = record["sentence"]
    return {
        **PRISONER.about(record),
        "basis": BASES[s["mappaBasis"]],
        "index_offence": s["mainOffence"],
        "conviction_date": s["convictionDate"],
        "sentence": s["description"],
        "sentence_date": s["sentenceDate"],
        "earliest_release_date": s.get("conditionalReleaseDate"),
        "sentence_expiry_date": s.get("sentenceExpiryDate"),
        "notification_period": s.get("notificationPeriod"),
        "hospital_order_detail": s.get("hospitalOrder"),
        "victims": s.get("victims", []),
    }


def licence(record: Mapping[str, Any]) -> dict[str, Any]:
    """Licence conditions issued at release by the governor on the Secretary of State's behalf."""
    lic = record["licence"]
    return {
        **PRISONER.about(record),
        "change": enum_code(lic["action"]),
        "licence_start": lic["startDate"],
        "licence_end": lic["expiryDate"],
        "conditions": [
            {"kind": enum_code(c["type"]), "text": c["text"]} for c in lic["conditions"]
        ],
        "exclusion_zones": lic.get("exclusionZones", []),
        "electronic_monitoring": bool(lic.get("electronicMonitoring", False)),
        "approved_premises": bool(lic.get("approvedPremises", False)),
        "victim_conditions": lic.get("victimConditions", []),
    }


class PrisonAdapter(AgencyAdapter):
    role = Role.PRISON
    kind = "prison"
    system = "prison offender management export"
    record_type_field = "eventType"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "RELEASE": ("release-scheduled", release),
        "RECEPTION": ("breach-recall", reception),
        "SENTENCE": ("eligibility-notified", sentence),
        "REFERRAL": ("level-referral", REFERRAL.read),
        "RMP": ("risk-management-plan-updated", PLAN.read),
        "LICENCE": ("licence-conditions-set", licence),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return {
            "prisonNumber": body.subject.prison_number,
            "pncNumber": body.subject.pnc_id,
            "alertCode": "MAPPA",
            "alertType": body.message_type,
            "mappaLevel": int(body.level),
            "accessLevel": view.value,
            "text": body.model_dump(mode="json", exclude={"subject", "message_type"}),
        }
