"""Registered sex offender notifications (police) and breach outcomes."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.common import Frozen, RecordDate, ShortText, VersionOne
from schemas.messages.base import (
    Category,
    InSummary,
    MessageBody,
    PersonName,
    Sensitive,
    Sensitivity,
)
from schemas.messages.parts import Address, CountryCode


class NotificationKind(enum.StrEnum):
    INITIAL = "initial"
    CHANGE = "change"
    ANNUAL = "annual"
    WEEKLY_NO_FIXED_ABODE = "weekly-no-fixed-abode"
    FOREIGN_TRAVEL = "foreign-travel"


class Travel(Frozen):
    destination: CountryCode
    depart_on: RecordDate
    return_on: RecordDate | None = None


class RsoNotificationRecorded(MessageBody):
    """A notification the offender made at a police station (Sexual Offences Act 2003 Part 2)."""

    message_type: Literal["rso-notification-recorded"] = "rso-notification-recorded"
    schema_version: VersionOne = 1
    notification: Annotated[NotificationKind, InSummary()]
    notified_on: Annotated[RecordDate, InSummary()]
    # Initial and change notifications are due within 3 days of the event; a late one
    # is still recorded (the breach is its own message), so this is not checked here.
    due_by: RecordDate | None = None
    police_station: ShortText
    names_used: tuple[PersonName, ...] = Field(default=(), max_length=10)
    home_address: Address | None = None
    # Any address used for 7 days or more in 12 months.
    other_addresses: tuple[Address, ...] = Field(default=(), max_length=10)
    no_fixed_abode: Annotated[bool, InSummary()] = False
    travel: Travel | None = None
    child_in_household: Annotated[bool, InSummary()]
    bank_details_notified: bool = False
    passport_notified: bool = False
    national_insurance_notified: bool = False
    # Who the children in the household are, by name.
    household_members: Annotated[tuple[ShortText, ...], Sensitive(Sensitivity.VICTIM)] = Field(
        default=(), max_length=10
    )

    @model_validator(mode="after")
    def _coherent(self) -> RsoNotificationRecorded:
        if self.category is not Category.REGISTERED_SEXUAL_OFFENDER:
            raise ValueError("notifications are made by category 1 offenders only")
        if self.notification is NotificationKind.FOREIGN_TRAVEL and self.travel is None:
            raise ValueError("a foreign-travel notification needs travel details")
        if self.notification is NotificationKind.WEEKLY_NO_FIXED_ABODE and not self.no_fixed_abode:
            raise ValueError("weekly notification applies only with no fixed abode")
        if self.home_address is None and not self.no_fixed_abode:
            raise ValueError("home_address is required unless no_fixed_abode")
        return self


class BreachOutcome(enum.StrEnum):
    CAUTION = "caution"
    CONVICTION = "conviction"


class NotificationBreachOutcome(MessageBody):
    message_type: Literal["notification-breach-outcome"] = "notification-breach-outcome"
    schema_version: VersionOne = 1
    requirement_breached: Annotated[NotificationKind, InSummary()]
    outcome: Annotated[BreachOutcome, InSummary()]
    outcome_date: Annotated[RecordDate, InSummary()]
    court: ShortText | None = None
    sentence: ShortText | None = None
    circumstances: ShortText | None = None
    intelligence_source: Annotated[ShortText | None, Sensitive(Sensitivity.INTELLIGENCE)] = None

    @model_validator(mode="after")
    def _coherent(self) -> NotificationBreachOutcome:
        if self.outcome is BreachOutcome.CONVICTION and not (self.court and self.sentence):
            raise ValueError("a conviction names the court and the sentence")
        if self.outcome is BreachOutcome.CAUTION and self.court:
            raise ValueError("a caution is not given by a court")
        return self
