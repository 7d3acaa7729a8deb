"""One complete, fictional example of every message type.

Every field a view may drop is filled in, so the examples show what each view
removes. They feed the JSON Schema ``examples``, the demo and the tests. No real
person: the offender, victims and addresses are invented.
"""

from __future__ import annotations

import copy
from typing import Any

from schemas.common import from_data
from schemas.messages import CATALOGUE, MessageBody

SUBJECT: dict[str, Any] = {
    "pnc_id": "2011/0456789K",
    "visor_ref": "VR0099001",
    "probation_crn": "X123456",
    "prison_number": "A1234BC",
    "name": "Alex Sample",
    "date_of_birth": "1980-03-14",
}
VICTIM: dict[str, Any] = {
    "name": "Jane Witness",
    "relationship": "former partner",
    "address": {"line1": "1 Example Road", "town": "Stafford", "postcode": "ST16 1AA"},
}
ADDRESS: dict[str, Any] = {
    "line1": "12 Sample Street",
    "town": "Stoke-on-Trent",
    "postcode": "ST4 2AB",
}

CONTENT: dict[str, dict[str, Any]] = {
    "eligibility-notified": {
        "basis": "notification-requirements",
        "index_offence": "Sexual assault (Sexual Offences Act 2003 s3)",
        "conviction_date": "2021-05-10",
        "sentence": "6 years imprisonment",
        "sentence_date": "2021-06-18",
        "earliest_release_date": "2026-12-01",
        "sentence_expiry_date": "2027-06-17",
        "notification_period": "indefinite",
        "hospital_order_detail": "Not applicable: assessed under MHA s35 on remand",
        "victims": [VICTIM],
    },
    "level-referral": {
        "referred_on": "2026-06-01",
        "requested_level": 2,
        "reason": "Release within six months; new relationship with a parent of two",
        "risk_of_serious_harm": "high",
        "risk_summary": "High risk to children; grooming via new partner's family.",
        "release_or_hearing_date": "2026-12-01",
        "referrer": "Offender manager, HMP Stafford OMU",
        "victims": [VICTIM],
        "health_notes": "Engages with prison mental health in-reach.",
        "intelligence_source": "CHIS 4411",
    },
    "level-set": {
        "previous_level": 1,
        "effective_date": "2026-06-20",
        "next_review": "2026-08-20",
        "decided_at": "MAPP level 2 meeting 2026-06-20",
        "rationale": "Multi-agency management needed around release.",
        "intelligence_basis": "Police intelligence log 2026/117",
    },
    "meeting-minutes": {
        "meeting_date": "2026-06-20",
        "meeting_kind": "initial",
        "chair": "Detective Inspector, Public Protection Unit",
        "attending": ["police", "probation", "prison", "housing", "social-care"],
        "decisions": ["Managed at level 2", "Approved premises on release"],
        "risk_management_plan": "Curfew, exclusion zone, weekly home visits, ARMS review.",
        "actions": [
            {"owner": "housing", "action": "Confirm move-on tenancy options", "due": "2026-09-01"},
            {"owner": "probation", "action": "Submit licence conditions", "due": "2026-07-15"},
        ],
        "next_meeting": "2026-08-20",
        "disclosure_considered": True,
        "victim_issues": "Jane Witness asks for an exclusion zone around her home.",
        "health_information": "Under community mental health team review.",
        "intelligence": "Reports of contact with a family with young children.",
    },
    "risk-assessment": {
        "tool": "ARMS",
        "assessed_on": "2026-11-02",
        "risk_of_serious_harm": "high",
        "risk_to": ["children", "known-adult"],
        "factors": ["sexual preoccupation", "access to children via new partner"],
        "summary": "High risk to children; new relationship with a parent of two.",
        "victims": [VICTIM],
        "health_notes": "Attends a community mental health team.",
        "intelligence_source": "CHIS 4411",
    },
    "risk-management-plan-updated": {
        "lead_agency": "probation.staffordshire",
        "updated_on": "2026-07-01",
        "review_by": "2026-10-01",
        "actions": [
            {
                "owner": "probation",
                "action": "Weekly supervision appointments",
                "heading": "supervision",
            },
            {
                "owner": "police",
                "action": "Unannounced home visits",
                "heading": "monitoring-and-control",
                "due": "2026-08-01",
            },
        ],
        "contingency": "Recall on any contact with children.",
        "victim_safety_measures": ["Panic alarm at Jane Witness's home"],
        "treatment_detail": "Horizon programme; psychiatric review quarterly.",
    },
    "rso-notification-recorded": {
        "notification": "change",
        "notified_on": "2026-12-03",
        "due_by": "2026-12-04",
        "police_station": "Hanley Police Station",
        "names_used": ["Alex Sample", "Al Sampson"],
        "home_address": ADDRESS,
        "no_fixed_abode": False,
        "child_in_household": True,
        "bank_details_notified": True,
        "passport_notified": False,
        "national_insurance_notified": True,
        "household_members": ["Sam Child (9)"],
    },
    "notification-breach-outcome": {
        "requirement_breached": "change",
        "outcome": "conviction",
        "outcome_date": "2027-02-14",
        "court": "North Staffordshire Magistrates' Court",
        "sentence": "12 weeks imprisonment",
        "circumstances": "Failed to notify a change of address within 3 days.",
        "intelligence_source": "Neighbourhood policing report",
    },
    "civil-order-made": {
        "order": "shpo",
        "change": "made",
        "court": "Stafford Crown Court",
        "made_on": "2021-06-18",
        "expires_on": "2031-06-17",
        "prohibitions": [
            "Not to have unsupervised contact with a child under 16",
            "Not to delete internet history",
        ],
        "protected_persons": ["Jane Witness"],
    },
    "licence-conditions-set": {
        "change": "made",
        "licence_start": "2026-12-01",
        "licence_end": "2027-06-17",
        "conditions": [
            {"kind": "standard", "text": "Be of good behaviour"},
            {"kind": "additional", "text": "Reside at approved premises"},
        ],
        "exclusion_zones": [{"name": "Stafford", "description": "Stafford town centre"}],
        "curfew": {"start": "19:00", "end": "07:00", "address": ADDRESS},
        "electronic_monitoring": True,
        "approved_premises": True,
        "victim_conditions": ["No contact with Jane Witness"],
        "treatment_conditions": ["Attend psychiatric appointments"],
    },
    "release-scheduled": {
        "release_date": "2026-12-01",
        "establishment": "HMP Stafford",
        "release_address": ADDRESS,
        "address_approved": True,
        "licence_end": "2027-06-17",
        "notes": "Collected at the gate by the offender manager.",
        "victim_requested_conditions": ["No contact with Jane Witness"],
        "health_notes": "Depot medication due on 2026-12-03.",
    },
    "breach-recall": {
        "event": "recall",
        "event_date": "2027-01-10",
        "breach_of": "licence",
        "recall_type": "standard",
        "reason": "Entered the exclusion zone twice; curfew violations.",
        "establishment": "HMP Birmingham",
        "intelligence_source": "Electronic monitoring alerts and CHIS 4411",
    },
    "area-transfer": {
        "stage": "requested",
        "to_area": "west-midlands",
        "move_date": "2027-03-01",
        "transfer_due_by": "2027-03-29",
        "new_address": {"line1": "4 Transfer Way", "town": "Walsall", "postcode": "WS1 1AA"},
        "reason": "Employment offer",
        "open_actions": [{"owner": "police", "action": "Hand over ViSOR record"}],
        "victim_considerations": "Jane Witness's sister lives in Walsall.",
    },
    "disclosure-decision": {
        "scheme": "child-sex-offender-disclosure-scheme",
        "decision": "disclose",
        "decided_on": "2026-07-02",
        "decided_by": "MAPP meeting chair",
        "recipient_type": "parent-or-carer",
        "rationale": "Partner has two children; risk of serious harm to them.",
        "what_disclosed": "Conviction for sexual assault and the risk it indicates.",
        "disclosed_on": "2026-07-05",
        "recipient_identity": "Partner, Chris Parent",
    },
    "victim-views": {
        "received_on": "2026-06-10",
        "liaison_officer": "Victim Liaison Officer, Staffordshire",
        "statutory_scheme": True,
        "concerns": ["Fears being followed", "Worried about the children of a friend"],
        "requested_conditions": ["Exclusion zone: Stafford town centre"],
        "wants_updates": True,
        "victims": [VICTIM],
        "contact_arrangements": "Telephone only, after 6pm, via the VLO",
    },
    "serious-further-offence": {
        "offence": "Rape (Sexual Offences Act 2003 s1)",
        "offence_date": "2027-04-02",
        "charged_on": "2027-04-05",
        "under_supervision": True,
        "review_required": True,
        "circumstances": "Offence committed while on licence.",
        "victims": [VICTIM],
    },
    "case-team": {
        "effective_from": "2026-11-02",
        "lead_agency": "probation.staffordshire",
        "members": [
            {"agency_id": "probation.staffordshire", "role": "probation"},
            {"agency_id": "police.staffordshire", "role": "police"},
            {"agency_id": "housing.stoke-on-trent", "role": "housing"},
        ],
    },
    "exit-from-mappa": {
        "reason": "licence-expired",
        "exit_date": "2027-06-17",
        "lead_agency": "probation.staffordshire",
        "notes": "Remains on the sex offenders register; police manage at level 1.",
        "continuing_arrangements": "Police visits under notification requirements",
        "health_notes": "Discharged from community mental health team.",
    },
}


def example_data(message_type: str, *, area: str = "staffordshire") -> dict[str, Any]:
    """The example of ``message_type`` as JSON data, in ``area``: a fresh copy each
    call, so a caller that edits it (a test naming the subject otherwise) changes no
    other caller's example."""
    return copy.deepcopy(
        {
            "message_type": message_type,
            "subject": SUBJECT,
            "area": area,
            "category": 1,
            "level": 2,
            **CONTENT[message_type],
        }
    )


def example(message_type: str, *, area: str = "staffordshire") -> MessageBody:
    return from_data(CATALOGUE[message_type], example_data(message_type, area=area))
