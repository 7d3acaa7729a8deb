"""Police: ARMS risk assessments exported from the force's public-protection system.

Record format (JSON), one offender per record::

    {"pnc": "2009/0123456X", "visorRef": "VR00012345", "surname": "...", "forenames": "...",
     "dob": "dd/mm/yyyy", "mappaArea": "staffordshire", "mappaCategory": 1, "mappaLevel": 2,
     "arms": {"completed": "dd/mm/yyyy", "rosh": "HIGH", "riskTo": ["CHILDREN"],
              "factors": ["..."], "narrative": "...",
              "victims": [{"name": "...", "relationship": "...",
                           "address": {"line1": "...", "town": "...", "postcode": "..."}}],
              "healthConcerns": "...", "intelSource": "..."}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agency_adapters.base import AgencyAdapter, uk_date
from schemas.common import Role, ViewKind, from_data
from schemas.messages import MessageBody, RiskAssessment


def subject_from(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "pnc_id": record["pnc"],
        "visor_ref": record.get("visorRef"),
        "name": f"{record['forenames']} {record['surname']}",
        "date_of_birth": uk_date(record["dob"]),
    }


class PoliceAdapter(AgencyAdapter):
    role = Role.POLICE
    system = "ARMS export"

    def _to_canonical(self, record: Mapping[str, Any]) -> MessageBody:
        arms = record["arms"]
        return from_data(
            RiskAssessment,
            {
                "subject": subject_from(record),
                "area": record["mappaArea"],
                "category": int(record["mappaCategory"]),
                "level": int(record["mappaLevel"]),
                "tool": "ARMS",
                "assessed_on": uk_date(arms["completed"]),
                "risk_of_serious_harm": arms["rosh"].lower().replace(" ", "-"),
                "risk_to": [r.lower().replace("_", "-") for r in arms.get("riskTo", [])],
                "factors": arms.get("factors", []),
                "summary": arms["narrative"],
                "victims": arms.get("victims", []),
                "health_notes": arms.get("healthConcerns"),
                "intelligence_source": arms.get("intelSource"),
            },
        )

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
