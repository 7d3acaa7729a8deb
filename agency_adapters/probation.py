"""Probation: case records as held in a probation case-management system (nDelius-like).

Received messages become "contact" entries on the case, keyed by CRN where known::

    {"crn": "A123456" | null, "pnc": "...", "offenderName": "...", "contactType": "MAPPA_RISK",
     "mappa": {"category": "M1", "level": "L2"}, "view": "full", "detail": {...}}
"""

from __future__ import annotations

from typing import Any

from agency_adapters.base import AgencyAdapter
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody

CONTACT_TYPES = {"risk-assessment": "MAPPA_RISK", "release-scheduled": "MAPPA_RELEASE"}


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
    system = "probation case management export"

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return case_contact(body, view)
