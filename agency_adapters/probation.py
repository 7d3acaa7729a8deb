"""Probation: the case-management export (nDelius-like) with OASys assessments.

JSON, one record per event, keyed by CRN; ``recordType`` says which event. Dates
are ISO (``yyyy-mm-dd``, OASys completion as a date-time). The offender's MAPPA
state is held as nDelius registers it: ``{"category": "M1", "level": "L2"}``::

    {"recordType": "OASYS", "crn": "X123456", "pnc": "2011/0456789K",
     "firstName": "Alex", "surname": "Sample", "dateOfBirth": "1980-03-14",
     "mappaArea": "staffordshire", "mappa": {"category": "M1", "level": "L2"},
     "oasys": {"completedDate": "2026-11-02T10:15:00Z", "riskToChildren": "HIGH", ...}}

Received messages become "contact" entries on the case, keyed by CRN where known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import AgencyAdapter, RecordMapping, enum_code, iso_day
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody
from schemas.messages.risk import RiskLevel

CONTACT_TYPES = {
    "risk-assessment": "MAPPA_RISK",
    "release-scheduled": "MAPPA_RELEASE",
    "licence-conditions-set": "MAPPA_LICENCE",
    "breach-recall": "MAPPA_RECALL",
    "area-transfer": "MAPPA_TRANSFER",
    "victim-views": "MAPPA_VLO",
    "meeting-minutes": "MAPPA_MEETING",
    "level-set": "MAPPA_LEVEL",
    "level-referral": "MAPPA_REFERRAL",
}
# OASys scores risk of serious harm per group; the overall level is the highest.
ROSH_GROUPS = {
    "riskToChildren": "children",
    "riskToPublic": "public",
    "riskToKnownAdult": "known-adult",
    "riskToStaff": "staff",
    "riskToPrisoners": "prisoners",
}
ROSH_ORDER = [RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.VERY_HIGH]
EVENTS = {"BREACH": "breach", "RECALL": "recall", "RTC": "returned-to-custody"}


def mappa_code(text: str, prefix: str) -> int:
    """nDelius register codes "M1" (category) and "L2" (level) as numbers."""
    if not (isinstance(text, str) and text.startswith(prefix) and text[1:].isdigit()):
        raise ValueError(f"expected a MAPPA code like {prefix}1, got {text!r}")
    return int(text[1:])


def case(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "subject": {
            "pnc_id": record["pnc"],
            "probation_crn": record["crn"],
            "name": f"{record['firstName']} {record['surname']}",
            "date_of_birth": record["dateOfBirth"],
        },
        "area": record["mappaArea"],
        "category": mappa_code(record["mappa"]["category"], "M"),
        "level": mappa_code(record["mappa"]["level"], "L"),
    }


def oasys(record: Mapping[str, Any]) -> dict[str, Any]:
    o = record["oasys"]
    scores = {group: RiskLevel(enum_code(o[key])) for key, group in ROSH_GROUPS.items() if key in o}
    if not scores:
        raise ValueError("an OASys RoSH summary scores at least one group")
    overall = max(scores.values(), key=ROSH_ORDER.index)
    return {
        **case(record),
        "tool": "OASys",
        "assessed_on": iso_day(o["completedDate"]),
        "risk_of_serious_harm": overall.value,
        # The groups at the overall level are the ones the risk is "to".
        "risk_to": [g for g, level in scores.items() if level is overall],
        "factors": o.get("criminogenicNeeds", []),
        "summary": o["roshSummary"],
        "victims": o.get("victims", []),
        "health_notes": o.get("healthIssues"),
    }


def licence(record: Mapping[str, Any]) -> dict[str, Any]:
    lic = record["licence"]
    curfew = lic.get("curfew")
    return {
        **case(record),
        "change": "made" if lic["action"] == "SET" else enum_code(lic["action"]),
        "licence_start": lic["startDate"],
        "licence_end": lic["endDate"],
        "conditions": [{"kind": "standard", "text": t} for t in lic.get("standard", [])]
        + [{"kind": "additional", "text": t} for t in lic.get("additional", [])],
        "exclusion_zones": lic.get("exclusionZones", []),
        "curfew": curfew
        and {"start": curfew["from"], "end": curfew["until"], "address": curfew["address"]},
        "electronic_monitoring": bool(lic.get("tagged", False)),
        "approved_premises": bool(lic.get("approvedPremises", False)),
        "victim_conditions": lic.get("victimConditions", []),
        "treatment_conditions": lic.get("treatmentConditions", []),
    }


def recall(record: Mapping[str, Any]) -> dict[str, Any]:
    r = record["recall"]
    return {
        **case(record),
        "event": EVENTS[r["event"]],
        "event_date": r["date"],
        "breach_of": enum_code(r["breachOf"]),
        "recall_type": r.get("recallType") and enum_code(r["recallType"]),
        "reason": r["reason"],
        "establishment": r.get("establishment"),
        "intelligence_source": r.get("intelSource"),
    }


def transfer(record: Mapping[str, Any]) -> dict[str, Any]:
    t = record["transfer"]
    return {
        **case(record),
        "stage": enum_code(t["status"]),
        "to_area": t["receivingArea"],
        "move_date": t["moveDate"],
        "transfer_due_by": t["dueBy"],
        "receiving_lead": t.get("receivingLead"),
        "new_address": t.get("newAddress"),
        "reason": t["reason"],
        "open_actions": t.get("openActions", []),
        "victim_considerations": t.get("victimNotes"),
    }


def victim_contact(record: Mapping[str, Any]) -> dict[str, Any]:
    v = record["victimContact"]
    return {
        **case(record),
        "received_on": v["date"],
        "liaison_officer": v["vlo"],
        "statutory_scheme": bool(v["statutory"]),
        "concerns": v["concerns"],
        "requested_conditions": v.get("requestedConditions", []),
        "wants_updates": bool(v.get("optIn", True)),
        "victims": v["victims"],
        "contact_arrangements": v.get("contactArrangements"),
    }


def sfo(record: Mapping[str, Any]) -> dict[str, Any]:
    s = record["sfo"]
    return {
        **case(record),
        "offence": s["offence"],
        "offence_date": s["offenceDate"],
        "charged_on": s.get("chargeDate"),
        "under_supervision": bool(s["underSupervision"]),
        "review_required": bool(s["reviewRequired"]),
        "circumstances": s["circumstances"],
        "victims": s.get("victims", []),
    }


def registration(record: Mapping[str, Any]) -> dict[str, Any]:
    """The MAPPA register entry nDelius adds at sentence: eligibility and its basis."""
    r = record["registration"]
    return {
        **case(record),
        "basis": enum_code(r["basis"]),
        "index_offence": r["mainOffence"],
        "conviction_date": r["convictionDate"],
        "sentence": r["sentence"],
        "sentence_date": r["sentenceDate"],
        "earliest_release_date": r.get("expectedReleaseDate"),
        "sentence_expiry_date": r.get("sentenceExpiryDate"),
        "notification_period": r.get("notificationPeriod"),
        "victims": r.get("victims", []),
    }


def referral(record: Mapping[str, Any]) -> dict[str, Any]:
    r = record["referral"]
    return {
        **case(record),
        "referred_on": r["date"],
        "requested_level": mappa_code(r["levelRequested"], "L"),
        "reason": r["reason"],
        "risk_of_serious_harm": enum_code(r["rosh"]),
        "risk_summary": r["summary"],
        "release_or_hearing_date": r.get("releaseDate"),
        "referrer": r["offenderManager"],
        "victims": r.get("victims", []),
        "health_notes": r.get("healthIssues"),
    }


def plan(record: Mapping[str, Any]) -> dict[str, Any]:
    p = record["plan"]
    return {
        **case(record),
        "lead_agency": p["leadAgency"],
        "updated_on": p["updated"],
        "review_by": p["reviewBy"],
        "actions": [
            {
                "heading": enum_code(a["heading"]),
                "owner": a["owner"],
                "action": a["action"],
                "due": a.get("due"),
                "status": enum_code(a.get("status", "OPEN")),
            }
            for a in p["actions"]
        ],
        "contingency": p.get("contingency"),
        "victim_safety_measures": p.get("victimSafety", []),
        "treatment_detail": p.get("interventions"),
    }


def release_address(record: Mapping[str, Any]) -> dict[str, Any]:
    """The offender manager approves the release address (or approved premises)."""
    r = record["releaseAddress"]
    return {
        **case(record),
        "release_date": r["releaseDate"],
        "establishment": r["establishment"],
        "release_address": r["address"],
        "address_approved": bool(r["approved"]),
        "licence_end": r.get("licenceEnd"),
        "notes": r.get("notes"),
        "victim_requested_conditions": r.get("victimConditions", []),
    }


def termination(record: Mapping[str, Any]) -> dict[str, Any]:
    t = record["termination"]
    return {
        **case(record),
        "reason": enum_code(t["reason"]),
        "exit_date": t["date"],
        "lead_agency": t["leadAgency"],
        "notes": t.get("notes"),
        "continuing_arrangements": t.get("continuing"),
    }


def case_contact(body: MessageBody, view: ViewKind) -> dict[str, Any]:
    detail = body.model_dump(
        mode="json", exclude={"subject", "area", "category", "level", "message_type"}
    )
    return {
        "crn": body.subject.probation_crn,
        "pnc": body.subject.pnc_id,
        "offenderName": body.subject.name,
        "contactType": CONTACT_TYPES.get(body.message_type, "MAPPA_OTHER"),
        "mappa": {"category": f"M{int(body.category)}", "level": f"L{int(body.level)}"},
        "view": view.value,
        "detail": detail,
    }


class ProbationAdapter(AgencyAdapter):
    role = Role.PROBATION
    kind = "probation"
    system = "probation case management export"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "OASYS": ("risk-assessment", oasys),
        "LICENCE": ("licence-conditions-set", licence),
        "RECALL": ("breach-recall", recall),
        "TRANSFER": ("area-transfer", transfer),
        "VICTIM_CONTACT": ("victim-views", victim_contact),
        "SFO": ("serious-further-offence", sfo),
        "REGISTRATION": ("eligibility-notified", registration),
        "REFERRAL": ("level-referral", referral),
        "RMP": ("risk-management-plan-updated", plan),
        "RELEASE_ADDRESS": ("release-scheduled", release_address),
        "TERMINATION": ("exit-from-mappa", termination),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return case_contact(body, view)
