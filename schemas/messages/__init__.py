"""Every canonical message type, by its wire name."""

from __future__ import annotations

from schemas.messages.base import (
    MessageBody,
    SubjectIdentifiers,
    derive_view,
    type_name,
    type_version,
    view_fields,
    view_model,
)
from schemas.messages.caseteam import CaseTeam
from schemas.messages.release import ReleaseScheduled
from schemas.messages.risk import RiskAssessment

CATALOGUE: dict[str, type[MessageBody]] = {
    type_name(model): model for model in (RiskAssessment, ReleaseScheduled)
}
CATALOGUE[type_name(CaseTeam)] = CaseTeam

__all__ = [
    "CATALOGUE",
    "CaseTeam",
    "MessageBody",
    "ReleaseScheduled",
    "RiskAssessment",
    "SubjectIdentifiers",
    "derive_view",
    "type_name",
    "type_version",
    "view_fields",
    "view_model",
]
