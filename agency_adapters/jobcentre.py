"""Jobcentre Plus (DWP): the work coach's MAPPA referral and alert CSV.

DWP sees summaries only (work search, benefit and employer contact are what it
needs). Publishes MAPPA A referrals (``RecordType`` ``MAPPAREF``; dates dd/mm/yyyy;
see docs/record-formats.md). Received messages become claimant-alert rows: the
summary's fields flattened into ``Summary``, every value a string.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import AgencyAdapter, RecordMapping
from agency_adapters.tables import AlertColumns, ReferralColumns
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody

COLUMNS = ReferralColumns.row(
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

ALERTS = AlertColumns(name="ClaimantName", detail="Summary")


class JobcentreAdapter(AgencyAdapter):
    role = Role.JOBCENTRE
    kind = "jobcentre"
    system = "Jobcentre Plus alert CSV"
    record_type_field = "RecordType"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "MAPPAREF": ("level-referral", COLUMNS.read),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return ALERTS.render(body, view)
