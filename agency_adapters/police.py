"""Police: the force's public-protection export (ViSOR nominal records and ARMS).

JSON, one record per event; every record carries the nominal and its MAPPA state,
and ``recordType`` says which event (``ARMS`` when absent, as older exports hold
only assessments). Dates are dd/mm/yyyy. See docs/record-formats.md for each type::

    {"recordType": "ARMS", "pnc": "2009/0123456X", "visorRef": "VR00012345",
     "surname": "...", "forenames": "...", "dob": "dd/mm/yyyy", "mappaArea": "staffordshire",
     "mappaCategory": 1, "mappaLevel": 2,
     "arms": {"completed": "dd/mm/yyyy", "rosh": "HIGH", "riskTo": ["CHILDREN"], ...}}

Received messages become PPU occurrence notes against the nominal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import AgencyAdapter, RecordMapping, enum_code, optional_uk_date, uk_date
from agency_adapters.tables import ExitColumns, PlanColumns, ReferralColumns, SubjectColumns
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody

NOTIFICATION_TYPES = {
    "INITIAL": "initial",
    "CHANGE": "change",
    "ANNUAL": "annual",
    "WEEKLY_NFA": "weekly-no-fixed-abode",
    "TRAVEL": "foreign-travel",
}
ORDER_TYPES = {
    "SHPO": "shpo",
    "SOPO": "sopo",
    "SRO": "sro",
    "NOTIFICATION_ORDER": "notification-order",
    "FTO": "foreign-travel-order",
}
SCHEMES = {
    "CSODS": "child-sex-offender-disclosure-scheme",
    "MAPPA": "mappa-disclosure",
    "RIGHT_TO_KNOW": "right-to-know",
}

NOMINAL = SubjectColumns(
    refs={"visor_ref": "visorRef?"},
    name=("forenames", "surname"),
    dob="dob",
    mappa=("mappaArea", "mappaCategory", "mappaLevel"),
    date=uk_date,
)
REFERRAL = ReferralColumns(
    NOMINAL,
    risk="rosh",
    referrer="officer",
    victims="victims?",
    intelligence_source="intelSource?",
)
# The ViSOR risk management plan: actions under the four MAPPA headings.
PLAN = PlanColumns(NOMINAL, review_by="review", treatment_detail=None)
EXIT = ExitColumns(NOMINAL, within="exit")


def premises(p: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """ViSOR premises (``street``, ``locality``, ``town``, ``postcode``) as an address."""
    if p is None:
        return None
    return {
        "line1": p["street"],
        "line2": p.get("locality"),
        "town": p["town"],
        "postcode": p["postcode"],
    }


def arms(record: Mapping[str, Any]) -> dict[str, Any]:
    a = record["arms"]
    return {
        **NOMINAL.about(record),
        "tool": "ARMS",
        "assessed_on": uk_date(a["completed"]),
        "risk_of_serious_harm": enum_code(a["rosh"]),
        "risk_to": [enum_code(r) for r in a.get("riskTo", [])],
        "factors": a.get("factors", []),
        "summary": a["narrative"],
        "victims": a.get("victims", []),
        "health_notes": a.get("healthConcerns"),
        "intelligence_source": a.get("intelSource"),
    }


def notification(record: Mapping[str, Any]) -> dict[str, Any]:
    n = record["notification"]
    travel = n.get("travel")
    return {
        **NOMINAL.about(record),
        "notification": NOTIFICATION_TYPES[n["type"]],
        "notified_on": uk_date(n["date"]),
        "due_by": optional_uk_date(n.get("dueBy")),
        "police_station": n["station"],
        "names_used": n.get("aliases", []),
        "home_address": premises(n.get("address")),
        "other_addresses": [premises(p) for p in n.get("otherAddresses", [])],
        "no_fixed_abode": bool(n.get("nfa", False)),
        "travel": travel
        and {
            "destination": travel["country"],
            "depart_on": uk_date(travel["depart"]),
            "return_on": optional_uk_date(travel.get("return")),
        },
        "child_in_household": n["childInHousehold"],
        "household_members": n.get("householdMembers", []),
        "bank_details_notified": bool(n.get("bank", False)),
        "passport_notified": bool(n.get("passport", False)),
        "national_insurance_notified": bool(n.get("niNumber", False)),
    }


def breach_outcome(record: Mapping[str, Any]) -> dict[str, Any]:
    b = record["breach"]
    return {
        **NOMINAL.about(record),
        "requirement_breached": NOTIFICATION_TYPES[b["requirement"]],
        "outcome": enum_code(b["disposal"]),
        "outcome_date": uk_date(b["date"]),
        "court": b.get("court"),
        "sentence": b.get("sentence"),
        "circumstances": b.get("circumstances"),
        "intelligence_source": b.get("intelSource"),
    }


def civil_order(record: Mapping[str, Any]) -> dict[str, Any]:
    o = record["order"]
    return {
        **NOMINAL.about(record),
        "order": ORDER_TYPES[o["type"]],
        "change": enum_code(o["action"]),
        "court": o["court"],
        "made_on": uk_date(o["made"]),
        "expires_on": optional_uk_date(o.get("expires")),
        "prohibitions": o["prohibitions"],
        "protected_persons": o.get("protectedPersons", []),
    }


def disclosure(record: Mapping[str, Any]) -> dict[str, Any]:
    d = record["disclosure"]
    return {
        **NOMINAL.about(record),
        "scheme": SCHEMES[d["scheme"]],
        "decision": "disclose" if d["disclose"] else "do-not-disclose",
        "decided_on": uk_date(d["decided"]),
        "decided_by": d["decidedBy"],
        "recipient_type": enum_code(d["recipientType"]),
        "rationale": d["rationale"],
        "what_disclosed": d.get("disclosed"),
        "disclosed_on": optional_uk_date(d.get("disclosedOn")),
        "recipient_identity": d.get("recipient"),
    }


def eligibility(record: Mapping[str, Any]) -> dict[str, Any]:
    """A ViSOR nominal created at conviction: the basis of MAPPA eligibility."""
    c = record["conviction"]
    return {
        **NOMINAL.about(record),
        "basis": enum_code(c["mappaBasis"]),
        "index_offence": c["offence"],
        "conviction_date": uk_date(c["convicted"]),
        "sentence": c["sentence"],
        "sentence_date": uk_date(c["sentenced"]),
        "earliest_release_date": optional_uk_date(c.get("releaseDate")),
        "sentence_expiry_date": optional_uk_date(c.get("sentenceExpiry")),
        "notification_period": c.get("registrationPeriod"),
        "victims": c.get("victims", []),
    }


def transfer(record: Mapping[str, Any]) -> dict[str, Any]:
    """ViSOR record transfer to the force of the new area."""
    t = record["transfer"]
    return {
        **NOMINAL.about(record),
        "stage": enum_code(t["stage"]),
        "to_area": t["toArea"],
        "move_date": uk_date(t["moveDate"]),
        "transfer_due_by": uk_date(t["dueBy"]),
        "receiving_lead": t.get("receivingForce"),
        "new_address": premises(t.get("newAddress")),
        "reason": t["reason"],
        "open_actions": t.get("openActions", []),
    }


def further_offence(record: Mapping[str, Any]) -> dict[str, Any]:
    f = record["furtherOffence"]
    return {
        **NOMINAL.about(record),
        "offence": f["offence"],
        "offence_date": uk_date(f["committed"]),
        "charged_on": optional_uk_date(f.get("charged")),
        "under_supervision": bool(f["onLicence"]),
        "review_required": bool(f["sfoReview"]),
        "circumstances": f["circumstances"],
        "victims": f.get("victims", []),
    }


class PoliceAdapter(AgencyAdapter):
    role = Role.POLICE
    kind = "police"
    system = "ViSOR/ARMS export"
    default_record_type = "ARMS"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "ARMS": ("risk-assessment", arms),
        "NOTIFICATION": ("rso-notification-recorded", notification),
        "BREACH_OUTCOME": ("notification-breach-outcome", breach_outcome),
        "CIVIL_ORDER": ("civil-order-made", civil_order),
        "DISCLOSURE": ("disclosure-decision", disclosure),
        "ELIGIBILITY": ("eligibility-notified", eligibility),
        "REFERRAL": ("level-referral", REFERRAL.read),
        "RMP": ("risk-management-plan-updated", PLAN.read),
        "TRANSFER": ("area-transfer", transfer),
        "SFO": ("serious-further-offence", further_offence),
        "EXIT": ("exit-from-mappa", EXIT.read),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        """Received messages become PPU occurrence notes against the nominal."""
        return {
            "pnc": body.subject.pnc_id,
            "visorRef": body.subject.visor_ref,
            "nominal": body.subject.name,
            "occurrenceType": body.message_type.upper().replace("-", "_"),
            "mappaLevel": int(body.level),
            "view": view.value,
            "details": body.model_dump(mode="json", exclude={"subject", "message_type"}),
        }
