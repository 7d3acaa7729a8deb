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
from schemas.messages.disclosure import DisclosureDecision
from schemas.messages.eligibility import EligibilityNotified
from schemas.messages.levels import ExitFromMappa, LevelReferral, LevelSet
from schemas.messages.meetings import MeetingMinutes, RiskManagementPlanUpdated
from schemas.messages.orders import CivilOrderMade, LicenceConditionsSet
from schemas.messages.outcomes import SeriousFurtherOffence
from schemas.messages.registration import NotificationBreachOutcome, RsoNotificationRecorded
from schemas.messages.release import BreachRecall, ReleaseScheduled
from schemas.messages.risk import RiskAssessment
from schemas.messages.transfer import AreaTransfer
from schemas.messages.victims import VictimViews

# In the order of the domain's table, which the agreement and the demo matrix follow.
CATALOGUE: dict[str, type[MessageBody]] = {
    type_name(model): model
    for model in (
        EligibilityNotified,
        LevelReferral,
        LevelSet,
        MeetingMinutes,
        RiskAssessment,
        RiskManagementPlanUpdated,
        RsoNotificationRecorded,
        NotificationBreachOutcome,
        CivilOrderMade,
        LicenceConditionsSet,
        ReleaseScheduled,
        BreachRecall,
        AreaTransfer,
        DisclosureDecision,
        VictimViews,
        SeriousFurtherOffence,
        ExitFromMappa,
    )
}
CATALOGUE[type_name(CaseTeam)] = CaseTeam

__all__ = [
    "CATALOGUE",
    "AreaTransfer",
    "BreachRecall",
    "CaseTeam",
    "CivilOrderMade",
    "DisclosureDecision",
    "EligibilityNotified",
    "ExitFromMappa",
    "LevelReferral",
    "LevelSet",
    "LicenceConditionsSet",
    "MeetingMinutes",
    "MessageBody",
    "NotificationBreachOutcome",
    "ReleaseScheduled",
    "RiskAssessment",
    "RiskManagementPlanUpdated",
    "RsoNotificationRecorded",
    "SeriousFurtherOffence",
    "SubjectIdentifiers",
    "VictimViews",
    "derive_view",
    "type_name",
    "type_version",
    "view_fields",
    "view_model",
]
