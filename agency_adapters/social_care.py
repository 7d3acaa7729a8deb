"""Children's and adult social care: two systems, one ``social-care`` role.

Children's services export workflow steps from a Mosaic-like system as JSON
(``workflowStep``: ``MAPPA_REFERRAL``; dates ISO)::

    {"workflowStep": "MAPPA_REFERRAL", "personId": 88123, "pnc": "2011/0456789K",
     "fullName": "Alex Sample", "dateOfBirth": "1980-03-14",
     "mappa": {"area": "staffordshire", "category": 1, "level": 1},
     "form": {"dateReferred": "2026-06-01", "levelRequested": 2, "reason": "...",
              "riskLevel": "High", "riskSummary": "...", "socialWorker": "..."}}

Adult services export CSV from a LiquidLogic-like system, one row per form
(``FormType``: ``MAPPA_REFERRAL``; dates dd/mm/yyyy); see docs/record-formats.md.

Children's services receive case notes (JSON); adult services receive rows in the
same CSV layout they import alerts from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import (
    AgencyAdapter,
    RecordMapping,
    detail,
    enum_code,
    flat_text,
    uk_date,
)
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody


def mosaic_referral(record: Mapping[str, Any]) -> dict[str, Any]:
    m, f = record["mappa"], record["form"]
    return {
        "subject": {
            "pnc_id": record["pnc"],
            "name": record["fullName"],
            "date_of_birth": record["dateOfBirth"],
        },
        "area": m["area"],
        "category": int(m["category"]),
        "level": int(m["level"]),
        "referred_on": f["dateReferred"],
        "requested_level": int(f["levelRequested"]),
        "reason": f["reason"],
        "risk_of_serious_harm": enum_code(f["riskLevel"]),
        "risk_summary": f["riskSummary"],
        "referrer": f["socialWorker"],
        "victims": f.get("childrenAtRisk", []),
    }


def las_referral(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "subject": {
            "pnc_id": row["PNC"],
            "name": f"{row['Forename']} {row['Surname']}",
            "date_of_birth": uk_date(row["DOB"]),
        },
        "area": row["MappaArea"],
        "category": int(row["MappaCategory"]),
        "level": int(row["MappaLevel"]),
        "referred_on": uk_date(row["ReferralDate"]),
        "requested_level": int(row["LevelRequested"]),
        "reason": row["Reason"],
        "risk_of_serious_harm": enum_code(row["RoSH"]),
        "risk_summary": row["RiskSummary"],
        "referrer": row["Worker"],
        "health_notes": row.get("HealthNotes") or None,
    }


class ChildrensSocialCareAdapter(AgencyAdapter):
    role = Role.SOCIAL_CARE
    kind = "childrens-social-care"
    system = "children's social care workflow export"
    record_type_field = "workflowStep"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "MAPPA_REFERRAL": ("level-referral", mosaic_referral),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return {
            "pnc": body.subject.pnc_id,
            "fullName": body.subject.name,
            "dateOfBirth": body.subject.date_of_birth,
            "caseNoteType": "MAPPA information",
            "messageType": body.message_type,
            "view": view.value,
            "content": detail(body),
        }


class AdultSocialCareAdapter(AgencyAdapter):
    role = Role.SOCIAL_CARE
    kind = "adult-social-care"
    system = "adult social care CSV export"
    record_type_field = "FormType"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "MAPPA_REFERRAL": ("level-referral", las_referral),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        """One CSV row of the alerts import: every value a string."""
        return {
            "AlertType": "MAPPA",
            "PNC": body.subject.pnc_id,
            "Name": body.subject.name,
            "DOB": body.subject.date_of_birth,
            "MappaLevel": str(int(body.level)),
            "Notice": body.message_type,
            "View": view.value,
            "Details": flat_text(detail(body)),
        }
