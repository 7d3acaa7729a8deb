"""Registered social landlord: a housing association's tenancy system (CSV).

A housing association housing a MAPPA offender shares the ``housing`` role with
the local housing authority but runs its own system, which exports and imports
flat CSV rows. Publishes MAPPA A referrals (``Record Type`` ``MAPPA A``; dates
dd/mm/yyyy); see docs/record-formats.md for the columns.

Received messages become rows of the tenancy-alert import, every value a string.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import AgencyAdapter, RecordMapping
from agency_adapters.tables import AlertColumns, ReferralColumns
from schemas.common import Role, ViewKind
from schemas.messages import MessageBody

COLUMNS = ReferralColumns.row(
    pnc="Police Ref",
    name="Tenant Name",
    dob="DOB",
    area="MAPPA Area",
    category="Category",
    level="Level",
    referred_on="Referral Date",
    requested_level="Requested Level",
    reason="Reason",
    risk="Risk",
    summary="Summary",
    referrer="Housing Officer",
)

ALERTS = AlertColumns(kind=("Alert", "MAPPA"), pnc="Police Ref", name="Tenant Name", level="Level")


class SocialLandlordAdapter(AgencyAdapter):
    role = Role.HOUSING
    kind = "social-landlord"
    system = "housing association tenancy CSV"
    record_type_field = "Record Type"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "MAPPA A": ("level-referral", COLUMNS.read),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        return ALERTS.render(body, view)
