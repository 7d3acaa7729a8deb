"""Prison: offender management records (NOMIS-like), keyed by prison number.

Received messages become case-note alerts::

    {"prisonNumber": "A1234BC" | null, "pncNumber": "...", "alertCode": "MAPPA",
     "alertType": "risk-assessment", "mappaLevel": 2, "accessLevel": "full", "text": {...}}
"""

from __future__ import annotations

from typing import Any

from agency_adapters.base import AgencyAdapter
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody


class PrisonAdapter(AgencyAdapter):
    role = Role.PRISON
    system = "prison offender management export"

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
