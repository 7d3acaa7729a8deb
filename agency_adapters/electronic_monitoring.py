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
    RecordMapping,
    ReferralColumns,
    detail,
    flat_text,
    items,
)
from schemas.common import Role, ViewKind
from schemas.messages import LicenceConditionsSet, MessageBody

COLUMNS = ReferralColumns(
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
)


def escalation(row: Mapping[str, Any]) -> dict[str, Any]:
    data = COLUMNS.read(row)
    violations = items(row["Violations"])
    if not violations:
        raise ValueError("an escalation lists at least one violation")
    data["reason"] = f"Monitoring violations: {', '.join(violations)}"[:200]
    return data


class ElectronicMonitoringAdapter(AgencyAdapter):
    role = Role.ELECTRONIC_MONITORING
    kind = "electronic-monitoring"
    system = "electronic monitoring centre CSV"
    record_type_field = "RecordType"
    record_types: ClassVar[Mapping[str, RecordMapping]] = {
        "ESCALATION": ("level-referral", escalation),
    }

    def from_canonical(self, body: MessageBody, view: ViewKind) -> dict[str, Any]:
        row = {
            "RecordType": "NOTICE",
            "SubjectPNC": body.subject.pnc_id,
            "SubjectName": body.subject.name,
            "Notice": body.message_type,
            "View": view.value,
            "Details": flat_text(detail(body)),
        }
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
        return row
