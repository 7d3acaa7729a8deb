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

from agency_adapters.base import (
    AgencyAdapter,
    FieldRule,
    RecordMapping,
    detail,
    enum_code,
    iso_day,
)
from agency_adapters.tables import ExitColumns, PlanColumns, ReferralColumns, SubjectColumns
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


CASE = SubjectColumns(
    refs={"probation_crn": "crn"},
    name=("firstName", "surname"),
    mappa=("mappaArea", "mappa.category", "mappa.level"),
    date=None,
    code_prefixes=("M", "L"),
)
REFERRAL = ReferralColumns(
    CASE,
    risk="rosh",
    release_or_hearing_date="releaseDate?",
    referrer="offenderManager",
    victims="victims?",
    health_notes="healthIssues?",
)
PLAN = PlanColumns(CASE)
TERMINATION = ExitColumns(CASE, within="termination")


def oasys(record: Mapping[str, Any]) -> dict[str, Any]:
    o = record["oasys"]
    scores = {group: RiskLevel(enum_code(o[key])) for key, group in ROSH_GROUPS.items() if key in o}
    if not scores:
        raise FieldRule("an OASys RoSH summary scores at least one group", field="oasys")
    overall = max(scores.values(), key=ROSH_ORDER.index)
    return {
        **CASE.about(record),
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
        **CASE.about(record),
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
        **CASE.about(record),
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
        **CASE.about(record),
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
        **CASE.about(record),
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
        **CASE.about(record),
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
        **CASE.about(record),
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


def release_address(record: Mapping[str, Any]) -> dict[str, Any]:
    """The offender manager approves the release address (or approved premises)."""
    r = record["releaseAddress"]
    return {
        **CASE.about(record),
        "release_date": r["releaseDate"],
        "establishment": r["establishment"],
        "release_address": r["address"],
        "address_approved": bool(r["approved"]),
        "licence_end": r.get("licenceEnd"),
        "notes": r.get("notes"),
        "victim_requested_conditions": r.get("victimConditions", []),
    }


def case_contact(body: MessageBody, view: ViewKind) -> dict[str, Any]:
    return {
        "crn": body.subject.probation_crn,
        "pnc": body.subject.pnc_id,
        "offenderName": body.subject.name,
        "contactType": CONTACT_TYPES.get(body.message_type, "MAPPA_OTHER"),
        "mappa": {"category": f"M{int(body.category)}", "level": f"L{int(body.level)}"},
        "view": view.value,
        "detail": detail(body),
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
        "REFERRAL": ("level-referral", REFERRAL.read),
        "RMP": ("risk-management-plan-updated", PLAN.read),
        "RELEASE_ADDRESS": ("release-scheduled", release_address),
        "TERMINATION": ("exit-from-mappa", TERMINATION.read),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return case_contact(body, view)
