"""Education: a local authority education safeguarding team's CSV.

The default agreement shares nothing with education (it is not in the domain's
"who may see what" table), but a designated safeguarding lead may refer: MAPPA A
referrals (``Type`` ``MAPPA_REFERRAL``; dates dd/mm/yyyy; see
docs/record-formats.md). An agreement that does share with education delivers
rows of the safeguarding-log import.
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
    name="Name",
    dob="DateOfBirth",
    area="MappaArea",
    category="MappaCategory",
    level="MappaLevel",
    referred_on="Date",
    requested_level="LevelRequested",
    reason="Concern",
    risk="RiskLevel",
    summary="Detail",
    referrer="DSL",
)

ALERTS = AlertColumns(kind=("LogType", "MAPPA"), dob=None, level=None, detail="Detail")


class EducationAdapter(AgencyAdapter):
    role = Role.EDUCATION
    kind = "education"
    system = "education safeguarding CSV"
    record_type_field = "Type"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "MAPPA_REFERRAL": ("level-referral", COLUMNS.read),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return ALERTS.render(body, view)
