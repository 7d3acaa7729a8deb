"""Electronic monitoring provider: the monitoring centre's CSV feeds.

Publishes MAPPA A referrals when violations escalate (``RecordType``
``ESCALATION``; ``Violations`` is a ';'-separated list; dates dd/mm/yyyy; see
docs/record-formats.md).

Received licence conditions and civil orders become monitoring-order rows (curfew
hours, exclusion zones, whether a tag is required), so the provider can fit and
configure the tag; anything else becomes a notice row. Every value a string.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agency_adapters.base import (
    AgencyAdapter,
    FieldRule,
    RecordMapping,
    flat_text,
    import_row,
    items,
)
from agency_adapters.tables import AlertColumns, ReferralColumns
from schemas.common import Role, ViewKind
from schemas.messages import LicenceConditionsSet, MessageBody


def violations(cell: str) -> str:
    """The ';'-separated violations of an escalation as the referral's reason.

    Raises FieldRule if the cell lists none: an escalation is about at least one.
    """
    listed = items(cell)
    if not listed:
        raise FieldRule("an escalation lists at least one violation")
    return f"Monitoring violations: {', '.join(listed)}"[:200]


COLUMNS = ReferralColumns.row(
    pnc="SubjectPNC",
    name="SubjectName",
    dob="SubjectDOB",
    area="Area",
    category="Category",
    level="Level",
    referred_on="EscalationDate",
    requested_level="RequestedLevel",
    reason="Violations",
    risk="RoSH",
    summary="Summary",
    referrer="MonitoringOfficer",
    convert={"Violations": violations},
)

ALERTS = AlertColumns(
    kind=("RecordType", "NOTICE"), pnc="SubjectPNC", name="SubjectName", dob=None, level=None
)


class ElectronicMonitoringAdapter(AgencyAdapter):
    role = Role.ELECTRONIC_MONITORING
    kind = "electronic-monitoring"
    system = "electronic monitoring centre CSV"
    record_type_field = "RecordType"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "ESCALATION": ("level-referral", COLUMNS.read),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        row = ALERTS.render(body, view)
        if isinstance(body, LicenceConditionsSet):
            curfew = body.curfew
            row |= {
                "RecordType": "MONITORING_ORDER",
                "TagRequired": "Y" if body.electronic_monitoring else "N",
                "Start": body.licence_start,
                "End": body.licence_end,
                "CurfewStart": curfew.start if curfew else "",
                "CurfewEnd": curfew.end if curfew else "",
                "Zones": flat_text([z.description for z in body.exclusion_zones]),
            }
        return import_row(row)
