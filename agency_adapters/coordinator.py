"""MAPPA co-ordination unit: the unit's case register (levels, MAPPA B minutes, case teams).

JSON, one record per decision or meeting; ``recordType`` is ``LEVEL`` or ``MINUTES``.
Dates are dd/mm/yyyy as the unit's register spreadsheets keep them::

    {"recordType": "LEVEL", "pnc": "2011/0456789K", "visorRef": "VR0099001",
     "name": "Alex Sample", "dob": "14/03/1980", "area": "staffordshire", "category": 1,
     "level": 2, "decision": {"previousLevel": 1, "effective": "20/06/2026", ...}}

Received messages become entries on the unit's case register.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import AgencyAdapter, RecordMapping, detail, optional_uk_date, uk_date
from agency_adapters.tables import SubjectColumns
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody

CASE = SubjectColumns(
    refs={"visor_ref": "visorRef?"},
    name="name",
    dob="dob",
    mappa=("area", "category", "level"),
    date=uk_date,
)


def level(record: Mapping[str, Any]) -> dict[str, Any]:
    d = record["decision"]
    return {
        **CASE.about(record),
        "previous_level": d.get("previousLevel"),
        "effective_date": uk_date(d["effective"]),
        "next_review": uk_date(d["review"]),
        "decided_at": d["meetingRef"],
        "rationale": d.get("rationale"),
        "intelligence_basis": d.get("intelligence"),
    }


def minutes(record: Mapping[str, Any]) -> dict[str, Any]:
    m = record["meeting"]
    return {
        **CASE.about(record),
        "meeting_date": uk_date(m["date"]),
        "meeting_kind": m["type"].lower(),
        "chair": m["chair"],
        "attending": m["agencies"],
        "decisions": m["decisions"],
        "risk_management_plan": m["rmp"],
        "actions": [
            {"owner": a["agency"], "action": a["action"], "due": optional_uk_date(a.get("due"))}
            for a in m.get("actions", [])
        ],
        "next_meeting": optional_uk_date(m.get("nextMeeting")),
        "disclosure_considered": bool(m.get("disclosureConsidered", False)),
        "victim_issues": m.get("victimIssues"),
        "health_information": m.get("health"),
        "intelligence": m.get("intelligence"),
    }


def transfer(record: Mapping[str, Any]) -> dict[str, Any]:
    """The unit confirms a transfer with the receiving area's unit."""
    t = record["transfer"]
    return {
        **CASE.about(record),
        "stage": t["stage"].lower(),
        "to_area": t["toArea"],
        "move_date": uk_date(t["moveDate"]),
        "transfer_due_by": uk_date(t["dueBy"]),
        "receiving_lead": t.get("receivingLead"),
        "reason": t["reason"],
        "open_actions": [
            {"owner": a["agency"], "action": a["action"], "due": optional_uk_date(a.get("due"))}
            for a in t.get("openActions", [])
        ],
    }


def disclosure(record: Mapping[str, Any]) -> dict[str, Any]:
    """The meeting chair's disclosure decision, recorded by the unit."""
    d = record["disclosure"]
    return {
        **CASE.about(record),
        "scheme": d["scheme"],
        "decision": d["decision"],
        "decided_on": uk_date(d["date"]),
        "decided_by": d["chair"],
        "recipient_type": d["recipientType"],
        "rationale": d["rationale"],
        "what_disclosed": d.get("whatDisclosed"),
        "disclosed_on": optional_uk_date(d.get("disclosedOn")),
        "recipient_identity": d.get("recipient"),
    }


def case_team(record: Mapping[str, Any]) -> dict[str, Any]:
    """Who is active on the case, as the unit's register lists the agencies."""
    t = record["team"]
    return {
        **CASE.about(record),
        "effective_from": uk_date(t["from"]),
        "lead_agency": t["lead"],
        "members": [{"agency_id": m["agency"], "role": m["role"]} for m in t["members"]],
    }


class CoordinatorAdapter(AgencyAdapter):
    role = Role.COORDINATOR
    kind = "coordinator"
    system = "MAPPA co-ordination unit register"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "LEVEL": ("level-set", level),
        "MINUTES": ("meeting-minutes", minutes),
        "TRANSFER": ("area-transfer", transfer),
        "DISCLOSURE": ("disclosure-decision", disclosure),
        "CASE_TEAM": ("case-team", case_team),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return {
            "pnc": body.subject.pnc_id,
            "visorRef": body.subject.visor_ref,
            "name": body.subject.name,
            "category": int(body.category),
            "level": int(body.level),
            "entryType": body.message_type,
            "view": view.value,
            "entry": detail(body),
        }
