"""Jobcentre Plus (DWP): the work coach's MAPPA referral and alert CSV.

DWP sees summaries only (work search, benefit and employer contact are what it
needs). Publishes MAPPA A referrals (``RecordType`` ``MAPPAREF``; dates dd/mm/yyyy;
see docs/record-formats.md). Received messages become claimant-alert rows: the
summary's fields flattened into ``Summary``, every value a string.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import (
    AgencyAdapter,
    RecordMapping,
    ReferralColumns,
    detail,
    flat_text,
)
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody

COLUMNS = ReferralColumns(
    pnc="PNC",
    name="ClaimantName",
    dob="DOB",
    area="Area",
    category="Category",
    level="Level",
    referred_on="ReferralDate",
    requested_level="RequestedLevel",
    reason="Reason",
    risk="RiskLevel",
    summary="Summary",
    referrer="WorkCoach",
)


class JobcentreAdapter(AgencyAdapter):
    role = Role.JOBCENTRE
    kind = "jobcentre"
    system = "Jobcentre Plus alert CSV"
    record_type_field = "RecordType"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "MAPPAREF": ("level-referral", COLUMNS.read),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return {
            "AlertType": "MAPPA",
            "PNC": body.subject.pnc_id,
            "ClaimantName": body.subject.name,
            "DOB": body.subject.date_of_birth,
            "MappaLevel": str(int(body.level)),
            "Notice": body.message_type,
            "View": view.value,
            "Summary": flat_text(detail(body)),
        }
