"""Eligibility notified (police, probation, prison, youth offending, health)."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.common import RecordDate, ShortText, VersionOne
from schemas.messages.base import Category, InSummary, MessageBody, Sensitive, Sensitivity
from schemas.messages.parts import VictimDetail


class EligibilityBasis(enum.StrEnum):
    """Why the law makes this person a MAPPA offender; each fixes the category."""

    NOTIFICATION_REQUIREMENTS = "notification-requirements"
    VIOLENT_SENTENCE_12_MONTHS = "violent-sentence-12-months-or-more"
    HOSPITAL_OR_GUARDIANSHIP_ORDER = "hospital-or-guardianship-order"
    OTHER_DANGEROUS = "other-dangerous-offender"
    TERRORISM_RISK = "terrorism-risk"


CATEGORY_OF_BASIS = {
    EligibilityBasis.NOTIFICATION_REQUIREMENTS: Category.REGISTERED_SEXUAL_OFFENDER,
    EligibilityBasis.VIOLENT_SENTENCE_12_MONTHS: Category.VIOLENT_OFFENDER,
    EligibilityBasis.HOSPITAL_OR_GUARDIANSHIP_ORDER: Category.VIOLENT_OFFENDER,
    EligibilityBasis.OTHER_DANGEROUS: Category.OTHER_DANGEROUS_OFFENDER,
    EligibilityBasis.TERRORISM_RISK: Category.TERRORISM_RISK,
}


class EligibilityNotified(MessageBody):
    message_type: Literal["eligibility-notified"] = "eligibility-notified"
    schema_version: VersionOne = 1
    basis: Annotated[EligibilityBasis, InSummary()]
    index_offence: Annotated[ShortText, InSummary()]
    conviction_date: RecordDate
    sentence: Annotated[ShortText, InSummary()] = Field(
        description="sentence or order as the court passed it, e.g. '6 years imprisonment'"
    )
    sentence_date: RecordDate
    earliest_release_date: Annotated[RecordDate | None, InSummary()] = None
    sentence_expiry_date: RecordDate | None = None
    notification_period: ShortText | None = Field(
        default=None, description="category 1 only: e.g. 'indefinite', '10 years'"
    )
    # The Mental Health Act section and clinical detail of a hospital order.
    hospital_order_detail: Annotated[ShortText | None, Sensitive(Sensitivity.HEALTH)] = None
    victims: Annotated[tuple[VictimDetail, ...], Sensitive(Sensitivity.VICTIM)] = Field(
        default=(), max_length=20
    )

    @model_validator(mode="after")
    def _coherent(self) -> EligibilityNotified:
        if CATEGORY_OF_BASIS[self.basis] is not self.category:
            raise ValueError(
                f"basis {self.basis.value} makes a category "
                f"{int(CATEGORY_OF_BASIS[self.basis])} offender, not {int(self.category)}"
            )
        if self.sentence_date < self.conviction_date:
            raise ValueError("sentence_date is before conviction_date")
        registered = self.basis is EligibilityBasis.NOTIFICATION_REQUIREMENTS
        if self.notification_period and not registered:
            raise ValueError("notification_period applies only to registered sexual offenders")
        return self
